import type { Config } from './config.js';
import type { JobEntry, Status } from './job.js';
import { nextRun, scheduledJobs } from './schedule.js';
import { readJobState, type JobState } from './state.js';

/** One job as `list-jobs` and `status` show it: its schedule, next run and the last result it recorded. */
export interface JobOverview {
  job: string;
  description: string;
  enabled: boolean;
  /** Cron expression (config's or the job's default); null for hooks and manual jobs. */
  schedule: string | null;
  nextRun: string | null;
  timezone: string;
  last: { finishedAt: string; status: Status; summary: string } | null;
  /**
   * A scheduled job whose last result is older than two of its scheduled runs: neither the daemon nor
   * cron runs it (or every run hangs), so what it last said is no longer news.
   */
  missedRuns: boolean;
}

export async function jobOverview(
  config: Config,
  jobs: readonly JobEntry[],
  now: Date = new Date(),
): Promise<JobOverview[]> {
  const scheduled = new Map(scheduledJobs(config, jobs).map((s) => [s.job.name, s.schedule]));
  return Promise.all(
    jobs.map(async (job) => {
      const schedule = scheduled.get(job.name);
      const last = await readJobState(config.stateDir, job.name);
      return {
        job: job.name,
        description: job.description,
        enabled: config.jobs[job.name]?.enabled !== false,
        schedule: schedule ?? null,
        nextRun: schedule
          ? (nextRun(schedule, config.timezone, now)?.toISO({ suppressMilliseconds: true }) ?? null)
          : null,
        timezone: config.timezone,
        last: last ? { finishedAt: last.finishedAt, status: last.status, summary: last.summary } : null,
        missedRuns: schedule && last ? missedRuns(schedule, config.timezone, last, now) : false,
      };
    }),
  );
}

function missedRuns(schedule: string, zone: string, last: JobState, now: Date): boolean {
  const first = nextRun(schedule, zone, new Date(last.finishedAt));
  const second = first && nextRun(schedule, zone, first.toJSDate());
  return second !== undefined && second.toMillis() < now.getTime();
}
