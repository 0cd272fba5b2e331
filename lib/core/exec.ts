import { spawn } from 'node:child_process';
import { ProcessError } from './errors.js';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run a program without a shell, capture its output, kill it after `timeoutMs`. Never throws on exit status.
 * `fds`: descriptors of ours the program gets as 3, 4, … (it reaches them as `/proc/self/fd/3`, …).
 */
export function execCapture(
  command: string,
  args: readonly string[],
  options: {
    timeoutMs?: number;
    signal?: AbortSignal;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    fds?: readonly number[];
  } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const stdio = ['ignore', 'pipe', 'pipe', ...(options.fds ?? [])] as const;
    const { env, cwd, signal } = options;
    const child = spawn(command, args, { stdio: [...stdio], env, cwd, signal });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') reject(new ProcessError(command, `${command}: not found (is it installed and on PATH?)`));
      else if (err.name === 'AbortError') reject(new ProcessError(command, `${command}: aborted`));
      else reject(new ProcessError(command, `${command}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
