import { createRequire } from 'node:module';

// The config's checks of a schedule and a zone, apart from schedule.ts: that one needs luxon for next run
// times, and every command that reads a config (a hook's `run promote` too) would load it (≈ 25 ms of CPU).
// node-cron too is loaded only for a config that names a schedule (≈ 20 ms more, issue 24).

type CronParser = Pick<typeof import('node-cron'), 'validateDetailed'>;
let cron: CronParser | undefined;

/** Load node-cron before parsing a config that names a schedule (loadConfig does: it may import, parsing may not). */
export async function loadCronParser(): Promise<void> {
  cron ??= await import('node-cron');
}

/** Why a cron expression is invalid, or undefined when it is fine (node-cron's own parser decides). */
export function cronProblem(expression: string): string | undefined {
  // A caller that parses a config itself (parseConfig) without loadCronParser gets node-cron's CommonJS build.
  cron ??= createRequire(import.meta.url)('node-cron') as CronParser;
  const { valid, errors } = cron.validateDetailed(expression);
  if (valid) return undefined;
  return errors.map((e) => `${e.field}: ${e.message}`).join('; ') || 'invalid cron expression';
}

/** A zone Intl knows (luxon's IANAZone.isValidZone asks the same question, so both always agree). */
export function isValidZone(zone: string): boolean {
  // 'UTC', the default, is valid everywhere; asking Intl loads its zone data: ~35 ms of every start-up.
  if (zone === 'UTC') return true;
  if (!zone) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone }).format();
    return true;
  } catch {
    return false;
  }
}
