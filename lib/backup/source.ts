import { promises as fs } from 'node:fs';
import path from 'node:path';
import { formatHole, rollForward, type ChangelogPiece } from '../moosefs/chain.js';
import { scanChangelogFile } from '../moosefs/changelog.js';
import type { Config, MasterHost, MetaloggerHost } from '../core/config.js';
import { ChainError, StoreError, TransferError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { snapshotId, type Manifest, type ManifestFile, type StoredSnapshot } from '../store/manifest.js';
import {
  changelogIndex,
  readImageHeader,
  restoredImageName,
  restoreFrom,
  type ImageHeader,
} from '../moosefs/metadata.js';
import { openSource, type FileSource, type RemoteEntry } from '../transport/remote.js';
import { sessionsFile } from '../moosefs/datapath.js';
import { formatBytes } from '../core/progress.js';
import {
  ensureStoreSpace,
  finaliseSnapshot,
  freeSnapshotId,
  isNoSpace,
  makeStageDir,
} from '../store/snapshot-store.js';
import { changelogNeeded, chooseImage } from './inventory.js';
import { decideImage, type ArchiveView, type Covered, type ImageBounds } from './incremental.js';
import { readChangelogEdges } from '../moosefs/changelog-edges.js';
import {
  takeInventory,
  type ChangelogCandidate,
  type ImageCandidate,
  type SourceInventory,
} from '../moosefs/inventory.js';
import { sameContent, storedSizeOf, storeStagedFile, type StoreWriteSettings } from '../store/stored-file.js';
import { changelogChange, fetchFile, imageChange, trimCutLastLine } from '../transport/transfer.js';
import { CHANGELOG_GROWTH, ReadBoundError, type ReadBound } from '../transport/bounded.js';

/**
 * One source's backup: take stock of its DATA_PATH, pull the newest image and the changelogs that
 * roll it forward into a staged snapshot, check everything, and only then let the snapshot appear.
 */

/** The source changed under us (rewritten image, rotated changelog): worth exactly one more try. */
class SourceChangedError extends TransferError {}

export type Host = MasterHost | MetaloggerHost;

export interface BackupRequest {
  config: Config;
  host: Host;
  store: string;
  /** The newest healthy snapshot of this source, for "already have". */
  newest: StoredSnapshot | undefined;
  /** Also take a snapshot when the image is unchanged but the changelogs reach further. */
  snapshotOnNewChangelogs: boolean;
  dryRun: boolean;
  log: Logger;
  signal: AbortSignal;
  mfsJobsVersion: string;
  /** How the snapshot's files are stored (compression, encryption). */
  storage: StoreWriteSettings;
  /**
   * With jobs.archive configured: the store's archive and the bounds on a restore's roll-forward. A new image
   * is then stored only when the newest one + the archive do not cover the source (lib/backup/incremental.ts).
   */
  incremental?: { archive: ArchiveView; bounds: ImageBounds };
}

export type BackupOutcome =
  | { kind: 'snapshot'; manifest: Manifest; bytes: number; seconds: number; attempts: number; notes: string[] }
  | { kind: 'already'; snapshot: StoredSnapshot; why: string; sourceReaches: number; notes: string[] }
  /** No image stored: the restore point is the newest image rolled forward through the archive. */
  | { kind: 'covered'; covered: Covered; sourceImageVersion: number; sourceReaches: number; notes: string[] }
  | {
      kind: 'plan';
      image: ImageCandidate & { header: ImageHeader };
      changelogs: ChangelogCandidate[];
      sourceReaches: number;
      notes: string[];
    };

export async function backupSource(req: BackupRequest): Promise<BackupOutcome> {
  const source = await openSource(req.config, req.host, req.signal);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await attemptBackup(source, req, attempt);
      } catch (err) {
        if (!(err instanceof SourceChangedError)) throw err;
        if (attempt >= 2)
          throw new TransferError(req.host.name, `${err.message}; changed again on the retry, no snapshot taken`);
        req.log.warn(`${err.message}; trying once more`, { source: req.host.name });
      }
    }
  } finally {
    await source.close();
  }
}

