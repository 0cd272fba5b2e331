import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import {
  compare,
  expectExitZero,
  FigureSamples,
  finish,
  jobReport,
  mfsJobs,
  writeJobsConfig,
  warmedUp,
  type BenchContext,
  type CaseResult,
  type Side,
} from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import { baselineScript, expectServing, masterPeakRssMb, scratchMaster, stopAndWipe } from '../scratch.js';

/**
 * Case 4b (issue 28): `mfs-jobs restore --latest --start` from a default (zstd) store into an empty DATA_PATH,
 * against the same with standard tools: `zstd -d` of the snapshot's files and `mfsmaster -a`
 * (bench/baseline/restore-zstd.sh). Both end when the master serves; both sides' masters are stopped and
 * their DATA_PATH emptied between rounds, outside the timing.
 */
export async function restoreCase(ctx: BenchContext, chain: ChainInfo, id = 'restore'): Promise<CaseResult> {
  const base = path.join(ctx.runDir, id);
  const store = path.join(base, 'store');
  const target = await scratchMaster(path.join(base, 'target'));
  const result = {
    id,
    title: `restore --latest --start from a default store, ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB)`,
    target: { text: '≤ 1.2× zstd -d + mfsmaster -a', maxRatio: 1.2 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  const config = await writeJobsConfig(ctx, id, {
    metaloggers: [{ name: 'ml', host: '127.0.0.1', dataPath: chain.dataPath, local: true }],
    snapshotStore: { path: store },
  });
  // The store the restores read: one backup of the chain, made once before the rounds.
  const backupStarted = Date.now();
  const backup = await execCapture(mfsJobs().cmd, ['run', 'backup', '--config', config], { timeoutMs: 1_800_000 });
  result.figures.storeBackupSeconds = (Date.now() - backupStarted) / 1000;
  if (backup.code !== 0) throw new Error(`backup for the restore case: exit ${backup.code}: ${backup.stdout}`);
  const snapshots = path.join(store, 'snapshots');
  const [snapshot] = (await fs.readdir(snapshots)).filter((n) => /-v\d+$/.test(n));
  if (!snapshot) throw new Error(`backup for the restore case made no snapshot in ${snapshots}`);
  const masterRss = new FigureSamples();
  const bare: Side = {
    label: 'zstd -d + mfsmaster -a',
    command: {
      cmd: baselineScript('restore-zstd.sh'),
      args: [path.join(snapshots, snapshot), target.dataPath, target.configFile],
    },
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(target, chain.last + 1);
      masterRss.add({ bareMfsmasterPeakRssMb: await masterPeakRssMb(target) });
    },
    cleanup: () => stopAndWipe(target),
  };
  const timings = new FigureSamples();
  const restore: Side = {
    label: 'mfs-jobs restore --latest --start',
    command: mfsJobs(
      'restore',
      '--latest',
      '--data-path',
      target.dataPath,
      '--master-config',
      target.configFile,
      '--start',
      '--config',
      config,
      '--json',
    ),
    check: async (sample) => {
      const report = jobReport(sample);
      if (report.status !== 'OK') throw new Error(`restore ${report.status}: ${report.summary}`);
      await expectServing(target, chain.last + 1);
      masterRss.add({ mfsmasterPeakRssMb: await masterPeakRssMb(target) });
      timings.add({
        jobSeconds: report.durationMs / 1000,
        ...((report.details.timings ?? {}) as Record<string, unknown>),
      });
    },
    cleanup: () => stopAndWipe(target),
  };
  const [subject, baseline] = await compare(ctx, [restore, bare], { warmup: !ctx.quick });
  const skip = warmedUp(ctx, !ctx.quick) ? 1 : 0;
  Object.assign(result.figures, timings.medians(skip), masterRss.medians(skip));
  result.notes.push(
    'restore also checks the store (signed manifest, every byte against its checksum), scans the changelogs for the target, moves any old content aside and places the files as the DATA_PATH owner would; the baseline trusts the files as they are',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, restore);
}
