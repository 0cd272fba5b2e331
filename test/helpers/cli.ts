import { spawn } from 'node:child_process';
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
export async function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; wrap?: string[] } = {}): Promise<CliResult> {
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