/** fetchFile, where a file bigger than listed counts as a changed source (a fresh image renamed into place). */
async function fetchListed(source: FileSource, req: BackupRequest, remote: string, local: string, bound: ReadBound) {
  try {
    // A store that compresses or seals rewrites the staged copy and fsyncs that form (storeStagedFile).
    const durable = req.storage.compression.type === 'none' && !req.storage.key;
    return await fetchFile(source, remote, local, bound, req.signal, durable);
  } catch (err) {
    if (err instanceof ReadBoundError) throw new SourceChangedError(req.host.name, err.message, { cause: err });
    throw err;
  }
}

/**
 * What a changelog's copy may hold: only the current one (N = 0) grows while we copy. A rotated one
 * that turns out longer was the current one at listing time: a changed source, retried once.
 */
function changelogBound(c: ChangelogCandidate): ReadBound {
  return { size: c.entry.size, growth: changelogIndex(c.entry.name) === 0 ? CHANGELOG_GROWTH : 0 };
}

function where(req: BackupRequest): string {
  return `${req.host.name}:${req.host.dataPath}`;
}

/** Newest metadata version the source's changelogs offer (from their last lines), at least the image's. */
function sourceReaches(inv: SourceInventory, start: number): number {
  return inv.changelogs.reduce((max, c) => (c.last !== undefined && c.last + 1 > max ? c.last + 1 : max), start);
}

/** Same image as the snapshot, judged like rsync: version, size and mtime as listed on the source. */
function listedImageUnchanged(image: ImageCandidate & { header: ImageHeader }, snap: StoredSnapshot): boolean {
  const stored = snap.manifest.files.find((f) => f.role === 'image');
  return (
    stored !== undefined &&
    snap.manifest.image.empty === image.header.empty &&
    snap.manifest.image.version === image.header.version &&
    stored.sourceSize === image.entry.size &&
    stored.sourceMtimeMs === image.entry.mtimeMs
  );
}

