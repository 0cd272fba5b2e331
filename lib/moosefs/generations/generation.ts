/**
 * What differs between MooseFS generations, asked in one place. Each generation's file answers the
 * same questions (image format, how mfsmaster is started and stopped, its config keys, how a restore
 * is done, which files exist); jobs ask the adapter and never test a version number themselves —
 * like pgBackRest's one file per PostgreSQL version.
 */
import type { ChunkserverRecord } from './chunkserver-list.js';

/** '1.6' is 1.6.0–1.6.4 (no metalogger yet); '1.6.5' is 1.6.5 and later 1.6 releases; '3.0' serves 1.7–3.x. */
export type GenerationName = '1.5' | '1.6' | '1.6.5' | '3.0' | '4';

/** The image header magic a generation writes: `MFSM 1.5` (1.5.x and 1.6.x) or `MFSM 2.0` (2.0 and later). */
export type ImageMagic = 'MFSM 1.5' | 'MFSM 2.0';

/** Listen-port config keys of mfsmaster, per peer role. `ml` is absent before 1.6.5 (no metalogger). */
export interface ListenKeys {
  ml?: { host: string; port: string };
  cs: { host: string; port: string };
  cl: { host: string; port: string };
}

export interface Generation {
  name: GenerationName;
  /** For messages: "MooseFS 1.6". */
  label: string;
  imageMagic: ImageMagic;
  /**
   * `mfsmetarestore`: rebuild `metadata.mfs` from an image and changelogs, then a plain start (before 1.7);
   * `mfsmaster-a`: the master restores itself from DATA_PATH at start (1.7 and later).
   */
  restore: 'mfsmetarestore' | 'mfsmaster-a';
  listenKeys: ListenKeys;
  /**
   * How a master is asked what it serves when `moosefs.generation` pins this generation: `mfscli` (-SIM,
   * -SMB) for 3.0, as before the client protocol was spoken from Node (Debian's mfscli is 3.0 and talks
   * to its own masters only); `protocol` (CLTOMA_INFO from Node, lib/moosefs/protocol.ts) for the others.
   */
  askPinnedThrough: 'mfscli' | 'protocol';
  /** Config lines every master of this generation needs beside the usual ones (drill's scratch masters). */
  masterConfigExtra(dataPath: string): Record<string, string>;
  /**
   * Where a master of this generation run with this mfsmaster.cfg keeps the lock holding its PID, or
   * undefined when the cfg does not say and the place is compiled into the binary (1.5, 1.6.0–1.6.4 without
   * LOCK_FILE: `RUN_PATH/mfsmaster.lock`, which depends on the build's prefix).
   */
  lockFile(cfg: Readonly<Record<string, string>>, dataPath: string): string | undefined;
  /** mfsmaster's argv to start (`autoRestore`: `-a`, only where `restore` is `mfsmaster-a`). */
  startArgs(configFile: string, o: { autoRestore: boolean; foreground: boolean }): string[];
  /** mfsmaster's argv for a clean stop (the master writes metadata.mfs before it exits). */
  stopArgs(configFile: string): string[];
  /**
   * False where mfsmaster daemonises before it initialises and exits 0 whatever happens next (1.5,
   * 1.6.0–1.6.4): such a master is run in the foreground, detached, its output kept in a log file.
   */
  daemonWaitsForInit: boolean;
  /** Does mfsmaster answer CLTOMA_INFO with its metadata version (2.0 and later)? */
  reportsMetadataVersion: boolean;
  /**
   * Files beside the image a restore needs, as the master and a metalogger name them: 1.x keeps client
   * sessions in `sessions.mfs` (a 1.6.4 master restored without it leaves every old mount with
   * "Input/output error" until remounted); from 1.7 on they are a section of the image.
   */
  sessionsFiles: readonly string[];
  /**
   * After a restore that lost changes, does the master hand out the lost files' chunk ids again? 1.5 and
   * 1.6.0–1.6.4 do not raise their next chunk id past the chunks a chunkserver reports (1.6.27 does): new
   * writes then fail with EIO until the master's chunk loop has deleted the orphan chunks.
   */
  reusesLostChunkIds: boolean;
  /** Does a metalogger exist (1.6.5 and later)? Before, chunkservers' changelog_csback files are the only copy. */
  hasMetalogger: boolean;
  /**
   * Changelog operations a master writes on its own, with no client asking: its housekeeping (freeing
   * inodes, emptying the trash, dropping stale sessions) and, from 4.x on, `IDLE()` — written after 30 s
   * without a change, and by a freshly started master at its first timer tick. A restored master can
   * serve a version or two past what was restored before anyone touches it; these are the only
   * operations that may account for that.
   */
  selfChanges: readonly string[];
  /**
   * Trash time: what a file gets when nobody set one (seconds), and the step the master applies a
   * changelog's `SETTRASHTIME(inode,uid,SECONDS,smode)` in. Every generation logs seconds; 4.x keeps
   * whole hours and rounds up when it applies the value (filesystem.c fs_univ_settrashretention).
   */
  trashTime: { defaultSeconds: number; stepSeconds: number };
  /**
   * Does mfsmaster read mfsexports.cfg, with `md5pass=` (1.6 and later)? 1.5 has no exports at all: any
   * client that reaches its client port may mount it. (An empty exports file is refused at start:
   * "no exports defined !!!".)
   */
  exportsWithPassword: boolean;
  /**
   * The record layout of the master's answer to CLTOMA_CSERV_LIST for a master reporting `softwareVersion`
   * (chunkserver-list.ts), or undefined where this tool does not know it (4.x answers by a request mode).
   */
  chunkserverRecord(softwareVersion: string): ChunkserverRecord | undefined;
}
