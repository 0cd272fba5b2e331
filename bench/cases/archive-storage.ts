import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncFile } from '../../lib/core/atomic.js';
import { execCapture } from '../../lib/core/exec.js';
import {
  compare,
  expectExitZero,
  finish,
  jobAvailable,
  jobReport,
  metricValue,
  mfsJobs,
  notAvailable,
  writeJobsConfig,
  type BenchContext,
  type CaseResult,
  type Side,
  benchSftpCopy,
} from '../bench-case.js';
import type { ImageInfo } from '../generate.js';
import { ChurnWriter } from '../lines.js';
import { expectServing, scratchMaster, stopAndWipe } from '../scratch.js';
import { MFS_JOBS_BIN } from '../../test/helpers/cli.js';

/**
 * Issue 26, incremental restore points: a day of hourly restore points, time compressed. A master DATA_PATH
 * (local) starts from the generated image; each "hour" 1/24 of a day's churn (1% of the files changed, three
 * changelog lines each) is appended to its changelog.0.mfs and the real mfsmaster rolls its image forward
 * (`mfsmaster -a restore`: a new metadata.mfs.back, as its hourly dump gives one); then `run archive` (one
 * pass) and `run backup` into two stores: one with jobs.archive (imageInterval 24h: the day is one image) and
 * an SFTP copy, one without (today: an image per run). Figures: the bytes each store (and the copy) holds
 * after the day against one stored image. Then `restore --latest --to-version <the day's end>` from the
 * incremental store — the image 23 "hours" old rolled forward through the archive — with `--start`, against
 * a bare `mfsmaster -a` of the same image and changelog already in place.
 */
const HOURS = 24;
const LINES_PER_CHANGED_FILE = 3;

async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else if (e.isFile()) total += (await fs.stat(p)).size;
  }
  return total;
}

async function run(args: string[]): Promise<{ details: Record<string, unknown>; summary: string }> {
  const res = await execCapture(MFS_JOBS_BIN, [...args, '--json'], { timeoutMs: 1_800_000 });
  if (res.code !== 0 && res.code !== 1) throw new Error(`mfs-jobs ${args.join(' ')}: exit ${res.code}: ${res.stdout}`);
  return JSON.parse(res.stdout) as { details: Record<string, unknown>; summary: string };
}