async function attemptBackup(source: FileSource, req: BackupRequest, attempt: number): Promise<BackupOutcome> {
  const startedAt = new Date();
  const inv = await takeInventory(source, req.host.dataPath);
  const { chosen, notes } = chooseImage(inv.images, where(req));
  const start = restoreFrom(chosen.header);
  const reaches = sourceReaches(inv, start);
  const newer = (snap: StoredSnapshot) => req.snapshotOnNewChangelogs && reaches > snap.manifest.reachesVersion;
  if (req.newest && listedImageUnchanged(chosen, req.newest) && !newer(req.newest)) {
    return {
      kind: 'already',
      snapshot: req.newest,
      why: 'image unchanged: same version, size and mtime',
      sourceReaches: reaches,
      notes,
    };
  }
  if (req.incremental) {
    const { archive, bounds } = req.incremental;
    const newest = req.newest && { ...req.newest.manifest, id: req.newest.id };
    const decision = decideImage(newest, { ...chosen.header, reaches }, archive, bounds, startedAt.getTime());
    if (!decision.store)
      return {
        kind: 'covered',
        covered: decision.covered,
        sourceImageVersion: chosen.header.version,
        sourceReaches: reaches,
        notes,
      };
    notes.push(`a new image: ${decision.why}`);
  }
  const needed = inv.changelogs.filter((c) => changelogNeeded(c, start));
  if (req.dryRun) return { kind: 'plan', image: chosen, changelogs: needed, sourceReaches: reaches, notes };

  const bytes = chosen.entry.size + needed.reduce((sum, c) => sum + c.entry.size, 0);
  // The most the copies may write: listed sizes plus the current changelog's allowed growth.
  await ensureStoreSpace(
    req.store,
    needed.reduce((sum, c) => sum + (changelogBound(c).growth ?? 0), bytes),
  );
  const stage = await makeStageDir(req.store, 'snapshot');
  try {
    const image = await pullImage(source, req, chosen, stage);
    const snap = req.newest;
    const snapImage = snap?.manifest.files.find((f) => f.role === 'image');
    const sameImage = snap && snapImage && snap.manifest.image.version === chosen.header.version && !newer(snap);
    if (snap && sameImage && (await sameContent(path.join(stage, image.file.name), snapImage, req.storage.key))) {
      return {
        kind: 'already',
        snapshot: snap,
        why: 'image unchanged: same version and sha256',
        sourceReaches: reaches,
        notes,
      };
    }
    const chain = await pullChangelogs(source, req, needed, start, stage);
    const sessions = await pullSessions(source, req, sessionsFile(inv.listing, chosen.header.magic), stage);
    const id = await freeSnapshotId(req.store, startedAt, chain.reached, snapshotId);
    const staged = [image.file, ...chain.files, ...(sessions ? [sessions] : [])];
    // Checked as MooseFS files above; hashed and stored compressed (and sealed, for this snapshot and metaid)
    // in one read each, fsynced.
    const files: ManifestFile[] = [];
    const into = { id, image: { metaid: chosen.header.metaid } };
    for (const f of staged) files.push(await storeStagedFile(stage, f, req.storage, into));
    const manifest: Manifest = {
      formatVersion: 1,
      id,
      source: { name: req.host.name, host: req.host.host, role: req.host.role, dataPath: req.host.dataPath },
      image: {
        name: image.file.name,
        version: chosen.header.version,
        metaid: chosen.header.metaid,
        empty: chosen.header.empty,
      },
      changelogs: { first: chain.first, last: chain.last },
      reachesVersion: chain.reached,
      files,
      mfsJobsVersion: req.mfsJobsVersion,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
    };
    await finaliseSnapshot(req.store, stage, manifest, req.storage);
    const stored = files.reduce((sum, f) => sum + storedSizeOf(f), 0);
    return {
      kind: 'snapshot',
      manifest,
      bytes: stored,
      seconds: image.seconds + chain.seconds,
      attempts: attempt,
      notes: [...notes, ...chain.notes],
    };
  } catch (err) {
    // The store's disk filled up (someone else wrote there meanwhile): say so, not "transfer failed".
    if (isNoSpace(err))
      throw new StoreError(
        req.store,
        `snapshot store ${req.store}: no space left on device (ENOSPC) while copying ${formatBytes(bytes)} from ${where(req)}; the partial snapshot was removed, earlier snapshots are untouched`,
      );
    throw err;
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

async function pullImage(
  source: FileSource,
  req: BackupRequest,
  chosen: ImageCandidate & { header: ImageHeader },
  stage: string,
): Promise<{ file: ManifestFile; seconds: number }> {
  const name = restoredImageName(chosen.entry.name);
  const local = path.join(stage, name);
  const label = `${where(req)}/${chosen.entry.name}`;
  req.log.info(`copying ${chosen.entry.name} (version ${chosen.header.version}, ${chosen.entry.size} bytes)`, {
    source: req.host.name,
  });
  const fetched = await fetchListed(source, req, chosen.path, local, { size: chosen.entry.size });
  const change = imageChange(chosen.entry, fetched);
  if (change) throw new SourceChangedError(req.host.name, `${label}: ${change}`);
  let header: ImageHeader;
  try {
    header = await readImageHeader(local);
  } catch (err) {
    throw new ChainError(chosen.path, `${label}: copy rejected: ${(err as Error).message.replace(`${local}: `, '')}`);
  }
  if (header.version !== chosen.header.version || header.empty !== chosen.header.empty) {
    throw new SourceChangedError(
      req.host.name,
      `${label}: header changed during the copy (version ${chosen.header.version} → ${header.version})`,
    );
  }
  const file: ManifestFile = {
    name,
    role: 'image',
    size: fetched.size,
    sourcePath: chosen.path,
    sourceSize: chosen.entry.size,
    sourceMtimeMs: chosen.entry.mtimeMs,
  };
  return { file, seconds: fetched.seconds };
}

/**
 * A 1.x image's client sessions (sessions.mfs; sessions_ml.mfs on a 1.6.5+ metalogger): a 1.6.4 master
 * restored without them leaves every mount from before the failover with "Input/output error".
 */
async function pullSessions(
  source: FileSource,
  req: BackupRequest,
  entry: RemoteEntry | undefined,
  stage: string,
): Promise<ManifestFile | undefined> {
  if (!entry) return undefined;
  const remote = path.posix.join(req.host.dataPath, entry.name);
  const local = path.join(stage, entry.name);
  await fetchListed(source, req, remote, local, { size: entry.size });
  const { size } = await fs.stat(local);
  return {
    name: entry.name,
    role: 'sessions',
    size,
    sourcePath: remote,
    sourceSize: entry.size,
    sourceMtimeMs: entry.mtimeMs,
  };
}

interface PulledChain {
  files: ManifestFile[];
  reached: number;
  first?: number;
  last?: number;
  seconds: number;
  notes: string[];
}

/**
 * Copy the changelogs an image of version `start` needs, check each line, and keep the files that
 * hold a version mfsmaster -a will replay. Any hole between the image and the newest line rejects
 * the lot: a restore point that stops short must not look like one that does not.
 */
async function pullChangelogs(
  source: FileSource,
  req: BackupRequest,
  needed: readonly ChangelogCandidate[],
  start: number,
  stage: string,
): Promise<PulledChain> {
  const pieces: ChangelogPiece[] = [];
  const copies = new Map<string, { candidate: ChangelogCandidate; first?: number; last?: number }>();
  const notes: string[] = [];
  let seconds = 0;
  for (const c of needed) {
    req.signal.throwIfAborted();
    const label = `${where(req)}/${c.entry.name}`;
    const head = {
      first: (await readChangelogEdges(source, c.path, c.entry.size, { head: true, tail: false })).first?.version,
    };
    const local = path.join(stage, c.entry.name);
    const fetched = await fetchListed(source, req, c.path, local, changelogBound(c));
    seconds += fetched.seconds;
    const change = changelogChange(c.entry, fetched);
    if (change) throw new SourceChangedError(req.host.name, `${label}: ${change}`);
    const cut = await trimCutLastLine(local);
    if (cut > 0) notes.push(`${c.entry.name}: left out a cut last line (${cut} bytes, being written)`);
    const scan = await scanChangelogFile(local);
    const problem = scan.problems[0];
    if (problem) throw new ChainError(c.path, `${label}:${problem.line}: ${problem.reason}`);
    if (head.first !== undefined && scan.first !== head.first) {
      throw new SourceChangedError(
        req.host.name,
        `${label}: replaced during the copy (first version ${head.first}, copy starts at ${scan.first ?? 'nothing'})`,
      );
    }
    copies.set(c.entry.name, { candidate: c, first: scan.first, last: scan.last });
    pieces.push(...scan.segments.map((s) => ({ ...s, file: c.entry.name })));
  }
  const roll = rollForward(start, pieces);
  if (roll.holes.length) {
    throw new ChainError(
      where(req),
      `${where(req)}: changelogs miss versions ${roll.holes.map(formatHole).join(', ')} after image version ${start} (newest line ${roll.newest - 1}): mfsmaster -a would stop at ${roll.reached}`,
    );
  }
  const used = new Set(roll.filesUsed);
  const files: ManifestFile[] = [];
  for (const [name, copy] of copies) {
    const local = path.join(stage, name);
    if (!used.has(name)) {
      await fs.rm(local, { force: true });
      continue;
    }
    const { size } = await fs.stat(local);
    files.push({
      name,
      role: 'changelog',
      size,
      sourcePath: copy.candidate.path,
      sourceSize: copy.candidate.entry.size,
      sourceMtimeMs: copy.candidate.entry.mtimeMs,
      firstVersion: copy.first,
      lastVersion: copy.last,
    });
  }
  const first = files.length ? Math.min(...files.map((f) => f.firstVersion!)) : undefined;
  const last = files.length ? Math.max(...files.map((f) => f.lastVersion!)) : undefined;
  return { files, reached: roll.reached, first, last, seconds, notes };
}
