import type { Config } from './config.js';
import { jobOptions } from './config.js';
import { ConfigError, describeError, LockBusyError, UsageError } from './errors.js';
import type { Companion, Job, JobResult, Status, Trigger } from './job.js';
import { exitCodeOf, NO_ARGS } from './job.js';
import { acquireLock } from './lock.js';
import { withJobLogger, type Logger } from './logger.js';
import type { JsonReport } from './output.js';
import { writePrometheusTextfile } from './output.js';
import { writeJobState } from './state.js';
import { checkStrictModes } from './strict-modes.js';

export interface RunRequest {
  config: Config;
  log: Logger;
  dryRun?: boolean;
  /** The command line's flags, by commander's camelCase name: checked against the job's `args` schema. */
  args?: Record<string, unknown>;
  /** A run the daemon took over from a hook, or started when the VIP appeared (hand-off-server.ts). */
  trigger?: Trigger;
  /** The job's own companion in this daemon (alongsideDaemon), passed to the run. */
  companion?: Companion;
  /** Aborting it asks the job to stop at its next safe point (SIGTERM, daemon shutdown). */
  signal?: AbortSignal;
}

export interface RunOutcome {
  report: JsonReport;
  /** True when another run held the lock and this one did nothing. */
  skipped: boolean;
}

/** How long a job may take to reach a safe point after it was asked to stop. */
const ABORT_GRACE_MS = 60_000;

/** Rejects when a job ignores its abort signal for ABORT_GRACE_MS: the run must end, not hang holding its lock. */
function unresponsiveAfterAbort(signal: AbortSignal, name: string): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener(
      'abort',
      () =>
        setTimeout(
          () =>
            reject(
              new Error(
                `job ${name} did not stop within ${ABORT_GRACE_MS / 1000} s after: ${describeError(signal.reason)}`,
              ),
            ),
          ABORT_GRACE_MS,
        ).unref(),
      { once: true },
    );
  });
}

/** The flags given, parsed once with the job's schema: one that the job does not declare is a UsageError. */
function jobArgs(job: Job, given: Record<string, unknown>): unknown {
  const present = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const parsed = (job.args ?? NO_ARGS).safeParse(present);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const key = issue.code === 'unrecognized_keys' ? issue.keys[0]! : String(issue.path[0] ?? '');
  const flag = `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
  throw new UsageError(
    flag,
    issue.code === 'unrecognized_keys'
      ? `option ${flag} does not apply to job ${job.name}`
      : `${flag}: ${issue.message}`,
  );
}

function statusForError(err: unknown): Status {
  return err instanceof ConfigError || err instanceof UsageError ? 'UNKNOWN' : 'CRITICAL';
}

/**
 * Run one job once: lock, options, timeout, the job itself, then state file, Prometheus textfile and
 * logs. Never throws for a job's failure: every outcome becomes a status and a summary line.
 */
export async function runJob(job: Job, request: RunRequest): Promise<RunOutcome> {
  const { config, log } = request;
  const dryRun = request.dryRun ?? false;
  const startedAt = new Date();
  const jlog = log.child({ job: job.name });
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(request.signal?.reason ?? new Error('aborted'));
  request.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  let result: JobResult;
  let skipped = false;
  let lock: Awaited<ReturnType<typeof acquireLock>> | undefined;
  try {
    const options = jobOptions(config, job.name, job.options) as Record<string, unknown> & { timeoutSeconds?: number };
    const args = jobArgs(job, request.args ?? {});
    await checkStrictModes(config);
    lock = await acquireLock(config.lockDir, job.lockName ?? job.name, {
      waitMs: (job.lockWaitSeconds ?? 0) * 1000,
      signal: controller.signal,
    });
    if (options.timeoutSeconds) {
      timer = setTimeout(
        () =>
          controller.abort(new Error(`timed out after ${options.timeoutSeconds} s (jobs.${job.name}.timeoutSeconds)`)),
        options.timeoutSeconds * 1000,
      );
    }
    jlog.info('job started', { dryRun });
    const running = withJobLogger(jlog, () =>
      job.run({
        config,
        options,
        log: jlog,
        dryRun,
        args,
        signal: controller.signal,
        startedAt,
        trigger: request.trigger,
        companion: request.companion,
      }),
    );
    result = await Promise.race([running, unresponsiveAfterAbort(controller.signal, job.name)]);
  } catch (err) {
    if (err instanceof LockBusyError) {
      skipped = true;
      result = { status: 'UNKNOWN', summary: `skipped: ${err.message}` };
    } else {
      const reason =
        controller.signal.aborted && !(err instanceof ConfigError)
          ? describeError(controller.signal.reason)
          : describeError(err);
      result = { status: statusForError(err), summary: reason };
      jlog.debug('job error', { stack: err instanceof Error ? err.stack : undefined });
    }
  } finally {
    if (timer) clearTimeout(timer);
    request.signal?.removeEventListener('abort', onOuterAbort);
  }
  const finishedAt = new Date();
  const durationMs = finishedAt.getTime() - startedAt.getTime();
  const report: JsonReport = {
    job: job.name,
    status: result.status,
    exitCode: exitCodeOf(result.status),
    summary: result.summary,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs,
    dryRun,
    details: { ...(skipped ? { skipped: true } : {}), ...result.details },
    metrics: result.metrics ?? [],
    lines: result.lines ?? [],
  };
  const level = result.status === 'OK' ? 'info' : result.status === 'WARNING' ? 'warn' : 'error';
  // Logged before the lock goes: across processes sharing a log, a run's "job finished" always comes before
  // the next holder's "job started" (a run that logged it after releasing seemed to overlap the next).
  try {
    jlog.log(level, skipped ? 'job skipped' : 'job finished', {
      status: result.status,
      summary: result.summary,
      durationMs,
    });
  } finally {
    await lock?.release().catch((err: unknown) => jlog.warn('could not release lock', { error: describeError(err) }));
  }
  if (!skipped && !dryRun) await recordOutcome(config, job, result, report, finishedAt, jlog);
  return { report, skipped };
}

async function recordOutcome(
  config: Config,
  job: Job,
  result: JobResult,
  report: JsonReport,
  finishedAt: Date,
  log: Logger,
): Promise<void> {
  try {
    await writeJobState(config.stateDir, {
      job: job.name,
      startedAt: report.startedAt,
      finishedAt: report.finishedAt,
      durationMs: report.durationMs,
      status: result.status,
      exitCode: report.exitCode,
      summary: result.summary,
      dryRun: report.dryRun,
      details: result.details,
    });
    if (config.prometheus.textfileDir)
      await writePrometheusTextfile(config.prometheus.textfileDir, job.name, result, finishedAt, report.durationMs);
  } catch (err) {
    log.error('could not record job state', { error: describeError(err) });
  }
}
