import { compare, expectExitZero, finish, mfsJobs, writeJobsConfig, type BenchContext, type CaseResult } from '../bench-case.js';

/**
 * Case 5: how long the CLI takes before it does anything — what every cron line and every ucarp
 * up-script pays. The floor is Node itself (`node -e 0`), measured alongside.
 */
export async function startupCases(ctx: BenchContext): Promise<CaseResult[]> {
  const config = await writeJobsConfig(ctx, 'startup', { jobs: { 'check-master': { schedule: '*/5 * * * *' } } });
  const node = { label: 'node -e 0', command: { cmd: process.execPath, args: ['-e', '0'] }, check: expectExitZero, rss: false };
  const version = { label: 'mfs-jobs --version', command: mfsJobs('--version'), check: expectExitZero };
  const listJobs = { label: 'mfs-jobs list-jobs', command: mfsJobs('list-jobs', '--config', config), check: expectExitZero };
  const [v, l, n] = await compare(ctx, [version, listJobs, node]);
  const target = { text: '≤ 0.4 s', maxSeconds: 0.4 };
  const notes = ['baseline is bare Node start-up (the floor no Node CLI can beat)'];
  return [
    await finish(ctx, { id: 'startup-version', title: 'CLI start-up: --version', status: 'measured', subject: v, baseline: n, target, figures: {}, notes }, version),
    await finish(ctx, { id: 'startup-list-jobs', title: 'CLI start-up: list-jobs', status: 'measured', subject: l, baseline: n, target, figures: {}, notes }, listJobs),
  ];
}
