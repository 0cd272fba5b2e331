import type { z } from 'zod';
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

export interface JobContext<O = Record<string, unknown>> {
  config: Config;
  /** The job's validated `jobs.<name>` section. */
  options: O;
  log: Logger;
  dryRun: boolean;
  /** Job-specific command-line flags (e.g. drill's --snapshot), by commander's camelCase name. */
  args: Record<string, unknown>;
  /** Aborted on SIGTERM/SIGINT or timeout: stop at the next safe point and clean up. */
  signal: AbortSignal;
  startedAt: Date;
}

export interface CliOption {
  /** commander syntax, e.g. `--snapshot <id>`. */
  flags: string;
  description: string;
}

export interface Job<S extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  /** Schema of the job's `jobs.<name>` config section (build it with `jobOptionsSchema`). */
  options: S;
  cliOptions?: CliOption[];
  /** Used when config gives no schedule; hooks (promote, demote) have none and never run from the daemon. */
  defaultSchedule?: string;
  /** Jobs that must never overlap each other share a lock name (promote/demote: `failover`). */
  lockName?: string;
  /** Wait this long for the lock instead of skipping at once (failover hooks queue behind each other). */
  lockWaitSeconds?: number;
  run(ctx: JobContext<z.infer<S>>): Promise<JobResult>;
  /**
   * What the job keeps running in `mfs-jobs daemon` between its runs (promote: its watch of the other
   * masters, so that fencing already knows when the hook fires). Started once; closed on shutdown.
   */
  alongsideDaemon?(ctx: { config: Config; options: z.infer<S>; log: Logger }): Promise<Companion | undefined>;
}

/**
 * What the CLI knows of a job without loading it (jobs/index.ts): enough to parse a command line, list
 * the jobs and their schedules. `load()` imports the job's module — and with it everything the job uses —
 * only when it runs: a one-shot `run promote` does not pay for S3, SFTP or the drill.
 */
export interface JobEntry {
  name: string;
  description: string;
  defaultSchedule?: string;
  cliOptions?: readonly CliOption[];
  load(): Promise<Job>;
}

/** Something a job runs beside the daemon (see Job.alongsideDaemon). */
export interface Companion {
  close(): Promise<void>;
}

/** Define a job with its option type inferred from its schema. */
export function defineJob<S extends z.ZodType>(job: Job<S>): Job<S> {
  return job;
}
