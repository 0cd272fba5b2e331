import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  compare,
  expectExitZero,
  FigureSamples,
  finish,
  jobReport,
  jobAvailable,
  mfsJobs,
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

/**
 * Case 1: pull the metadata image over the loopback sshd — `mfs-jobs run backup` against the
 * operator's cron line `scp master:/var/lib/mfs/metadata.mfs.back …`. The source is a master-like
 * DATA_PATH holding a hard link to the generated image.
 */
export async function backupCase(ctx: BenchContext, image: ImageInfo, label: string): Promise<CaseResult> {
  const base = path.join(ctx.runDir, `backup-${image.files}`);
  const source = path.join(base, 'master-data');
  const scpDest = path.join(base, 'scp-dest');
  await fs.mkdir(source, { recursive: true, mode: 0o700 });
  await fs.link(image.image, path.join(source, 'metadata.mfs.back'));
  const remote = `root@${ctx.sshd.host}:${path.join(source, 'metadata.mfs.back')}`;
  const scp: Side = {
    label: 'scp',
    command: {
      cmd: 'scp',
      args: [
        '-q',
        '-P',
        String(ctx.sshd.port),
        ...sshClientOptions(ctx),
        remote,
        path.join(scpDest, 'metadata.mfs.back'),
      ],
    },
    prepare: () => fs.mkdir(scpDest, { recursive: true }).then(() => undefined),
    cleanup: () => fs.rm(scpDest, { recursive: true, force: true }),
    check: expectExitZero,
  };
  const careful: Side = {
    label: 'scp + sha256sum + sync',
    command: {
      cmd: baselineScript('backup.sh'),
      args: [path.join(scpDest, 'metadata.mfs.back'), remote, '-P', String(ctx.sshd.port), ...sshClientOptions(ctx)],
    },
    prepare: scp.prepare,
    cleanup: scp.cleanup,
    check: expectExitZero,
  };
  const result = {
    id: `backup-${image.files}`,
    title: `backup pull, ${label} image (${Math.round(image.bytes / 2 ** 20)} MB)`,
    target: { text: '≤ 1.25× scp, RSS ≤ 150 MB', maxRatio: 1.25, maxRssMb: 150 },
    figures: { imageMb: image.bytes / 2 ** 20 } as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('backup')) {
    const [baseline] = await compare(ctx, [scp]);
    return notAvailable({ ...result, baseline }, 'backup');
  }
  const store = path.join(base, 'store');
  const config = await writeJobsConfig(ctx, `backup-${image.files}`, {
    masters: [{ name: 'master', host: ctx.sshd.host, dataPath: source }],
    // The copy against scp, like for like: compression's own cost is measured in BENCHMARKS.md section 7.
    snapshotStore: { path: store, compression: { type: 'none' } },
  });
  const own = new FigureSamples();
  const backup = backupSide(config, store, own);
  const [subject, baseline, carefulScp] = await compare(ctx, [backup, scp, careful]);
  Object.assign(result.figures, own.medians(warmedUp(ctx) ? 1 : 0));
  result.notes.push(
    'jobSeconds = the run without Node start-up; copySeconds = the transfer and fsync as backup reports them',
  );
  result.notes.push(
    'backup also checksums (sha256) and fsyncs what it copied, checks the image header, and size/mtime before and after; plain scp does none of these (the second baseline does the checksum and fsync)',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline, otherBaselines: [carefulScp!] }, backup);
}

/** `mfs-jobs run backup` as a bench side: a fresh store each round, the job's own figures into `own`. */
export function backupSide(config: string, store: string, own: FigureSamples): Side {
  return {
    label: 'mfs-jobs run backup',
    command: mfsJobs('run', 'backup', '--config', config, '--json'),
    // Every round copies: an existing snapshot of the same version would make backup a no-op.
    prepare: () => fs.rm(store, { recursive: true, force: true }),
    cleanup: () => fs.rm(store, { recursive: true, force: true }),
    check: (sample) => {
      const report = jobReport(sample);
      const source = (report.details.sources as { result?: string; seconds?: number }[] | undefined)?.[0];
      if (source?.result !== 'snapshot') throw new Error(`backup made no snapshot: ${report.summary}`);
      own.add({ jobSeconds: report.durationMs / 1000, copySeconds: source.seconds });
    },
  };
}
