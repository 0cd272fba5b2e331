import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import Transport from 'winston-transport';
import { watchAddress } from '../../../lib/core/vip-watch.js';

/** A real winston logger whose lines are kept (what the daemon would write to stderr). */
function capturingLogger(): { log: winston.Logger; lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  class Keep extends Transport {
    override log(info: { level: string; message: string }, next: () => void) {
      lines.push({ level: info.level, message: info.message });
      next();
    }
  }
  return { log: winston.createLogger({ level: 'debug', transports: [new Keep()] }), lines };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the VIP watch without a working `ip`', () => {
  test('a missing binary: restarts back off (not a tight loop) and the failure is said once', async () => {
    const { log, lines } = capturingLogger();
    const w = watchAddress('192.0.2.10', () => undefined, log, {
      bin: '/nonexistent/ip',
      minDelayMs: 50,
      maxDelayMs: 400,
    });
    await sleep(1_500);
    w.stop();
    // 50, 100, 200, 400, 400…: about 6 attempts in 1.5 s (a fixed 50 ms would make 30).
    expect(w.attempts()).toBeGreaterThanOrEqual(3);
    expect(w.attempts()).toBeLessThanOrEqual(9);
    const said = lines.filter((l) => l.level !== 'debug');
    expect(said).toHaveLength(1);
    expect(said[0]!.message).toMatch(
      /^cannot watch addresses for the virtual IP 192\.0\.2\.10: \/nonexistent\/ip: spawn \/nonexistent\/ip ENOENT; watching for the virtual IP 192\.0\.2\.10 again in 0\.05 s/,
    );
  });

  test('an `ip` that exits at once is restarted with the same back-off; a healthy run resets it and is said again', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-vipwatch-'));
    try {
      const bin = path.join(dir, 'ip');
      await fs.writeFile(bin, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      const { log, lines } = capturingLogger();
      const w = watchAddress('192.0.2.10', () => undefined, log, {
        bin,
        minDelayMs: 50,
        maxDelayMs: 400,
        healthyMs: 60_000,
      });
      await sleep(1_500);
      w.stop();
      expect(w.attempts()).toBeLessThanOrEqual(9);
      expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
      expect(lines[0]!.message).toContain(`${bin} -o monitor address exited (1)`);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
