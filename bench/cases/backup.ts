import { promises as fs } from 'node:fs';
import path from 'node:path';
import { compare, expectExitZero, jobAvailable, notAvailable, sshClientOptions, verdict, type BenchContext, type CaseResult, type Side } from '../bench-case.js';
import type { ImageInfo } from '../generate.js';

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
    command: { cmd: 'scp', args: ['-q', '-P', String(ctx.sshd.port), ...sshClientOptions(ctx), remote, path.join(scpDest, 'metadata.mfs.back')] },
    prepare: () => fs.mkdir(scpDest, { recursive: true }).then(() => undefined),
    cleanup: () => fs.rm(scpDest, { recursive: true, force: true }),
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
  throw new Error('backup case: the job landed, its side is not written yet');
  void verdict;
}
