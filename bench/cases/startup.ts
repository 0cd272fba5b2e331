import type { Sample } from '../measure.js';
import {
  compare,
  expectExitZero,
  finish,
  mfsJobs,
  writeJobsConfig,
  type BenchContext,
  type CaseResult,
} from '../bench-case.js';

/** `run promote` on a config without `standby:`: the job is loaded and refuses at its first step (UNKNOWN). */
function expectNoStandby(sample: Sample): void {
  if (sample.code !== 3 || !sample.stdout.includes('standby: is not configured')) {
    throw new Error(`exit ${sample.code}: ${(sample.stdout.trim().split('\n').pop() ?? '').slice(0, 300)}`);
  }
}

/**
 * Case 5: how long the CLI takes before it does anything — what every cron line and every ucarp
 * up-script pays. The floor is Node itself (`node -e 0`), measured alongside.
 */
export async function startupCases(ctx: BenchContext): Promise<CaseResult[]> {
  const config = await writeJobsConfig(ctx, 'startup', { jobs: { 'check-master': { schedule: '*/5 * * * *' } } });
  const node = {
    label: 'node -e 0',
    command: { cmd: process.execPath, args: ['-e', '0'] },
    check: expectExitZero,
    rss: false,
  };
  const version = { label: 'mfs-jobs --version', command: mfsJobs('--version'), check: expectExitZero };
  const listJobs = {
    label: 'mfs-jobs list-jobs',
    command: mfsJobs('list-jobs', '--config', config),
    check: expectExitZero,
  };
  // A hook's one-shot promote up to its first step (issue #24): config, logger and the promote job loaded.
  const promote = {
    label: 'mfs-jobs run promote (no standby)',
    command: mfsJobs('run', 'promote', '--config', config),
    check: expectNoStandby,
  };
  // The same commands from the unbundled tree (dist/bin, ~400 modules), alternated in the same rounds: what the
  // bundle (scripts/bundle.mjs, issue #28) buys on this machine now.
  const unbundled = (side: typeof version) => ({
    ...side,
    label: `${side.label} (unbundled)`,
    command: { ...side.command, env: { MFS_JOBS_UNBUNDLED: '1' } },
  });
  const [v, l, p, n, vu, lu, pu] = await compare(ctx, [
    version,
    listJobs,
    promote,
    node,
    unbundled(version),
    unbundled(listJobs),
    unbundled(promote),
  ]);
  const target = { text: '≤ 2× node -e 0 (issue #28)', maxRatio: 2 };
  const notes = [
    'baseline is bare Node start-up (the floor no Node CLI can beat)',
    'unbundled: the same command with MFS_JOBS_UNBUNDLED=1 (dist/bin), same rounds',
  ];
  const before = (u: typeof vu) => ({
    unbundledSeconds: u!.medianSeconds,
    unbundledRatio: Number((u!.medianSeconds / n!.medianSeconds).toFixed(2)),
  });
  return [
    await finish(
      ctx,
      {
        id: 'startup-version',
        title: 'CLI start-up: --version',
        status: 'measured',
        subject: v,
        baseline: n,
        target,
        figures: before(vu),
        notes,
      },
      version,
    ),
    await finish(
      ctx,
      {
        id: 'startup-list-jobs',
        title: 'CLI start-up: list-jobs',
        status: 'measured',
        subject: l,
        baseline: n,
        target,
        figures: before(lu),
        notes,
      },
      listJobs,
    ),
    await finish(
      ctx,
      {
        id: 'startup-run-promote',
        title: 'CLI start-up: run promote',
        status: 'measured',
        subject: p,
        baseline: n,
        target,
        figures: before(pu),
        notes: [...notes, 'the job loads and refuses at once: the config has no standby:'],
      },
      promote,
    ),
  ];
}
