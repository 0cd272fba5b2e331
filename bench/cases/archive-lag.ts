import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../lib/core/config.js';
import { archiveChain, listSegments } from '../../lib/store/segments.js';
import archiveJob from '../../jobs/archive.js';
import { listCopySegments, openArchiveCopy } from '../../lib/store/copy/archive.js';
import { storeKeys } from '../../lib/store/stored-file.js';
import type { CopyRepository } from '../../lib/store/copy/repository.js';
import {
  jobAvailable,
  notAvailable,
  verdict,
  writeJobsConfig,
  type BenchContext,
  type CaseResult,
  benchSftpCopy,
} from '../bench-case.js';
import { MFS_JOBS_BIN, REPO_ROOT } from '../../test/helpers/cli.js';
import { Lab } from '../../test/lab/cluster.js';
import { generationConfig, labGeneration } from '../../test/lab/generations.js';
import { Daemon, sleep } from '../../test/lab/proc.js';

/**
 * Issue 26, archive lag: a real 4.59.2 master, metalogger and FUSE mount; a steady 1,000 metadata changes/s
 * through the mount (bench/arclag-churn.ts, its own process); `mfs-jobs run archive --follow` as its own
 * process into a store (zstd, as a new config gets) with an SFTP copy on the loopback sshd. Every second:
 * the master's version, the archive's end in the store and in the copy (their segment manifests, listed as
 * the archiver and verify list them) and the archiver's VmRSS. Lag of a version = the first sample that
 * shows it archived minus the sample that first showed it on the master (1 s resolution).
 */
const RATE = 1_000;
/**
 * The case runs with the shipped default jobs.archive.segmentSeconds (5 s since compaction keeps the segment
 * count bounded: BENCHMARKS.md "Issue 26 default segment and compaction"); MFS_JOBS_BENCH_SEGMENT_SECONDS=60
 * measures another setting (the old default: p95 59-60 s).
 */
const OVERRIDE = process.env.MFS_JOBS_BENCH_SEGMENT_SECONDS;
const SEGMENT_SECONDS = OVERRIDE
  ? Number(OVERRIDE)
  : (archiveJob.options.parse({}) as { segmentSeconds: number }).segmentSeconds;
const WARMUP_SECONDS = 15;
/** After the changes stop: how long the archive gets to take the last of them. */
const DRAIN_SECONDS = Math.max(45, 2 * SEGMENT_SECONDS + 20);

interface Sample {
  t: number;
  /** The master's metadata version: the one its next change gets. */
  master: number;
  store?: number;
  copy?: number;
  rssMb?: number;
}

async function vmRssMb(pid: number): Promise<number | undefined> {
  const text = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) / 1024 : undefined;
}

function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;

/** Per master sample in the window: seconds until a sample shows its last change archived (undefined: never). */
function lagSeconds(samples: Sample[], from: number, to: number, end: (s: Sample) => number | undefined): number[] {
  const out: number[] = [];
  for (const s of samples) {
    if (s.t < from || s.t > to) continue;
    const lastChange = s.master - 1;
    const seen = samples.find((later) => later.t >= s.t && (end(later) ?? -1) >= lastChange);
    out.push(seen ? round((seen.t - s.t) / 1000, 1) : Infinity);
  }
  return out;
}

