import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../core/exec.js';
import { ProcessError } from '../core/errors.js';
import { processAlive } from '../core/lock.js';
import { DEFAULT_GENERATION, GENERATIONS, type Generation } from './generations/index.js';

/** `KEY = VALUE` lines of an mfsmaster.cfg (comments and blanks skipped). */
export async function readMfsConfig(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ProcessError(
      file,
      `cannot read MooseFS config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_]+)\s*=\s*(.*?)\s*$/.exec(line.replace(/#.*$/, ''));
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export function mfsConfigText(values: Record<string, string | number>): string {
  return (
    Object.entries(values)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') + '\n'
  );
}

/** An mfsmaster.cfg as readMfsConfig gives it. */
export type MfsConfig = Readonly<Record<string, string>>;

/**
 * Every lock a master run with this mfsmaster.cfg may hold, whatever its generation: DATA_PATH's
 * `.mfsmaster.lock` (1.6.5 and later), and LOCK_FILE wherever the cfg points it (1.5, 1.6.0–1.6.4).
 * Promote, demote and check-standby all ask here, so they agree on where a running master shows.
 */
export function masterLockFiles(cfg: MfsConfig, dataPath: string): string[] {
  return [...new Set(GENERATIONS.flatMap((g) => g.lockFile(cfg, dataPath) ?? []))];
}

/** What a DATA_PATH's lock says about its daemon: the PID of one that really runs there, or why none counts. */
export interface DaemonLock {
  pid?: number;
  /** The lock names a live process that is not that daemon in this DATA_PATH: why it was not believed. */
  ignored?: string;
}

export type LockingDaemon = 'mfsmaster' | 'mfsmetalogger';

/**
 * The daemon that holds DATA_PATH's `.mfsmaster.lock` (or `.mfsmetalogger.lock`). 3.0 and later (and
 * 1.5/1.6.4, whose LOCK_FILE mfs-jobs points there) write their PID into it; 1.6.5+ 1.6 releases only
 * lock it, empty: then the kernel's lock table says who holds it. The lock belongs to DATA_PATH's owner,
 * who can write any number into it (`echo 1 > .mfsmaster.lock` once made promote wait out its start
 * timeout for "pid 1"), and a stale lock's PID may have been reused: a PID counts only when /proc says it
 * is that daemon in this DATA_PATH — its program so named and installed (owned by root, not writable by
 * others: not a copy the MooseFS user made), its working directory this DATA_PATH (every generation
 * chdirs there before it takes the lock). The one check for everything that waits on, signals or refuses
 * because of a daemon in a DATA_PATH.
 */
export async function daemonLock(
  dataPath: string,
  daemon: LockingDaemon = 'mfsmaster',
  cfg?: MfsConfig,
): Promise<DaemonLock> {
  const files =
    daemon === 'mfsmaster' && cfg ? masterLockFiles(cfg, dataPath) : [path.join(dataPath, `.${daemon}.lock`)];
  let ignored: string | undefined;
  for (const file of files) {
    const lock = await lockIn(file, daemon, dataPath);
    if (lock.pid !== undefined) return lock;
    ignored ??= lock.ignored;
  }
  return ignored ? { ignored } : {};
}

/** What one lock file says (daemonLock). */
async function lockIn(file: string, daemon: LockingDaemon, dataPath: string): Promise<DaemonLock> {
  const text = await readLock(file);
  if (text === undefined) return {};
  const written = Number.parseInt(text.trim(), 10);
  const named = Number.isInteger(written) && written > 0;
  const pid = named ? (processAlive(written) ? written : undefined) : await lockHolder(file);
  if (pid === undefined) return {};
  const problem = await notDaemonIn(pid, daemon, dataPath);
  if (!problem) return { pid };
  return { ignored: `${file}: pid ${pid} is not an ${daemon} of ${dataPath} (${problem}): ignored` };
}

/** PID of the mfsmaster running in DATA_PATH (daemonLock; given its mfsmaster.cfg, any lock `masterLockFiles` names), if any. */
export async function runningMasterPid(dataPath: string, cfg?: MfsConfig): Promise<number | undefined> {
  return (await daemonLock(dataPath, 'mfsmaster', cfg)).pid;
}

/** A lock's first bytes, never through a link DATA_PATH's owner planted (O_NOFOLLOW), at most 64. */
async function readLock(file: string): Promise<string | undefined> {
  const handle = await fs.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK).catch(() => undefined);
  if (!handle) return undefined;
  try {
    if (!(await handle.stat()).isFile()) return '';
    const buf = Buffer.alloc(64);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('latin1');
  } finally {
    await handle.close();
  }
}

/** Why `pid` is not `daemon` working in `dataPath`, or undefined when it is one. */
async function notDaemonIn(pid: number, daemon: LockingDaemon, dataPath: string): Promise<string | undefined> {
  const exe = (await fs.readlink(`/proc/${pid}/exe`).catch(() => undefined))?.replace(/ \(deleted\)$/, '');
  if (exe === undefined) return 'its program cannot be read in /proc';
  if (path.basename(exe) !== daemon) return `its program is ${exe}`;
  // stat through the /proc link reaches the very binary it runs, even one replaced since.
  const st = await fs.stat(`/proc/${pid}/exe`).catch(() => undefined);
  const installed = st && (st.uid === 0 || st.uid === process.geteuid?.()) && (st.mode & 0o022) === 0;
  if (!installed) return `its program ${exe} is not an installed binary (owned by root, not writable by others)`;
  const cwd = (await fs.readlink(`/proc/${pid}/cwd`).catch(() => undefined))?.replace(/ \(deleted\)$/, '');
  const real = await fs.realpath(dataPath).catch(() => path.resolve(dataPath));
  if (cwd !== real) return `it works in ${cwd ?? 'an unreadable directory'}`;
  return undefined;
}

/** The process holding a POSIX lock on `file`, from /proc/locks ("1: POSIX ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF"). */
async function lockHolder(file: string): Promise<number | undefined> {
  const st = await fs.lstat(file).catch(() => undefined);
  if (!st) return undefined;
  const locks = await fs.readFile('/proc/locks', 'utf8').catch(() => '');
  for (const line of locks.split('\n')) {
    const m = /^\d+: POSIX\s+\S+\s+WRITE\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (!m || Number(m[4]) !== st.ino) continue;
    // /proc/locks prints the device as hex major:minor.
    const dev = (Number.parseInt(m[2]!, 16) << 8) | Number.parseInt(m[3]!, 16);
    if (dev === st.dev || Number.parseInt(m[2]! + m[3]!, 16) === st.dev) {
      const pid = Number(m[1]);
      if (processAlive(pid)) return pid;
    }
  }
  return undefined;
}

/** The line of mfsmaster's output that says why it failed (e.g. "hole in change files …"). */
export function mfsmasterErrorLine(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.replace(/^mfsmaster\[\d+\]: /, '').trim())
    .filter(Boolean);
  const telling = [
    /hole in change files/,
    /can't find valid metadata/,
    /different id number/,
    /version mismatch/,
    /garbage at the end/,
    /wrong header/,
    /can't find metadata/,
    /EADDRINUSE|can't listen/,
    /error applying changelogs/,
    /lock/,
  ];
  for (const re of telling) {
    const hit = lines.find((l) => re.test(l));
    if (hit) return hit;
  }
  return (
    lines
      .filter(
        (l) =>
          !/^(open files limit|working directory|initializing|exports file|topology file|loading metadata)/.test(l),
      )
      .pop() ?? 'no output'
  );
}

export interface StartResult {
  code: number | null;
  output: string;
  durationMs: number;
}

/**
 * Start mfsmaster as a daemon. Where the daemon waits for its initialisation (1.6.5 and later) that is
 * `mfsmaster -c CFG [-a] start`: it returns once the master initialised (exit 0) or failed (exit 1,
 * reason in the output). `-a` restores from the newest image and every changelog in DATA_PATH — the
 * only safe way to start a promoted or restored 1.7+ master. 1.5 and 1.6.0–1.6.4 daemonise before they
 * initialise and exit 0 whatever happens next (their reasons go to syslog only): such a start counts once
 * the PID in the lock is alive and `ready()` says so, and as failed when that PID is gone. (Run in the
 * foreground instead, they install no signal handlers: a SIGTERM would then stop them without saving.)
 */
export async function startMaster(o: {
  configFile: string;
  bin?: string;
  autoRestore: boolean;
  generation?: Generation;
  ready?: () => Promise<boolean>;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<StartResult> {
  const started = Date.now();
  const generation = o.generation ?? DEFAULT_GENERATION;
  const timeoutMs = o.timeoutMs ?? 600_000;
  const args = generation.startArgs(o.configFile, { autoRestore: o.autoRestore, foreground: false });
  const res = await execCapture(o.bin ?? 'mfsmaster', args, { timeoutMs, signal: o.signal });
  const output = res.stdout + res.stderr;
  if (generation.daemonWaitsForInit || res.code !== 0)
    return { code: res.code, output, durationMs: Date.now() - started };
  const cfg = await readMfsConfig(o.configFile);
  const dataPath = cfg.DATA_PATH;
  if (!dataPath) throw new ProcessError(o.configFile, `${o.configFile}: DATA_PATH is not set`);
  const masterPid = () => runningMasterPid(dataPath, cfg);
  const initialised = await waitInitialised(masterPid, o.ready ?? (async () => true), Date.now() + timeoutMs, o.signal);
  const why = initialised
    ? ''
    : `mfsmaster (${generation.label}) exited while initialising; it says why only to syslog`;
  return { code: initialised ? 0 : 1, output: why ? `${output}${why}\n` : output, durationMs: Date.now() - started };
}

/** The daemon's PID appears in its lock (LOCK_FILE or DATA_PATH's), alive until `ready()`; false once it is gone. */
async function waitInitialised(
  masterPid: () => Promise<number | undefined>,
  ready: () => Promise<boolean>,
  deadline: number,
  signal?: AbortSignal,
): Promise<boolean> {
  let seenPid = false;
  const graceUntil = Date.now() + 5_000;
  // Soon at first (a failover waits on this), then every 50 ms.
  let pauseMs = 10;
  while (Date.now() < deadline && !signal?.aborted) {
    const pid = await masterPid();
    if (pid !== undefined) {
      seenPid = true;
      if (await ready().catch(() => false)) return (await masterPid()) !== undefined;
    } else if (seenPid || Date.now() > graceUntil) {
      return false;
    }
    await new Promise((r) => setTimeout(r, pauseMs));
    pauseMs = Math.min(50, pauseMs * 2);
  }
  return false;
}

/** Clean stop (the master writes metadata.mfs), waiting for the process to go. */
export async function stopMaster(o: {
  configFile: string;
  bin?: string;
  generation?: Generation;
  timeoutMs?: number;
}): Promise<StartResult> {
  const started = Date.now();
  const generation = o.generation ?? DEFAULT_GENERATION;
  const res = await execCapture(o.bin ?? 'mfsmaster', generation.stopArgs(o.configFile), {
    timeoutMs: o.timeoutMs ?? 120_000,
  });
  return { code: res.code, output: res.stdout + res.stderr, durationMs: Date.now() - started };
}
