import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from './logger.js';

/**
 * Call `onAdded` whenever `ip` is added to an interface of this machine: `ip -o monitor address` (the
 * kernel's netlink notifications, via iproute2) prints one line per change, as it happens. Restarted if
 * it exits; `stop()` ends it.
 */
export function watchAddress(ip: string, onAdded: () => void, log: Logger): { stop(): void } {
  let child: ChildProcess | undefined;
  let stopped = false;
  const needle = new RegExp(`\\binet6? ${ip.replace(/[.:]/g, (c) => `\\${c}`)}/`);
  const start = () => {
    child = spawn('ip', ['-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('Deleted') && needle.test(line)) onAdded();
    });
    child.once('error', (err) => log.error(`cannot watch addresses for the virtual IP ${ip}: ${err.message}`));
    child.once('exit', (code) => {
      if (stopped) return;
      log.warn(`ip monitor address exited (${code}); watching for ${ip} again in 1 s`);
      setTimeout(() => !stopped && start(), 1_000).unref();
    });
  };
  start();
  return {
    stop: () => {
      stopped = true;
      child?.kill();
    },
  };
}
