import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { formatHole, rollForward, type ChangelogPiece } from '../moosefs/chain.js';
import type { ChangelogScan } from '../moosefs/changelog.js';
import { changelogCheck, imageChecks, wholeLines, type Check } from './stream-checks.js';
import type { Config, MasterHost, MetaloggerHost } from '../core/config.js';
import { ChainError, StoreError, TransferError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { contentDigest, snapshotId, type Manifest, type ManifestFile, type StoredSnapshot } from '../store/manifest.js';
import { changelogIndex, restoredImageName, restoreFrom, type ImageHeader } from '../moosefs/metadata.js';
import { openSource, type FileSource, type RemoteEntry } from '../transport/remote.js';
import { sessionsFile } from '../moosefs/datapath.js';
import { formatBytes, terminalProgress } from '../core/progress.js';
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
import {
  sameContent,
  storedPathOf,
  storedSizeOf,
  storeStagedFile,
  storeStream,
  type StoreWriteSettings,
} from '../store/stored-file.js';
import { changelogChange, fetchFile, imageChange, trimCutLastLine, type FetchResult } from '../transport/transfer.js';
import {
  CHANGELOG_GROWTH,
  READ_IDLE_SECONDS,
  ReadBoundError,
  RingReader,
  type ReadBound,
} from '../transport/bounded.js';

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

/** A file bigger than listed is a changed source (a fresh image renamed into place): worth one more try. */
function changedIfOverflow(req: BackupRequest, err: unknown): unknown {
  return err instanceof ReadBoundError ? new SourceChangedError(req.host.name, err.message, { cause: err }) : err;
}

/** The store's form as it is written: the plain MooseFS file (`compression: none`, no encryption). */
const keptPlain = (req: BackupRequest) => req.storage.compression.type === 'none' && !req.storage.key;

/**
 * A sealed file's chunks are bound to the snapshot's id, which is known only once the changelogs are read
 * (it names the version they reach): with encryption, files land as plain temps, sealed at the end.
 */
const sealLater = (req: BackupRequest) => Boolean(req.storage.key);

/** What `storeStream` is given for a snapshot it does not seal for (sealLater). */
const UNSEALED = { id: '', image: { metaid: '' } };

interface Pulled {
  file: ManifestFile;
  fetched: FetchResult;
  /** Bytes after the last newline left out (a changelog's line being written when the read started). */
  cut: number;
}

/**
 * Read one source file once into the stage, in the store's form (storeStream: hashed, compressed, fsynced as the
 * bytes arrive), through `checks`, which may refuse it: then nothing of it is left. A local source is read
 * once through the descriptor its checks opened (readWhole: O_NOFOLLOW, a regular file, bounded); an SFTP
 * source is copied first (fastGet on the lstat/open/fstat-checked handle) and that copy read once through
 * the same checks — kept as it is when the store keeps files plain.
 */
async function pullFile(
  source: FileSource,
  req: BackupRequest,
  stage: string,
  remote: string,
  entry: Omit<ManifestFile, 'size'>,
  bound: ReadBound,
  checks: Check[],
  lines = false,
): Promise<Pulled> {
  const started = Date.now();
  const settings: StoreWriteSettings = sealLater(req) ? { compression: { type: 'none', level: 3 } } : req.storage;
  let arrived = 0;
  let cut = 0;
  let input: RingReader;
  let staged: { file: string; after: FetchResult['after']; inPlace: boolean } | undefined;
  try {
    // Over SFTP, fastGet to disk and one read of that copy measured faster on the 10M image than storing the
    // in-order reads as they arrive (readWhole; BENCHMARKS.md, issue 28 one-pass: the Node thread decrypts the
    // SSH packets, hashes and feeds zstd at once). A local source is read once, through the descriptor and
    // bounds readWhole would use, into reused buffers (RingReader: the checks and storeStream keep no chunk).
    if (source.openLocal) {
      req.signal.throwIfAborted();
      const { handle, limits } = await source.openLocal(remote, bound);
      input = new RingReader(handle, limits);
    } else {
      // Kept plain (durable now) or sealed later: the copy is the staged file itself, only hashed and checked;
      // compressed: a temp rewritten below.
      const inPlace = keptPlain(req) || sealLater(req);
      const file = path.join(stage, inPlace ? entry.name : `${entry.name}.download`);
      const fetched = await fetchFile(source, remote, file, bound, req.signal, keptPlain(req));
      if (lines) cut = await trimCutLastLine(file);
      arrived = fetched.size;
      staged = { file, after: fetched.after, inPlace };
      const limits = {
        host: source.hostName,
        what: file,
        bound: { size: fetched.size },
        idleSeconds: READ_IDLE_SECONDS,
      };
      input = new RingReader(await fs.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW), limits);
    }
  } catch (err) {
    throw changedIfOverflow(req, err);
  }
  // fetchFile shows a staged copy's progress on a terminal; a file stored as it arrives shows it here.
  const progress = staged ? undefined : terminalProgress(`${source.hostName}: ${path.posix.basename(remote)}`);
  const counted = async function* (from: AsyncIterable<Buffer>) {
    for await (const chunk of from) {
      req.signal.throwIfAborted();
      if (!staged) arrived += chunk.length;
      progress?.update(arrived, bound.size);
      yield chunk;
    }
  };
  const held = { bytes: 0 };
  let bytes: AsyncIterable<Buffer> = counted(input);
  for (const check of lines ? [wholeLines(held), ...checks] : checks) bytes = check(bytes);
  let file: ManifestFile;
  try {
    file = await storeStream(stage, entry, bytes, settings, UNSEALED, {
      hashOnly: staged?.inPlace,
      sync: !sealLater(req),
    });
  } catch (err) {
    throw changedIfOverflow(req, err);
  } finally {
    progress?.end();
    // Not read to its end (a refusal, or the writer failed before reading): its descriptor or handle closes now.
    if (!input.destroyed) input.destroy();
    if (staged && !staged.inPlace) await fs.rm(staged.file, { force: true });
  }
  const after = staged ? staged.after : await source.stat(remote).catch(() => undefined);
  return { file, fetched: { size: arrived, after, seconds: (Date.now() - started) / 1000 }, cut: cut + held.bytes };
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
    if (snap && sameImage && (await sameImageContent(req, stage, image.file, snapImage))) {
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
    const pulled = [image.file, ...chain.files, ...(sessions ? [sessions] : [])];
    // Checked and stored as they arrived (pullFile); with encryption sealed now, for this snapshot and metaid,
    // in one read each, fsynced.
    const files: ManifestFile[] = [];
    const into = { id, image: { metaid: chosen.header.metaid } };
    if (sealLater(req)) for (const f of pulled) files.push(await storeStagedFile(stage, f, req.storage, into));
    else files.push(...pulled);
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

/**
 * Whether the image just pulled has the content of the newest snapshot's (same version): by the digest taken
 * while it was stored, or (sealed later) by reading its plain temp with the store key.
 */
async function sameImageContent(req: BackupRequest, stage: string, pulled: ManifestFile, stored: ManifestFile) {
  if (sealLater(req)) return sameContent(path.join(stage, pulled.name), stored, req.storage.key);
  const want = contentDigest(stored);
  return want.alg === 'sha256' && pulled.sha256 === want.value && pulled.size === stored.size;
}

async function pullImage(
  source: FileSource,
  req: BackupRequest,
  chosen: ImageCandidate & { header: ImageHeader },
  stage: string,
): Promise<{ file: ManifestFile; seconds: number }> {
  const name = restoredImageName(chosen.entry.name);
  const label = `${where(req)}/${chosen.entry.name}`;
  req.log.info(`copying ${chosen.entry.name} (version ${chosen.header.version}, ${chosen.entry.size} bytes)`, {
    source: req.host.name,
  });
  const entry = {
    name,
    role: 'image' as const,
    sourcePath: chosen.path,
    sourceSize: chosen.entry.size,
    sourceMtimeMs: chosen.entry.mtimeMs,
  };
  const bound = { size: chosen.entry.size };
  let pulled: Pulled;
  try {
    pulled = await pullFile(source, req, stage, chosen.path, entry, bound, [
      imageChecks({
        path: chosen.path,
        label,
        header: chosen.header,
        changed: (message) => new SourceChangedError(req.host.name, message),
      }),
    ]);
  } catch (err) {
    // A check that failed on an image rewritten under the read says so: the source changed, worth a retry.
    if (err instanceof ChainError) {
      const now = await source.stat(chosen.path).catch(() => undefined);
      if (!now || now.size !== chosen.entry.size || now.mtimeMs !== chosen.entry.mtimeMs)
        throw new SourceChangedError(req.host.name, `${label}: changed during the copy (${err.message})`);
    }
    throw err;
  }
  const change = imageChange(chosen.entry, pulled.fetched);
  if (change) throw new SourceChangedError(req.host.name, `${label}: ${change}`);
  return { file: pulled.file, seconds: pulled.fetched.seconds };
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
  const file = {
    name: entry.name,
    role: 'sessions' as const,
    sourcePath: remote,
    sourceSize: entry.size,
    sourceMtimeMs: entry.mtimeMs,
  };
  return (await pullFile(source, req, stage, remote, file, { size: entry.size }, [])).file;
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
  const copies = new Map<string, ManifestFile>();
  const notes: string[] = [];
  let seconds = 0;
  for (const c of needed) {
    req.signal.throwIfAborted();
    const label = `${where(req)}/${c.entry.name}`;
    const head = {
      first: (await readChangelogEdges(source, c.path, c.entry.size, { head: true, tail: false })).first?.version,
    };
    const out: { scan?: ChangelogScan } = {};
    const refuse = (scan: ChangelogScan) => {
      const problem = scan.problems[0];
      if (problem) throw new ChainError(c.path, `${label}:${problem.line}: ${problem.reason}`);
    };
    const entry = {
      name: c.entry.name,
      role: 'changelog' as const,
      sourcePath: c.path,
      sourceSize: c.entry.size,
      sourceMtimeMs: c.entry.mtimeMs,
    };
    const check = changelogCheck(c.entry.name, out, refuse);
    const pulled = await pullFile(source, req, stage, c.path, entry, changelogBound(c), [check], true);
    seconds += pulled.fetched.seconds;
    const change = changelogChange(c.entry, pulled.fetched);
    if (change) throw new SourceChangedError(req.host.name, `${label}: ${change}`);
    if (pulled.cut > 0) notes.push(`${c.entry.name}: left out a cut last line (${pulled.cut} bytes, being written)`);
    const scan = out.scan!;
    if (head.first !== undefined && scan.first !== head.first) {
      throw new SourceChangedError(
        req.host.name,
        `${label}: replaced during the copy (first version ${head.first}, copy starts at ${scan.first ?? 'nothing'})`,
      );
    }
    copies.set(c.entry.name, { ...pulled.file, firstVersion: scan.first, lastVersion: scan.last });
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
    if (used.has(name)) files.push(copy);
    else await fs.rm(storedPathOf({ dir: stage }, copy), { force: true });
  }
  const first = files.length ? Math.min(...files.map((f) => f.firstVersion!)) : undefined;
  const last = files.length ? Math.max(...files.map((f) => f.lastVersion!)) : undefined;
  return { files, reached: roll.reached, first, last, seconds, notes };
}
