import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from './logger.js';

export interface WatchOptions {
  /** The iproute2 binary (tests point it elsewhere). */
  bin?: string;
  /** First delay before a restart; doubled after each failed run up to `maxDelayMs`. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** A run that lasted this long was healthy: the next failure starts again from `minDelayMs`, and is said again. */
  healthyMs?: number;
}

/**
 * Call `onAdded` whenever `ip` is added to an interface of this machine: `ip -o monitor address` (the
 * kernel's netlink notifications, via iproute2) prints one line per change, as it happens. Restarted if
 * it exits, backing off (1 s, 2 s, … 60 s) while it keeps failing — a missing `ip` must not spin — and
 * said once per run of failures, not once a second; `stop()` ends it.
 */
export function watchAddress(
  ip: string,
  onAdded: () => void,
  log: Logger,
  o: WatchOptions = {},
): { stop(): void; attempts(): number } {
  const bin = o.bin ?? 'ip';
  const minDelay = o.minDelayMs ?? 1_000;
  const maxDelay = o.maxDelayMs ?? 60_000;
  const healthyMs = o.healthyMs ?? 30_000;
  let child: ChildProcess | undefined;
  let stopped = false;
  let attempts = 0;
  let delay = minDelay;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  const needle = new RegExp(`\\binet6? ${ip.replace(/[.:]/g, (c) => `\\${c}`)}/`);
  const start = () => {
    attempts++;
    const began = Date.now();
    let ended = false;
    // 'error' (it could not start: ENOENT) and 'exit' may both come: one restart per run.
    const ended_ = (why: string) => {
      if (ended || stopped) return;
      ended = true;
      if (Date.now() - began >= healthyMs) {
        delay = minDelay;
        failing = false;
      }
      const next = `watching for the virtual IP ${ip} again in ${delay / 1000} s (backing off to ${maxDelay / 1000} s while it fails)`;
      if (!failing) log.warn(`${why}; ${next}`);
      else log.debug(`${why}; ${next}`);
      failing = true;
      timer = setTimeout(() => !stopped && start(), delay);
      timer.unref();
      delay = Math.min(maxDelay, delay * 2);
    };
    child = spawn(bin, ['-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('Deleted') && needle.test(line)) onAdded();
    });
    child.once('error', (err) => ended_(`cannot watch addresses for the virtual IP ${ip}: ${bin}: ${err.message}`));
    child.once('exit', (code, signal) => ended_(`${bin} -o monitor address exited (${signal ?? code})`));
  };
  start();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      child?.kill();
    },
    attempts: () => attempts,
  };
}
