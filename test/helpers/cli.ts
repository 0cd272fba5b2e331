import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/helpers/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const MFS_JOBS_BIN = path.join(REPO_ROOT, 'bin', 'mfs-jobs');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the real `mfs-jobs` executable, as cron or ucarp would; `wrap` prefixes the command (`nsenter --net=…`). */
export async function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; wrap?: string[] } = {},
): Promise<CliResult> {
  const run = startCli(args, options.env, options.wrap);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  try {
    return await run.done;
  } finally {
    clearTimeout(timer);
  }
}

/** Start the CLI without waiting (daemon, overlapping runs); the caller stops it by PID. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []) {
  const [cmd, ...rest] = [...wrap, process.execPath, MFS_JOBS_BIN, ...args];
  const child = spawn(cmd!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, ...out }));
  });
  return { child, out, done };
}

export interface MeasuredRun extends CliResult {
  seconds: number;
  /** The child's peak resident memory (VmHWM), MiB, as last read from /proc while it ran. */
  peakMiB: number;
}

/** runCli, with the child's peak RSS polled from /proc and its run time; killed (by its PID) after `timeoutMs`. */
export async function runCliMeasured(args: string[], timeoutMs: number): Promise<MeasuredRun> {
  const started = Date.now();
  const run = startCli(args);
  let peakKiB = 0;
  const poll = setInterval(() => {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${run.child.pid}/status`, 'utf8'));
      if (hwm) peakKiB = Math.max(peakKiB, Number(hwm[1]));
    } catch {
      // Gone between two polls.
    }
  }, 50);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  try {
    return { ...(await run.done), seconds: (Date.now() - started) / 1000, peakMiB: peakKiB / 1024 };
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
  }
}