export async function archiveLagCase(ctx: BenchContext): Promise<CaseResult> {
  const id = 'archive-lag';
  const seconds = ctx.quick ? 60 : 180;
  const result = {
    id,
    title: `archive lag behind a 4.59.2 master under ${RATE} changes/s, store and SFTP copy (${seconds} s)`,
    target: { text: 'lag ≤ 10 s at p95 (store and copy), RSS ≤ 150 MB', maxSeconds: 10, maxRssMb: 150 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('archive')) return notAvailable(result, 'archive');
  const base = path.join(ctx.runDir, id);
  await fs.mkdir(base, { recursive: true });
  const lab = await Lab.start({ root: base, lab: labGeneration('4.59.2'), sshd: false, mount: true });
  let churn: Daemon | undefined;
  let archiver: Daemon | undefined;
  let repo: CopyRepository | undefined;
  try {
    const doc = lab.configDocument();
    const configFile = await writeJobsConfig(ctx, id, {
      masters: doc.masters,
      metaloggers: doc.metaloggers,
      ...generationConfig(lab.generation),
      snapshotStore: {
        path: path.join(base, 'store'),
        copies: [benchSftpCopy(ctx, path.join(base, 'copy'))],
      },
      ...(OVERRIDE ? { jobs: { archive: { segmentSeconds: SEGMENT_SECONDS } } } : {}),
    });
    const config = await loadConfig(configFile);
    const keys = await storeKeys(config);
    const churnDir = path.join(lab.mount!.dir, 'churn');
    await fs.mkdir(churnDir);
    churn = new Daemon(
      'arclag-churn',
      process.execPath,
      [path.join(REPO_ROOT, 'dist', 'bench', 'arclag-churn.js'), churnDir, String(RATE)],
      path.join(base, 'churn.log'),
    );
    archiver = new Daemon(
      'mfs-jobs run archive --follow',
      process.execPath,
      [MFS_JOBS_BIN, 'run', 'archive', '--follow', '--config', configFile, '--json'],
      path.join(base, 'archiver.log'),
    );
    const controller = new AbortController();
    repo = await openArchiveCopy(config, config.snapshotStore!.copies[0]!, controller.signal);
    const samples: Sample[] = [];
    const started = Date.now();
    const churnUntil = started + (WARMUP_SECONDS + seconds) * 1000;
    let drainUntil = churnUntil + DRAIN_SECONDS * 1000;
    ctx.log(`archive-lag: ${WARMUP_SECONDS} s warm-up, ${seconds} s measured, segmentSeconds ${SEGMENT_SECONDS}`);
    for (let tick = 1; ; tick++) {
      const t = Date.now();
      if (churn.running && t >= churnUntil) await churn.stop();
      if (t >= drainUntil) break;
      if (!archiver.running) throw new Error(`the archiver exited: ${(await archiver.log()).slice(-300)}`);
      const master = (await lab.master.info()).metadataVersion;
      const rssMb = await vmRssMb(archiver.pid);
      const store = archiveChain(
        (await listSegments(config.snapshotStore!.path, keys)).segments.map((s) => s.manifest),
      ).last;
      const copy = archiveChain(
        (await listCopySegments(repo, keys, controller.signal)).segments.map((s) => s.manifest),
      ).last;
      samples.push({ t, master, store, copy, rssMb });
      // Drained: both hold the master's last change (nothing changes after the churn stops).
      if (!churn.running && store === master - 1 && copy === master - 1)
        drainUntil = Math.min(drainUntil, Date.now() + 2_000);
      await sleep(Math.max(0, started + tick * 1000 - Date.now()));
    }
    const made = JSON.parse((await churn.log()).trim().split('\n').pop() ?? '{}') as {
      made?: number;
      failures?: number;
    };

    const from = started + WARMUP_SECONDS * 1000;
    const window = samples.filter((s) => s.t >= from && s.t <= churnUntil);
    const first = window[0]!;
    const last = window[window.length - 1]!;
    const rate = (last.master - first.master) / ((last.t - first.t) / 1000);
    const storeLag = lagSeconds(samples, from, churnUntil, (s) => s.store);
    const copyLag = lagSeconds(samples, from, churnUntil, (s) => s.copy);
    const versionsBehind = (end: (s: Sample) => number | undefined) => window.map((s) => s.master - 1 - (end(s) ?? 0));
    const rss = samples.flatMap((s) => (s.rssMb === undefined ? [] : [s.rssMb]));
    const stored = (await listSegments(config.snapshotStore!.path, keys)).segments;
    const lineBytes = stored.reduce((n, g) => n + g.manifest.files.reduce((m, f) => m + f.size, 0), 0);
    const lines = stored.reduce((n, g) => n + g.manifest.last - g.manifest.first + 1, 0);
    const p95 = Math.max(percentile(storeLag, 95), percentile(copyLag, 95));
    Object.assign(result.figures, {
      measuredSeconds: round((last.t - first.t) / 1000, 1),
      segmentSeconds: SEGMENT_SECONDS,
      changesPerSecond: round(rate, 0),
      churnCallsFailed: made.failures ?? 'n/a',
      storeLagP50s: percentile(storeLag, 50),
      storeLagP95s: percentile(storeLag, 95),
      storeLagMaxS: Math.max(...storeLag),
      copyLagP50s: percentile(copyLag, 50),
      copyLagP95s: percentile(copyLag, 95),
      copyLagMaxS: Math.max(...copyLag),
      storeVersionsBehindP50: percentile(
        versionsBehind((s) => s.store),
        50,
      ),
      storeVersionsBehindP95: percentile(
        versionsBehind((s) => s.store),
        95,
      ),
      storeVersionsBehindMax: Math.max(...versionsBehind((s) => s.store)),
      copyVersionsBehindP50: percentile(
        versionsBehind((s) => s.copy),
        50,
      ),
      copyVersionsBehindP95: percentile(
        versionsBehind((s) => s.copy),
        95,
      ),
      copyVersionsBehindMax: Math.max(...versionsBehind((s) => s.copy)),
      rssStartMb: round(rss[0] ?? NaN, 1),
      rssMaxMb: round(Math.max(...rss), 1),
      rssEndMb: round(rss[rss.length - 1] ?? NaN, 1),
      segmentsInStore: stored.length,
      changelogBytesPerLine: round(lineBytes / lines, 0),
      segmentsPerDayAtThisSetting: Math.round(86_400 / SEGMENT_SECONDS),
      hourlyBackupRpoSeconds: 3600,
    });
    result.notes.push(
      `lag = first 1 s sample showing a version archived − first sample showing it on the master (±1 s); ` +
        `${WARMUP_SECONDS} s warm-up not counted`,
      `changes: utimes through a 4.59.2 FUSE mount (SETATTR lines), 4 files, paced at ${RATE}/s; source: the metalogger, over ssh`,
      'no baseline run: today (hourly backup, no archive) the store and copies are up to 3600 s behind (RPO = the backup interval)',
      `segmentSeconds ${SEGMENT_SECONDS}${OVERRIDE ? ' (MFS_JOBS_BENCH_SEGMENT_SECONDS)' : ' (the default)'}: ` +
        'a segment ' +
        'is sealed once its oldest line waited that long (16 MiB segmentBytes takes minutes at 1,000 lines/s: see ' +
        'changelogBytesPerLine); compaction (backup, prune) merges each hour an hour later: ~24 segments a day',
    );
    const subject = {
      label: 'run archive --follow (p95 lag, worse of store/copy)',
      command: `mfs-jobs run archive --follow (segmentSeconds ${SEGMENT_SECONDS})`,
      seconds: [...storeLag, ...copyLag],
      rssMb: rss,
      medianSeconds: p95,
      maxRssMb: Math.max(...rss),
    };
    return verdict({ ...result, status: 'measured', subject });
  } finally {
    await churn?.stop().catch(() => undefined);
    await archiver?.stop().catch(() => undefined);
    await repo?.close().catch(() => undefined);
    await lab.stop();
  }
}