export async function archiveStorageCase(ctx: BenchContext, image: ImageInfo, label: string): Promise<CaseResult> {
  const id = `archive-storage-${image.files}`;
  const base = path.join(ctx.runDir, id);
  const source = path.join(base, 'master-data');
  const roll = await scratchMaster(path.join(base, 'roll'));
  await fs.mkdir(source, { recursive: true, mode: 0o700 });
  await fs.copyFile(image.image, path.join(source, 'metadata.mfs.back'));
  const result = {
    id,
    title: `a day of hourly restore points (1% of files changed), ${label} image, and restore 23 h after the image`,
    target: { text: 'day ≤ 1.2× one stored image (store and copy); restore ≤ 1.5× bare mfsmaster -a', maxRatio: 1.5 },
    figures: { imageMb: image.bytes / 2 ** 20 } as Record<string, number | string>,
    notes: [] as string[],
  };
  const incrementalStore = path.join(base, 'store-incremental');
  const todayStore = path.join(base, 'store-today');
  const copyDir = path.join(base, 'copy');
  const master = { name: 'master', host: '127.0.0.1', dataPath: source, local: true };
  const incremental = await writeJobsConfig(ctx, `${id}-incremental`, {
    masters: [master],
    snapshotStore: {
      path: incrementalStore,
      imageInterval: '24h',
      copies: [benchSftpCopy(ctx, copyDir)],
    },
    jobs: { archive: {} },
  });
  const today = await writeJobsConfig(ctx, `${id}-today`, { masters: [master], snapshotStore: { path: todayStore } });
  if (!jobAvailable('archive')) return notAvailable(result, 'archive');

  const perHour = Math.ceil(((image.files / 100) * LINES_PER_CHANGED_FILE) / HOURS);
  const churn = new ChurnWriter(image.files, image.version, Math.floor(Date.now() / 1000) - 86_400);
  const changelog = path.join(source, 'changelog.0.mfs');
  await fs.writeFile(changelog, '');
  const outcomes: string[] = [];
  let firstImageStored = 0;
  let todayBytes = 0;
  const started = Date.now();
  for (let hour = 0; hour <= HOURS; hour++) {
    if (hour > 0) {
      // The hour's changes, then the master's hourly image of them (the real mfsmaster rolls it forward).
      let lines = '';
      for (let i = 0; i < perHour; i++) lines += churn.line();
      await fs.appendFile(changelog, lines);
      await stopAndWipe(roll);
      await fs.copyFile(path.join(source, 'metadata.mfs.back'), path.join(roll.dataPath, 'metadata.mfs.back'));
      await fs.writeFile(path.join(roll.dataPath, 'changelog.0.mfs'), lines);
      const res = await execCapture('mfsmaster', ['-c', roll.configFile, '-a', 'restore'], { timeoutMs: 600_000 });
      if (res.code !== 0) throw new Error(`mfsmaster -a restore: ${res.stderr.slice(-300)}`);
      const next = path.join(source, 'metadata.mfs.back.new');
      await fs.copyFile(path.join(roll.dataPath, 'metadata.mfs'), next);
      await fs.rename(next, path.join(source, 'metadata.mfs.back'));
    }
    await run(['run', 'archive', '--config', incremental]);
    const inc = await run(['run', 'backup', '--config', incremental]);
    const src = (inc.details.sources as { result: string; bytes?: number }[])[0]!;
    outcomes.push(src.result);
    if (hour === 0) firstImageStored = await treeBytes(path.join(incrementalStore, 'snapshots'));
    // Summed per run: under time compression the hourly retention buckets are all one real hour.
    const old = await run(['run', 'backup', '--config', today]);
    todayBytes += (old.details.sources as { bytes?: number }[])[0]!.bytes ?? 0;
  }
  const dayBytes = await treeBytes(incrementalStore);
  const copyBytes = await treeBytes(copyDir);
  Object.assign(result.figures, {
    hours: HOURS,
    changelogLinesPerHour: perHour,
    oneStoredImageMb: firstImageStored / 2 ** 20,
    incrementalStoreMb: dayBytes / 2 ** 20,
    incrementalCopyMb: copyBytes / 2 ** 20,
    todayAddedMb: todayBytes / 2 ** 20,
    storeRatio: dayBytes / firstImageStored,
    copyRatio: copyBytes / firstImageStored,
    todayRatio: todayBytes / firstImageStored,
    imagesStored: outcomes.filter((o) => o === 'snapshot').length,
    restorePointsCovered: outcomes.filter((o) => o === 'covered').length,
    dayMinutes: (Date.now() - started) / 60_000,
  });

  // Restore the day's end from the image 23 h before it: mfs-jobs restore --start against bare mfsmaster -a.
  const end = churn.nextVersion;
  const bare = await scratchMaster(path.join(base, 'bare'));
  const placed = await scratchMaster(path.join(base, 'restored'));
  const snapshotDir = path.join(incrementalStore, 'snapshots');
  const [first] = (await fs.readdir(snapshotDir)).filter((n) => !n.startsWith('.')).sort();
  const bareSide: Side = {
    label: 'mfsmaster -a',
    command: { cmd: 'mfsmaster', args: ['-c', bare.configFile, '-a', 'start'] },
    prepare: async () => {
      // The same image (decompressed) and the day's changelog, on disk before the clock starts.
      const img = path.join(bare.dataPath, 'metadata.mfs.back');
      const z = await execCapture('sh', [
        '-c',
        `zstd -dq < "$1" > "$2"`,
        'sh',
        `${path.join(snapshotDir, first!, 'metadata.mfs.back.zst')}`,
        img,
      ]);
      if (z.code !== 0) throw new Error(`zstd -d: ${z.stderr}`);
      await fs.copyFile(changelog, path.join(bare.dataPath, 'changelog.0.mfs'));
      for (const f of ['metadata.mfs.back', 'changelog.0.mfs']) await fsyncFile(path.join(bare.dataPath, f));
    },
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(bare, end);
    },
    cleanup: () => stopAndWipe(bare),
  };
  const restoreSide: Side = {
    label: 'mfs-jobs restore --latest --to-version END --start',
    command: mfsJobs(
      'restore',
      '--latest',
      '--to-version',
      String(end),
      '--data-path',
      placed.dataPath,
      '--master-config',
      placed.configFile,
      '--start',
      '--config',
      incremental,
      '--json',
    ),
    check: (sample) => {
      const served = metricValue(jobReport(sample), 'served_version');
      if (served !== end) throw new Error(`restore served ${served}, expected ${end}`);
    },
    cleanup: () => stopAndWipe(placed),
  };
  const [subject, baseline] = await compare(ctx, [restoreSide, bareSide], { warmup: !ctx.quick });
  result.notes.push(
    `time compressed: ${HOURS} runs, one per "hour", each after ${perHour} changelog lines and a new image by the real mfsmaster`,
    'the restore side decompresses and checks the stored image and every segment, places them, starts mfsmaster -a and waits until it serves; the bare side starts from files already in place',
    '--to-version, not --to-time: the generated lines carry synthetic times',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, restoreSide);
}
