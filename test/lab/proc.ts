import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import net from 'node:net';
import { listenPort } from '../../lib/core/net.js';

/**
 * Every process the lab starts is tracked by PID and killed by PID at exit, even when a test
 * forgets: a crashed test run must not leave masters listening on this machine.
 */
const tracked = new Set<number>();
process.once('exit', () => {
  for (const pid of tracked) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** Track a process the lab did not spawn itself (a daemonising master: its PID comes from its lock). */
export function trackPid(pid: number, on = true): void {
  if (on) tracked.add(pid);
  else tracked.delete(pid);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(everyMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`,
  );
}

/** A free TCP port on `host` for a lab server, outside the range outgoing connections take theirs from. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return listenPort(host);
}

export function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** A foreground daemon whose output goes to a log file; stopped by PID. */
export class Daemon {
  readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    readonly logFile: string,
    options: { env?: NodeJS.ProcessEnv; wrap?: string[] } = {},
  ) {
    const [cmd, ...rest] = options.wrap ? [...options.wrap, command, ...args] : [command, ...args];
    const log = createWriteStream(logFile, { flags: 'a' });
    this.child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    this.child.stdout?.pipe(log, { end: false });
    this.child.stderr?.pipe(log, { end: false });
    if (this.child.pid) tracked.add(this.child.pid);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        if (this.child.pid) tracked.delete(this.child.pid);
        log.end();
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.child.once('error', () => resolve({ code: -1, signal: null }));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  async log(): Promise<string> {
    return fs.readFile(this.logFile, 'utf8').catch(() => '');
  }

  waitExit(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  /** SIGTERM, wait; SIGKILL if it will not go. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    try {
      await this.waitExit(timeoutMs);
    } catch {
      this.child.kill('SIGKILL');
      await this.waitExit(5_000);
    }
  }

  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.waitExit(5_000);
  }
}

/** PIDs of every process working (cwd) inside `dir`: a scratch or promoted mfsmaster left running shows up here. */
export async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cwd = await fs.readlink(`/proc/${name}/cwd`).catch(() => '');
    if (cwd === dir || cwd.startsWith(dir + '/')) pids.push(Number(name));
  }
  return pids;
}
