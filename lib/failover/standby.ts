import { promises as fs } from 'node:fs';
import path from 'node:path';
import { openExclusive } from '../core/atomic.js';
import type { DirHandle } from '../core/dirhandle.js';
import { readChangelogLines, type Segment } from '../moosefs/changelog.js';
import type { Config, StandbyConfig } from '../core/config.js';
import { ConfigError, ProcessError } from '../core/errors.js';
import { processAlive } from '../core/lock.js';
import { masterStatus, type MasterStatus } from '../moosefs/master.js';
import { generationNamed, type Generation } from '../moosefs/generations/index.js';
import { daemonLock, readMfsConfig, type DaemonLock } from '../moosefs/mfsmaster.js';

/** The standby machine's own mfsmaster: its DATA_PATH, config and state. */

export function requireStandby(config: Config): StandbyConfig {
  if (!config.standby)
    throw new ConfigError(
      'standby',
      `${config.file}: standby: is not configured (dataPath, masterConfig, cliHost, cliPort of this machine's mfsmaster)`,
    );
  return config.standby;
}

/**
 * The standby's mfsmaster.cfg must name the DATA_PATH promote fills, and that directory must exist
 * (the package creates it with the right owner; promote does not guess WORKING_USER).
 */
export async function checkStandby(config: Config, standby: StandbyConfig): Promise<void> {
  const cfg = await readMfsConfig(standby.masterConfig).catch((err: Error) => {
    throw new ConfigError('standby.masterConfig', `${config.file}: standby.masterConfig: ${err.message}`);
  });
  const dataPath = cfg.DATA_PATH;
  if (dataPath !== undefined && path.resolve(dataPath) !== path.resolve(standby.dataPath)) {
    throw new ConfigError(
      'standby.dataPath',
      `${config.file}: standby.dataPath ${standby.dataPath} differs from DATA_PATH = ${dataPath} in ${standby.masterConfig}`,
    );
  }
  const st = await fs.stat(standby.dataPath).catch(() => undefined);
  if (!st?.isDirectory())
    throw new ConfigError(
      'standby.dataPath',
      `${config.file}: standby.dataPath ${standby.dataPath} is not a directory`,
    );
  // A pinned 1.5/1.6.0–1.6.4 standby must keep its lock where promote and demote look for the master's PID.
  if (config.moosefs.generation !== 'auto')
    checkGenerationConfig(config, standby, generationNamed(config.moosefs.generation), cfg);
  const mlPid = (await daemonLock(standby.dataPath, 'mfsmetalogger')).pid;
  if (mlPid !== undefined) {
    throw new ConfigError(
      'standby.dataPath',
      `${config.file}: standby.dataPath ${standby.dataPath} is the DATA_PATH of a running mfsmetalogger (pid ${mlPid}); give the master its own directory`,
    );
  }
}

/**
 * What a generation needs of the standby's mfsmaster.cfg beyond DATA_PATH: before 1.6.5 a LOCK_FILE
 * (anywhere: promote, demote and check-standby read it from the cfg, `masterLockFiles`), since without
 * one the master locks at a place compiled into its build that mfs-jobs cannot know.
 */
export function checkGenerationConfig(
  config: Config,
  standby: StandbyConfig,
  generation: Generation,
  cfg: Record<string, string>,
): void {
  if (generation.lockFile(cfg, standby.dataPath) === undefined) {
    const why = 'without it the master locks where its build says, and mfs-jobs could not see it run';
    const where = `${config.file}: standby.masterConfig ${standby.masterConfig}`;
    throw new ConfigError(
      'standby.masterConfig',
      `${where}: ${generation.label} needs LOCK_FILE set (anywhere its WORKING_USER may write): ${why}`,
    );
  }
}

/** The standby's mfsmaster lock, from every lock its mfsmaster.cfg may put it in (masterLockFiles; daemonLock). */
export async function standbyMasterLock(standby: StandbyConfig): Promise<DaemonLock> {
  const cfg = await readMfsConfig(standby.masterConfig).catch(() => undefined);
  return daemonLock(standby.dataPath, 'mfsmaster', cfg);
}

/** PID of the standby's running mfsmaster (standbyMasterLock). */
export async function standbyMasterPid(standby: StandbyConfig): Promise<number | undefined> {
  return (await standbyMasterLock(standby)).pid;
}

export interface LocalMaster {
  pid?: number;
  info?: MasterStatus;
  /** Why it does not serve (when pid is set but mfscli gets no answer). */
  problem?: string;
  /** The lock named a process that is no mfsmaster of this DATA_PATH (daemonLock): not waited for. */
  ignoredLock?: string;
}

