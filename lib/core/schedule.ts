import cron from 'node-cron';
import { DateTime } from 'luxon';

export { cronProblem, isValidZone } from './schedule-check.js';

/**
 * Jobs the daemon runs: enabled, with a schedule from config or the job's default. Takes the registry's
 * cards as well as loaded jobs: `list-jobs` shows schedules without loading any job. (The config's
 * shape, not its type: config.ts imports this file.)
 */
export function scheduledJobs<J extends { name: string; defaultSchedule?: string }>(
  config: { jobs: Record<string, { schedule?: string; enabled?: boolean } | undefined> },
  jobs: readonly J[],
): { job: J; schedule: string }[] {
  const out: { job: J; schedule: string }[] = [];
  for (const job of jobs) {
    const section = config.jobs[job.name];
    if (section?.enabled === false) continue;
    const schedule = section?.schedule ?? job.defaultSchedule;
    if (schedule) out.push({ job, schedule });
  }
  return out;
}

/**
 * The next time `expression` fires after `from`, in `zone` (luxon does the calendar and DST work;
 * node-cron's parser expands the fields, so both agree on what the expression means).
 */
export function nextRun(expression: string, zone: string, from: Date = new Date()): DateTime | undefined {
  const fields = cron.parse(expression);
  const start = DateTime.fromJSDate(from, { zone });
  const domRestricted = fields.dayOfMonth.length < 31;
  const dowRestricted = fields.dayOfWeek.length < 7;
  for (let offset = 0; offset <= 366 * 4; offset++) {
    const day = start.startOf('day').plus({ days: offset });
    if (!fields.month.includes(day.month)) continue;
    const domMatch = fields.dayOfMonth.some((d) => (d === 'L' ? day.day === day.daysInMonth : d === day.day));
    const dowMatch = fields.dayOfWeek.some((d) => d === day.weekday % 7);
    const dayMatches = domRestricted && dowRestricted ? domMatch || dowMatch : domMatch && dowMatch;
    if (!dayMatches) continue;
    for (const hour of fields.hour) {
      for (const minute of fields.minute) {
        for (const second of fields.second) {
          const at = day.set({ hour, minute, second, millisecond: 0 });
          if (at.hour === hour && at.minute === minute && at > start) return at;
        }
      }
    }
  }
  return undefined;
}
