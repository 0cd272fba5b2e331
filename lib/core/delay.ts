import { setTimeout as sleepFor } from 'node:timers/promises';

/** Wait `ms`, or less if `signal` aborts (never rejects: the caller checks its signal). */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return ms > 0 ? sleepFor(ms, undefined, { signal }).catch(() => undefined) : Promise.resolve();
}
