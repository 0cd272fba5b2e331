import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** GNU time (Debian package `time`) reports the peak RSS of a process and the children it waited for. */
export const GNU_TIME = '/usr/bin/time';
export const haveGnuTime = (): boolean => existsSync(GNU_TIME);

export interface Sample {
  seconds: number;
  /** Peak resident set size, MB (GNU time's %M). */
  rssMb?: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Command {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Run a command to completion: wall time from our clock (GNU time's %e has only 10 ms), peak RSS
 * from GNU time written to its own file so the command's output stays clean.
 */
/** One side of a comparison. `prepare`/`cleanup` run around every sample and are not timed. */
export interface Side {
  label: string;
  command: Command;
  prepare?: () => Promise<void>;
  cleanup?: () => Promise<void>;
  /** Throw (with a one-line reason) when a run did not do its job; its time must not count. */
  check?: (sample: Sample) => void | Promise<void>;
  rss?: boolean;
}

export async function timeCommand(c: Command, options: { rss?: boolean; timeoutMs?: number } = {}): Promise<Sample> {
  const useTime = (options.rss ?? true) && haveGnuTime();
  const rssFile = path.join(os.tmpdir(), `mfs-jobs-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const [cmd, args] = useTime ? [GNU_TIME, ['-f', '%M', '-o', rssFile, c.cmd, ...c.args]] : [c.cmd, c.args];
  const started = process.hrtime.bigint();
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...c.env },
      cwd: c.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  let rssMb: number | undefined;
  if (useTime) {
    const text = await fs.readFile(rssFile, 'utf8').catch(() => '');
    await fs.rm(rssFile, { force: true });
    // GNU time prefixes "Command exited with non-zero status N" on failure; the figure is the last line.
    const kb = Number.parseInt(text.trim().split('\n').pop() ?? '', 10);
    if (Number.isFinite(kb)) rssMb = kb / 1024;
  }
  return { seconds, rssMb, ...result };
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** One side of a comparison: its samples and their medians. */
export interface Measured {
  label: string;
  /** What was run, for the report (shell-like). */
  command: string;
  seconds: number[];
  rssMb: number[];
  medianSeconds: number;
  medianRssMb?: number;
  maxRssMb?: number;
}

export function summarize(label: string, command: string, samples: Sample[]): Measured {
  const seconds = samples.map((s) => s.seconds);
  const rssMb = samples.flatMap((s) => (s.rssMb === undefined ? [] : [s.rssMb]));
  return {
    label,
    command,
    seconds,
    rssMb,
    medianSeconds: median(seconds),
    medianRssMb: rssMb.length ? median(rssMb) : undefined,
    maxRssMb: rssMb.length ? Math.max(...rssMb) : undefined,
  };
}

/** Shell-like rendering of a command for the report. */
export function shown(c: Command): string {
  return [c.cmd, ...c.args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
