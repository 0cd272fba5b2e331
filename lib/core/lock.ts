import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { DIR_MODE, openExclusive } from './atomic.js';
import { LockBusyError } from './errors.js';

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  startedAt: string;
  job: string;
}

/** True while a process with this PID exists and has not exited (EPERM still means it exists). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/**
 * An exited process its parent has not reaped yet. A daemonised mfsmaster's parent is init, and an
 * init that reaps late (a container's, measured here: about a second) keeps a killed master as a
 * zombie: signal 0 still reaches it, yet it holds nothing and will never serve.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

async function readOwner(file: string): Promise<LockOwner | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<LockOwner>;
    return typeof parsed.pid === 'number' ? (parsed as LockOwner) : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Unparsable: not written by this lock (it links only complete files). Treat as stale.
    return { pid: -1, startedAt: '', job: '' };
  }
}

/**
 * Remove a lock whose owner is dead. A short-lived `.break` lock (O_EXCL) serialises breakers, and the
 * owner is read again under it, so two contenders cannot delete a lock a third one just took.
 */
async function breakStaleLock(file: string, stalePid: number | undefined): Promise<void> {
  const breaker = `${file}.break`;
  try {
    const handle = await openExclusive(breaker);
    await handle.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const stat = await fs.stat(breaker).catch(() => undefined);
    // A breaker holds `.break` for milliseconds; an old one was left by a killed breaker.
    if (stat && Date.now() - stat.mtimeMs > 10_000) await fs.rm(breaker, { force: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    return;
  }
  try {
    const again = await readOwner(file);
    if (again && again.pid === stalePid && !processAlive(again.pid)) await fs.rm(file, { force: true });
  } finally {
    await fs.rm(breaker, { force: true });
  }
}

/**
 * Take the per-job lock: O_EXCL create of `<dir>/<job>.lock` holding our PID. A lock whose PID is
 * dead is stale (the run was killed) and is taken over; a live one means "skip, already running".
 */
export async function acquireLock(
  dir: string,
  job: string,
  options: { waitMs?: number; signal?: AbortSignal } = {},
): Promise<Lock> {
  // Failover hooks wait for each other (keepalived may run notify_backup while promote still runs).
  const deadline = Date.now() + (options.waitMs ?? 0);
  for (;;) {
    try {
      return await tryAcquireLock(dir, job);
    } catch (err) {
      if (!(err instanceof LockBusyError) || Date.now() >= deadline || options.signal?.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** `<job>.lock.<pid>.<random>`: a lock being written, before it is linked into place. */
const pendingName = (file: string) => `${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}`;

/** Pending lock files of killed runs (their PID is dead) are removed; they never count as a lock. */
async function sweepPending(dir: string, file: string): Promise<void> {
  const prefix = `${path.basename(file)}.`;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const m = name.startsWith(prefix) ? /^(\d+)\.[0-9a-f]+$/.exec(name.slice(prefix.length)) : null;
    if (m && !processAlive(Number(m[1]))) await fs.rm(path.join(dir, name), { force: true });
  }
}

/**
 * The lock appears whole or not at all: the owner is written and fsynced to a file of our own, which is
 * then hard-linked to `<job>.lock` (link fails when the lock exists, like O_EXCL). A run killed at any
 * point leaves no lock, or a complete one whose dead PID makes it stale: never an empty lock that
 * would have to be waited out.
 */
async function tryAcquireLock(dir: string, job: string): Promise<Lock> {
  await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
  const file = path.join(dir, `${job}.lock`);
  await sweepPending(dir, file);
  const owner: LockOwner = { pid: process.pid, startedAt: new Date().toISOString(), job };
  const pending = path.join(dir, pendingName(file));
  const handle = await openExclusive(pending);
  try {
    await handle.writeFile(JSON.stringify(owner) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await fs.link(pending, file);
        return {
          file,
          release: async () => {
            const current = await readOwner(file);
            if (current?.pid === process.pid) await fs.rm(file, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const current = await readOwner(file);
        if (current && processAlive(current.pid)) {
          throw new LockBusyError(
            file,
            `job ${job} is already running (pid ${current.pid} since ${current.startedAt}, lock ${file})`,
          );
        }
        await breakStaleLock(file, current?.pid);
      }
    }
    throw new LockBusyError(file, `could not take lock ${file} for job ${job}`);
  } finally {
    await fs.rm(pending, { force: true });
  }
}
