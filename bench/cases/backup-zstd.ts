import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  compare,
  expectExitZero,
  FigureSamples,
  finish,
  jobAvailable,
  notAvailable,
  sshClientOptions,
  writeJobsConfig,
  warmedUp,
  type BenchContext,
  type CaseResult,
  type Side,
} from '../bench-case.js';
import type { ImageInfo } from '../generate.js';
import { baselineScript } from '../scratch.js';
import { backupSide } from './backup.js';

/**
 * Case 1b (issue 28): what operators run — `mfs-jobs run backup` into a default store (zstd -3), over the
 * loopback sshd or from a local DATA_PATH — against the same work with standard tools:
 * `scp (or cp) && zstd -3 && sha256sum && sync` (bench/baseline/backup-zstd.sh).
 */
export async function backupZstdCase(
  ctx: BenchContext,
  image: ImageInfo,
  label: string,
  via: 'sftp' | 'local',
): Promise<CaseResult> {
  const id = `backup-zstd-${via}-${image.files}`;
  const base = path.join(ctx.runDir, id);
  const source = path.join(base, 'master-data');
  const dest = path.join(base, 'baseline-dest');
  await fs.mkdir(source, { recursive: true, mode: 0o700 });
  await fs.link(image.image, path.join(source, 'metadata.mfs.back'));
  const from =
    via === 'sftp'
      ? `root@${ctx.sshd.host}:${path.join(source, 'metadata.mfs.back')}`
      : path.join(source, 'metadata.mfs.back');
  const sshArgs = via === 'sftp' ? ['-P', String(ctx.sshd.port), ...sshClientOptions(ctx)] : [];
  const careful: Side = {
    label: via === 'sftp' ? 'scp && zstd -3 && sha256sum && sync' : 'cp && zstd -3 && sha256sum && sync',
    command: { cmd: baselineScript('backup-zstd.sh'), args: [path.join(dest, 'metadata.mfs.back'), from, ...sshArgs] },
    prepare: () => fs.mkdir(dest, { recursive: true }).then(() => undefined),
    cleanup: () => fs.rm(dest, { recursive: true, force: true }),
    check: expectExitZero,
  };
  const result = {
    id,
    title: `backup, default store (zstd), ${via === 'sftp' ? 'over SFTP' : 'local source'}, ${label} image (${Math.round(image.bytes / 2 ** 20)} MB)`,
    target:
      via === 'sftp'
        ? { text: '≤ 1.0× scp && zstd && sha256sum && sync, RSS ≤ 150 MB', maxRatio: 1.0, maxRssMb: 150 }
        : { text: '≤ 1.2× cp && zstd && sha256sum && sync, RSS ≤ 150 MB', maxRatio: 1.2, maxRssMb: 150 },
    figures: { imageMb: image.bytes / 2 ** 20 } as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('backup')) {
    const [baseline] = await compare(ctx, [careful]);
    return notAvailable({ ...result, baseline }, 'backup');
  }
  const store = path.join(base, 'store');
  const master =
    via === 'sftp'
      ? { name: 'master', host: ctx.sshd.host, dataPath: source }
      : { name: 'master', host: '127.0.0.1', dataPath: source, local: true };
  // No compression setting: the default store, as `mfs-jobs init` writes it.
  const config = await writeJobsConfig(ctx, id, { masters: [master], snapshotStore: { path: store } });
  const own = new FigureSamples();
  const backup = backupSide(config, store, own);
  const [subject, baseline] = await compare(ctx, [backup, careful]);
  Object.assign(result.figures, own.medians(warmedUp(ctx) ? 1 : 0));
  result.notes.push(
    'jobSeconds = the run without Node start-up; copySeconds = the transfer and fsync as backup reports them (the rest: hashing, compressing, checks, manifest)',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, backup);
}
