import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execCapture, type ExecResult } from '../../lib/core/exec.js';
import { REPO_ROOT } from '../helpers/cli.js';

/** Run a program; a non-zero exit fails with its command line and output. */
export async function must(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ExecResult> {
  const res = await execCapture(command, args, {
    timeoutMs: options.timeoutMs ?? 300_000,
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
  });
  if (res.code !== 0)
    throw new Error(`${command} ${args.join(' ')} exited ${res.code ?? res.signal}:\n${res.stdout}\n${res.stderr}`);
  return res;
}

/**
 * A copy of the repository's source (tracked and untracked, not ignored: what a clean clone has) in a
 * temp directory, with the repository's node_modules linked in: `npm pack` there runs prepack's build
 * into its own dist/, never the dist/ the running tests load from.
 */
export async function stageSource(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-stage-'));
  const list = await must('git', ['-C', REPO_ROOT, 'ls-files', '-z', '-co', '--exclude-standard']);
  const files = list.stdout.split('\0').filter((f) => f && f !== 'node_modules');
  for (const f of files) {
    const from = path.join(REPO_ROOT, f);
    const st = await fs.lstat(from).catch(() => undefined);
    if (!st || !(st.isFile() || st.isSymbolicLink())) continue; // deleted in the work tree
    await fs.mkdir(path.dirname(path.join(dir, f)), { recursive: true });
    await fs.cp(from, path.join(dir, f), { preserveTimestamps: true, verbatimSymlinks: true });
  }
  await fs.symlink(await fs.realpath(path.join(REPO_ROOT, 'node_modules')), path.join(dir, 'node_modules'));
  return dir;
}

/** `npm pack` in a staged copy: the tarball's path. */
export async function packTarball(staged: string, into: string): Promise<string> {
  const res = await must('npm', ['pack', '--json', '--pack-destination', into], { cwd: staged });
  const [{ filename }] = JSON.parse(res.stdout.slice(res.stdout.indexOf('[\n'))) as [{ filename: string }];
  return path.join(into, filename);
}