/** Is the standby's own mfsmaster running (lock file PID alive) and serving (mfscli -SIM)? */
export async function localMaster(
  config: Config,
  standby: StandbyConfig,
  o: { waitMs: number; signal?: AbortSignal },
): Promise<LocalMaster> {
  const { pid, ignored } = await standbyMasterLock(standby);
  if (pid === undefined) return ignored ? { ignoredLock: ignored } : {};
  const deadline = Date.now() + o.waitMs;
  let problem: string;
  // A master still loading its metadata answers a moment later: wait, do not restart it.
  do {
    try {
      return {
        pid,
        info: await masterStatus({
          host: standby.cliHost,
          port: standby.cliPort,
          bin: config.mfscliBin,
          timeoutMs: 3_000,
          signal: o.signal,
          generation: config.moosefs.generation,
        }),
      };
    } catch (err) {
      problem = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline && !o.signal?.aborted && processAlive(pid));
  // It died while we waited (a crashed or killed master): nothing holds DATA_PATH any more.
  if (!processAlive(pid)) return {};
  return { pid, problem };
}

/** `mfs-jobs-aside-20261125T221500Z`: where a promotion keeps what DATA_PATH held before. */
export const ASIDE_PREFIX = 'mfs-jobs-aside-';
export const STAGING_PREFIX = '.mfs-jobs-staging-';

export function stamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.(\d+)Z$/, '$1Z');
}

/** Where DATA_PATH's old content went (`dir` unset: it was empty) and which entries moved. */
export interface MovedAside {
  dir?: string;
  moved: string[];
}

/**
 * Move everything in DATA_PATH into a new `mfs-jobs-aside-<time>/` inside it (same filesystem:
 * renames, no copies) — never delete it. Stale changelogs left in a standby's DATA_PATH once made
 * a later start come up with months-old metadata (MooseFS issue 151). The aside directory is root's,
 * 0700, and every rename goes from DATA_PATH's descriptor to the aside directory's (lib/core/dirhandle.ts):
 * DATA_PATH's owner swapping either name for a symlink meanwhile moves nothing anywhere else.
 */
export async function moveAside(data: DirHandle, at: Date, keep: readonly string[]): Promise<MovedAside> {
  const entries = (await data.list()).filter((n) => !n.startsWith(ASIDE_PREFIX) && !keep.includes(n)).sort();
  if (entries.length === 0) return { moved: [] };
  const aside = await data.makePrivateDir(`${ASIDE_PREFIX}${stamp(at)}`, 'aside directory');
  const moved: string[] = [];
  try {
    for (const name of entries) {
      try {
        await data.moveTo(name, aside);
        moved.push(name);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') throw data.failed(name, `moving it into ${aside.path}`, err);
        // The entry gone meanwhile: its owner removed it, nothing to keep. Still there: the owner removed
        // the (then empty) aside directory itself — going on would leave stale changelogs in place.
        if (await data.lstat(name)) {
          const why = `aside directory removed while ${data.path}'s content was moved into it: refusing to go on`;
          throw new ProcessError(aside.path, `${aside.path}: ${why}`);
        }
      }
    }
    await aside.sync();
    await data.sync();
  } finally {
    await aside.close();
  }
  return { dir: aside.path, moved };
}

const NEWLINE = Buffer.from('\n');

/**
 * Copy only the chain's run of a changelog: complete lines of `segment`, in order. Used when a file
 * has a hole after that run or a cut-off last line — measured here: mfsmaster -a silently ignores a
 * changelog whose last line is cut and comes up with old metadata; and it refuses any hole.
 */
export async function writeChainSegment(
  src: string,
  dst: string,
  segment: Segment,
): Promise<{ lines: number; lastTimestamp?: number }> {
  const out = await openExclusive(dst);
  let lines = 0;
  let next = segment.first;
  let lastTimestamp: number | undefined;
  try {
    const buffered: Buffer[] = [];
    const flush = async () => {
      if (buffered.length) await out.write(Buffer.concat(buffered.splice(0)));
    };
    await readChangelogLines(
      src,
      (raw, line, cut) => {
        if (cut || !line || line.version !== next) return true;
        buffered.push(raw, NEWLINE);
        lastTimestamp = line.timestamp;
        lines++;
        next++;
        return next <= segment.last;
      },
      { flush },
    );
    await out.sync();
  } finally {
    await out.close();
  }
  if (next !== segment.last + 1)
    throw new ProcessError(
      src,
      `${src}: expected changelog lines ${segment.first}..${segment.last}, found up to ${next - 1}`,
    );
  return { lines, lastTimestamp };
}

export interface Placement {
  /** Staged file and the name it gets in DATA_PATH. */
  from: string;
  name: string;
}

/**
 * Place staged files into DATA_PATH under master names (`metadata.mfs.back`, `changelog.N.mfs`,
 * oldest N highest, as a master rotates them), owned like DATA_PATH so WORKING_USER can read them.
 */
export async function placeFiles(data: DirHandle, placements: readonly Placement[]): Promise<void> {
  for (const p of placements) await data.place(p.from, p.name, { uid: data.uid, gid: data.gid });
  await data.sync();
}
