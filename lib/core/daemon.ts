import cron, { type ScheduledTask } from 'node-cron';
import type { Config } from './config.js';
import { jobOptions } from './config.js';
import type { Companion, Job } from './job.js';
import type { Logger } from './logger.js';
import { describeError } from './errors.js';
import { serveHandOff, type HandOffServer } from './hand-off-server.js';
import { runJob } from './runner.js';
import { scheduledJobs } from './schedule.js';
import { watchAddress } from './vip-watch.js';

/**
 * `mfs-jobs daemon`: every scheduled job on node-cron, never overlapping itself (in-process guard
 * plus the same lock file a crontab `run` takes). On SIGTERM/SIGINT: no new runs; running jobs get
 * `daemon.shutdownGraceSeconds` to finish, then are aborted at their next safe point. A second
 * signal aborts at once. On `daemon.socket` it also takes the failover hooks' runs (hand-off-server.ts):
 * a standby's daemon spares its promotion Node's start-up.
 */
export async function runDaemon(config: Config, jobs: readonly Job[], log: Logger): Promise<number> {
  const plan = scheduledJobs(config, jobs);
  // A job that only runs beside the daemon (the changelog archive) is reason enough to run.
  const beside = jobs.some((j) => j.alongsideDaemon && config.jobs[j.name] && config.jobs[j.name]!.enabled !== false);
  if (plan.length === 0 && !config.daemon.socket && !beside) {
    log.error('no scheduled jobs and no daemon.socket: give jobs.<name>.schedule in the config');
    return 3;
  }
  // Taken before anything starts: a SIGTERM during start-up still stops the daemon cleanly (socket removed).
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // Filled once the companions have started (below); a run before then goes without one.
  const companions = new Map<string, Companion>();
  let handOff: HandOffServer | undefined;
  if (config.daemon.socket) {
    try {
      handOff = await serveHandOff(config, jobs, log, config.daemon.socket, companions);
    } catch (err) {
      log.error(`cannot listen on daemon.socket: ${describeError(err)}`);
      return 3;
    }
  }
  // The standby's daemon promotes the moment the VIP lands here (standby.promoteOnVip).
  const promote = jobs.find((j) => j.name === 'promote');
  const vip = config.standby?.promoteOnVip && config.standby.vip ? config.standby.vip : undefined;
  if (config.standby?.promoteOnVip && (!vip || !handOff))
    log.warn('standby.promoteOnVip needs standby.vip and daemon.socket: not watching');
  const vipWatch =
    vip && handOff && promote
      ? watchAddress(vip, () => handOff.startShared(promote, `virtual IP ${vip} added here`), log)
      : undefined;
  if (vipWatch) log.info('watching for the virtual IP', { vip });
  await startCompanions(config, jobs, log, companions);
  const running = new Map<string, { promise: Promise<unknown>; controller: AbortController }>();
  const tasks: ScheduledTask[] = [];
  let stopping = false;

  const fire = (job: Job) => {
    if (stopping) return;
    if (running.has(job.name)) {
      log.warn('job skipped: previous run still going', { job: job.name });
      return;
    }
    const controller = new AbortController();
    const promise = runJob(job, { config, log, signal: controller.signal, companion: companions.get(job.name) })
      .catch((err: unknown) => log.error('job runner failed', { job: job.name, error: describeError(err) }))
      .finally(() => running.delete(job.name));
    running.set(job.name, { promise, controller });
  };

  for (const { job, schedule } of plan) {
    const task = cron.schedule(schedule, () => fire(job), {
      timezone: config.timezone,
      name: job.name,
      noOverlap: true,
    });
    tasks.push(task);
    log.info('scheduled', { job: job.name, schedule, timezone: config.timezone });
  }
  log.info('daemon started', { pid: process.pid, jobs: plan.map((p) => p.job.name) });

  const signalled = await stopRequested;
  stopping = true;
  for (const t of tasks) await t.destroy();
  vipWatch?.stop();
  await Promise.all([...companions.values()].map((c) => c.close()));
  await handOff?.close();
  for (const [i, r] of [...(handOff?.running ?? [])].entries()) running.set(`hand-off ${i + 1}`, r);
  const names = [...running.keys()];
  if (names.length === 0) {
    log.info('daemon stopping: no job running', { signal: signalled });
    return 0;
  }
  const grace = config.daemon.shutdownGraceSeconds;
  log.info(`daemon stopping: letting running jobs finish (up to ${grace} s)`, { signal: signalled, running: names });
  const allDone = Promise.all([...running.values()].map((r) => r.promise));
  const abortAll = (why: string) => {
    const still = [...running.keys()];
    if (still.length) log.warn(`aborting running jobs: ${why}`, { aborted: still });
    for (const r of running.values()) r.controller.abort(new Error(`daemon stopping (${why})`));
  };
  const graceTimer = setTimeout(() => abortAll(`grace period of ${grace} s over`), grace * 1000);
  const again = () => abortAll('second signal');
  process.once('SIGTERM', again);
  process.once('SIGINT', again);
  await allDone;
  clearTimeout(graceTimer);
  process.off('SIGTERM', again);
  process.off('SIGINT', again);
  log.info('daemon stopped', { finished: names });
  return 0;
}

/** Each job's `alongsideDaemon` (enabled jobs only); one that fails to start is logged, not fatal. */
async function startCompanions(
  config: Config,
  jobs: readonly Job[],
  log: Logger,
  out: Map<string, Companion>,
): Promise<void> {
  for (const job of jobs) {
    if (!job.alongsideDaemon || config.jobs[job.name]?.enabled === false) continue;
    try {
      const c = await job.alongsideDaemon({
        config,
        options: jobOptions(config, job.name, job.options),
        log: log.child({ job: job.name }),
      });
      if (c) out.set(job.name, c);
    } catch (err) {
      log.error(`${job.name}: cannot start what it runs beside the daemon: ${describeError(err)}`);
    }
  }
}
