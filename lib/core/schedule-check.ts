import cron from 'node-cron';

// The config's checks of a schedule and a zone, apart from schedule.ts: that one needs luxon for next run
// times, and every command that reads a config (a hook's `run promote` too) would load it (≈ 25 ms of CPU).

/** Why a cron expression is invalid, or undefined when it is fine (node-cron's own parser decides). */
export function cronProblem(expression: string): string | undefined {
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
