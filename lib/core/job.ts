import { z } from 'zod';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import type { Metric } from './metrics.js';

/** Nagios plugin states; the exit code is the index. */
export const STATUSES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;
export type Status = (typeof STATUSES)[number];

export function exitCodeOf(status: Status): number {
  return STATUSES.indexOf(status);
}

/** The worse of two states (CRITICAL > WARNING > UNKNOWN > OK, as Nagios ranks them for humans). */
export function worst(...statuses: Status[]): Status {
  const rank: Record<Status, number> = { OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };
  return statuses.reduce<Status>((a, b) => (rank[b] > rank[a] ? b : a), 'OK');
}

/** One figure: Nagios perfdata and a Prometheus sample at once; every name is declared in metrics.ts. */
export type { Metric };

export interface JobResult {
  status: Status;
  /** One line: what an operator reads in a Nagios dashboard or a cron mail subject. */
  summary: string;
  /** Everything else, machine-readable (goes to --json and the state file). */
  details?: Record<string, unknown>;
  metrics?: Metric[];
  /** Extra lines for humans after the summary (per-host findings, the plan of a dry run). */
  lines?: string[];
}

/** Who started a run handed to the daemon, and when (promote's RTO counts from there). */
export interface Trigger {
  /** The hook process that handed the run over (`mfs-jobs run promote`), or the daemon's VIP watch. */
  by: 'hook' | 'vip';
  /** When that process started, or the VIP appeared (ms since the epoch). */
  atMs: number;
}

export interface JobContext<O = Record<string, unknown>, A = Record<string, unknown>, C = unknown> {
  config: Config;
  /** The job's validated `jobs.<name>` section. */
  options: O;
  log: Logger;
  dryRun: boolean;
  /** The job's command-line flags (e.g. drill's --snapshot), parsed once with its `args` schema. */
  args: A;
  /** Aborted on SIGTERM/SIGINT or timeout: stop at the next safe point and clean up. */
  signal: AbortSignal;
  startedAt: Date;
  /** Set when the daemon runs a hand-off or its own VIP-triggered run; unset for a run in its own process. */
  trigger?: Trigger;
  /** What the job keeps running beside the daemon (alongsideDaemon), when this run is the daemon's. */
  companion?: C;
}

export interface CliOption {
  /** commander syntax, e.g. `--snapshot <id>`. */
  flags: string;
  description: string;
}

/** What the CLI knows of a job without loading it (jobs/index.ts); the job's definition starts from it. */
export interface JobCard {
  name: string;
  description: string;
  /** Used when config gives no schedule; hooks (promote, demote) have none and never run from the daemon. */
  defaultSchedule?: string;
  /** The flags commander parses; the job's `args` schema declares the same names, typed. */
  cliOptions?: readonly CliOption[];
}

/** A job without command-line flags: nothing may be passed. */
export const NO_ARGS = z.strictObject({});

export interface Job<
  S extends z.ZodType = z.ZodType,
  A extends z.ZodType = z.ZodType,
  C extends Companion = Companion,
> {
  name: string;
  description: string;
  /** Schema of the job's `jobs.<name>` config section (build it with `jobOptionsSchema`). */
  options: S;
  /**
   * Schema of the job's command-line arguments (a strict object, one key per cliOptions flag by commander's
   * camelCase name): parsed once by the runner, so nothing undeclared reaches the job. Default NO_ARGS.
   */
  args?: A;
  cliOptions?: readonly CliOption[];
  /** Used when config gives no schedule; hooks (promote, demote) have none and never run from the daemon. */
  defaultSchedule?: string;
  /** Jobs that must never overlap each other share a lock name (promote/demote: `failover`). */
  lockName?: string;
  /** Wait this long for the lock instead of skipping at once (failover hooks queue behind each other). */
  lockWaitSeconds?: number;
  run(ctx: JobContext<z.infer<S>, z.infer<A>, C>): Promise<JobResult>;
  /**
   * What the job keeps running in `mfs-jobs daemon` between its runs (promote: its watch of the other
   * masters, so that fencing already knows when the hook fires). Started once; closed on shutdown.
   */
  alongsideDaemon?(ctx: { config: Config; options: z.infer<S>; log: Logger }): Promise<C | undefined>;
}

/**
 * What the CLI knows of a job without loading it (jobs/index.ts): enough to parse a command line, list
 * the jobs and their schedules. `load()` imports the job's module — and with it everything the job uses —
 * only when it runs: a one-shot `run promote` does not pay for S3, SFTP or the drill.
 */
export interface JobEntry extends JobCard {
  load(): Promise<Job>;
}

/** Something a job runs beside the daemon (see Job.alongsideDaemon). */
export interface Companion {
  close(): Promise<void>;
}

/** Define a job with its option, argument and companion types inferred from its schemas. */
export function defineJob<S extends z.ZodType, A extends z.ZodType = typeof NO_ARGS, C extends Companion = Companion>(
  job: Job<S, A, C>,
): Job<S, A, C> {
  return job;
}
