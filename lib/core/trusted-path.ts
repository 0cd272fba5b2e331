// May another user change what a path names? sshd's StrictModes walk (auth_secure_path), for what
// mfs-jobs reaches by name as root and cannot check after the fact: the hook's daemon socket (a forged
// one answers "promoted") and the zstd it runs. Node built-ins only: the hook loads this before the rest.
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';

/** Root, or the user running this (a test or an unprivileged hook talks to its own daemon). */
export function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

export const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

export type PathTrust = { trusted: true; real: string } | { trusted: false; missing: boolean; why: string };

const MAX_LINKS = 40;

function writable(p: string, st: Stats): string {
  return `${p} is ${st.mode & 0o002 ? 'world' : 'group'}-writable (mode ${octal(st.mode)})`;
}

const NOUN = { socket: 'socket', file: 'regular file', dir: 'directory' } as const;

/**
 * Why a directory on the way lets others swap what comes next in it. A sticky one (like /tmp) does
 * not: others cannot rename or remove an entry they do not own, and every entry passed through must be
 * root's or ours.
 */
function dirProblem(dir: string, st: Stats): string | undefined {
  if (!trustedOwner(st.uid)) return `${dir} is owned by uid ${st.uid}`;
  if (st.mode & 0o022 && !(st.mode & 0o1000)) return writable(dir, st);
  return undefined;
}

/**
 * Whether only root (or this user) can change what `file` names: every directory from / down owned by
 * one of them and not group- or world-writable (unless sticky), every symbolic link on the way theirs
 * too (and followed), and `file` itself theirs, of `kind`, and (a file or directory) not writable by
 * others, sticky or not: a directory is where what we trust is kept. An `ancestor` is a directory
 * checked as one on the way to something else (sticky is fine).
 * Checked by lstat, component by component, so a link planted anywhere on the way is seen; once this
 * says trusted, no other user can change the answer before we open or connect.
 */
export async function pathTrust(file: string, kind: 'socket' | 'file' | 'dir' | 'ancestor'): Promise<PathTrust> {
  const untrusted = (why: string, missing = false): PathTrust => {
    return { trusted: false, missing, why: why.startsWith(`${file} `) ? why : `${file}: ${why}` };
  };
  const rootSt = await fs.lstat('/');
  const rootProblem = dirProblem('/', rootSt);
  if (rootProblem) return untrusted(rootProblem);
  let current = '/';
  let rest = path.resolve(file).split('/').filter(Boolean);
  let links = 0;
  while (rest.length > 0) {
    const name = rest.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      current = path.dirname(current);
      continue;
    }
    const next = path.join(current, name);
    let st: Stats;
    try {
      st = await fs.lstat(next);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const gone = code === 'ENOENT' || code === 'ENOTDIR';
      return untrusted(gone ? `${next} does not exist` : `${next}: ${code ?? String(err)}`, code === 'ENOENT');
    }
    if (st.isSymbolicLink()) {
      if (!trustedOwner(st.uid)) return untrusted(`symbolic link ${next} is owned by uid ${st.uid}`);
      if (++links > MAX_LINKS) return untrusted('too many symbolic links');
      const target = await fs.readlink(next);
      if (path.isAbsolute(target)) current = '/';
      rest = [...target.split('/').filter(Boolean), ...rest];
      continue;
    }
    if (rest.length > 0 || kind === 'ancestor') {
      if (!st.isDirectory()) return untrusted(`${next} is not a directory`);
      const problem = dirProblem(next, st);
      if (problem) return untrusted(problem);
    } else {
      const isKind = kind === 'socket' ? st.isSocket() : kind === 'dir' ? st.isDirectory() : st.isFile();
      if (!isKind) return untrusted(`${next} is not a ${NOUN[kind]}`);
      if (!trustedOwner(st.uid)) return untrusted(`${next} is owned by uid ${st.uid}`);
      if (kind !== 'socket' && st.mode & 0o022) return untrusted(writable(next, st));
    }
    current = next;
  }
  return { trusted: true, real: current };
}

/**
 * A program found the way execvp finds it (each absolute directory of PATH in order), refused when the
 * first one found could be changed by another user: root never runs what such a user put earlier in
 * its PATH. `override`, when set, is the absolute path to use instead.
 */
export async function trustedProgram(name: string, envPath: string | undefined, override?: string): Promise<PathTrust> {
  if (override !== undefined) {
    if (!path.isAbsolute(override)) return { trusted: false, missing: false, why: `${override}: not an absolute path` };
    return pathTrust(override, 'file');
  }
  for (const dir of (envPath ?? '/usr/bin:/bin').split(':')) {
    // An empty or relative entry means a directory that depends on where we run: never searched.
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    const found = await fs.stat(candidate).then(
      (st) => st.isFile() && (st.mode & 0o111) !== 0,
      () => false,
    );
    if (found) return pathTrust(candidate, 'file');
  }
  return { trusted: false, missing: true, why: `${name}: not found in PATH` };
}
