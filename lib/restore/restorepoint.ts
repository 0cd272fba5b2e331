import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FILE_MODE } from '../core/atomic.js';
import { mapLimit } from '../core/parallel.js';
import { rollForward, type ChangelogPiece, type RollForward } from '../moosefs/chain.js';
import { ChangelogScanner, scanChangelogFile, type ChangelogScan } from '../moosefs/changelog.js';
import {
  changelogBound,
  listDataPath,
  readSourceImageHeader,
  RESTORED_SESSIONS,
  sessionsFile,
} from '../moosefs/datapath.js';
import { ChainError, UsageError } from '../core/errors.js';
import { LATEST, listSnapshots, type ManifestFile, type StoredSnapshot } from '../store/manifest.js';
import { copySnapshotFile, type StoreKeys } from '../store/stored-file.js';
import {
  changelogIndex,
  isChangelogName,
  isImageName,
  isSessionsName,
  readImageHeader,
  restoredImageName,
  restoreFrom,
  type ImageHeader,
} from '../moosefs/metadata.js';
import type { ImageCandidate } from '../moosefs/inventory.js';
import type { FileSource } from '../transport/remote.js';
import { trimCutLastLine } from '../transport/transfer.js';
import type { ReadBound } from '../transport/bounded.js';

/**
 * Placing a restore point (an image plus the changelogs that roll it forward) into an empty
 * DATA_PATH, ready for `mfsmaster -a`: from the snapshot store (checksums verified on the way) or
 * from a metalogger's / master's DATA_PATH.
 */
export interface PlacedRestorePoint {
  /** Image file name inside the DATA_PATH (after renaming, see `restoredImageName`). */
  image: string;
  /** Undefined when the image's header is unreadable (`imageProblem` says why): mfsmaster -a gets to say its own word. */
  header?: ImageHeader;
  imageProblem?: string;
  changelogs: string[];
  bytes: number;
  /** The chain mfsmaster -a should replay, computed from the placed files (needs the image header). */
  chain?: RollForward;
  /** Unix ms of the newest changelog line, if any. */
  newestChangeMs: number | undefined;
  /** `file:line: reason` for each placed changelog with unreadable or out-of-order lines (what mfsmaster -a leaves out). */
  damage?: string[];
  /** Set when `--other-filesystem` let in a restore point the cluster identity refuses (lib/store/identity.ts). */
  identityNote?: string;
  /** The placed changelogs' scans by name, so the chain and the cut read no changelog again. */
  scans?: ReadonlyMap<string, ChangelogScan>;
}

/** Scan the placed changelogs and roll the image forward the way mfsmaster -a will. */
export async function chainInDataPath(
  dataPath: string,
  header: ImageHeader,
  changelogs: string[],
  scanned: ReadonlyMap<string, ChangelogScan> = new Map(),
): Promise<{ chain: RollForward; newestChangeMs: number | undefined; damage: string[] }> {
  const pieces: ChangelogPiece[] = [];
  const damage: string[] = [];
  let newest: number | undefined;
  for (const name of changelogs) {
    const scan = scanned.get(name) ?? (await scanChangelogFile(path.join(dataPath, name)));
    pieces.push(...scan.segments.map((s) => ({ ...s, file: name })));
    if (scan.lastTimestamp !== undefined) newest = Math.max(newest ?? 0, scan.lastTimestamp * 1000);
    const first = scan.problems[0];
    if (first)
      damage.push(
        `${name}:${first.line}: ${first.reason}${scan.problems.length > 1 ? ` (and ${scan.problems.length - 1} more)` : ''}`,
      );
  }
  return { chain: rollForward(restoreFrom(header), pieces), newestChangeMs: newest, damage };
}

/**
 * A snapshot of the store by id, or the newest (`latest` symlink, else the newest complete one).
 * An empty store is a ChainError (nothing to restore is a finding); an unknown id a UsageError.
 */
export async function pickSnapshot(store: string, id: string | 'latest', keys: StoreKeys): Promise<StoredSnapshot> {
  const { snapshots, broken } = await listSnapshots(store, keys);
  if (id === 'latest') {
    const target = await fs.readlink(path.join(store, LATEST)).catch(() => undefined);
    const pointed = target ? snapshots.find((s) => s.id === path.basename(target)) : undefined;
    const newest = pointed ?? snapshots[snapshots.length - 1];
    if (!newest)
      throw new ChainError(
        store,
        `snapshot store ${store} holds no complete snapshot${broken.length ? ` (${broken.length} broken: ${broken[0]!.error})` : ''}`,
      );
    return preferRealImages([newest, ...snapshots.filter((s) => s !== newest).reverse()])[0]!;
  }
  const found = snapshots.find((s) => s.id === id);
  if (found) return found;
  const bad = broken.find((b) => b.id === id);
  if (bad) throw new ChainError(id, `snapshot ${id} is broken: ${bad.error}`);
  const known = snapshots
    .slice(-3)
    .map((s) => s.id)
    .join(', ');
  throw new UsageError(id, `no snapshot "${id}" in ${store}${known ? ` (newest: ${known})` : ' (the store is empty)'}`);
}

/**
 * Snapshots in the order `--latest` tries them (given newest first): one holding only the bootstrap image
 * (a metalogger before its first image download) goes behind every snapshot with a real image that
 * reaches as far — restoring it would replay the whole history for the same metadata.
 */
export function preferRealImages(newestFirst: readonly StoredSnapshot[]): StoredSnapshot[] {
  const real = newestFirst.filter((s) => !s.manifest.image.empty);
  const covered = (s: StoredSnapshot) =>
    s.manifest.image.empty && real.some((r) => r.manifest.reachesVersion >= s.manifest.reachesVersion);
  return [...newestFirst.filter((s) => !covered(s)), ...newestFirst.filter(covered)];
}

/** A manifest names plain DATA_PATH files; anything else (a path, an odd name) is refused. */
function checkManifestName(name: string, role: ManifestFile['role'], where: string): void {
  const ok =
    path.basename(name) === name &&
    (role === 'image' ? isImageName(name) : role === 'sessions' ? isSessionsName(name) : isChangelogName(name));
  if (!ok) throw new ChainError(where, `${where}: manifest lists ${role} "${name}", not a MooseFS ${role} file name`);
}

export interface PlaceOptions {
  signal?: AbortSignal;
  /**
   * Called once before copying with the bytes the restore will need (the copy, plus the image again
   * for the clean stop's dump; an upper bound for a DATA_PATH source); throws to refuse.
   */
  ensureSpace?: (bytes: number) => Promise<void>;
  /** A DATA_PATH source: choose among images of at most this version (a restore to an older target). */
  maxImageVersion?: number;
  /** A snapshot source: the store's key, for encrypted snapshots. */
  keys?: StoreKeys;
  /** A time target's end (unix s): the scans of placed changelogs note their first line later than it (the cut). */
  passTime?: number;
}

/**
 * A scanner for a changelog placed from the store, fed as its content is written: the scan costs no second
 * read, and records where the runs lie so the cut copies them without parsing them again (cut-files.ts).
 */
export function placingScanner(name: string, passTime: number | undefined): ChangelogScanner {
  return new ChangelogScanner(name, { positions: true, passTime });
}

/**
 * Copy a snapshot's files into `dataPath` as MooseFS files (decompressed, decrypted), each checked on
 * the way against the manifest's sizes and sha256 (stored and content): a snapshot damaged since
 * verify last saw it is refused here, naming the file.
 */
export async function placeSnapshot(
  snapshot: StoredSnapshot,
  dataPath: string,
  options: PlaceOptions = {},
): Promise<PlacedRestorePoint> {
  const { manifest } = snapshot;
  const { signal } = options;
  const where = `snapshot ${snapshot.id}`;
  const images = manifest.files.filter((f) => f.role === 'image');
  if (images.length !== 1)
    throw new ChainError(snapshot.dir, `${where}: manifest lists ${images.length} images, expected 1`);
  await options.ensureSpace?.(manifest.files.reduce((sum, f) => sum + f.size, 0) + images[0]!.size);
  const targets = manifest.files.map((f) => {
    checkManifestName(f.name, f.role, where);
    return f.role === 'image' ? restoredImageName(f.name) : f.role === 'sessions' ? RESTORED_SESSIONS : f.name;
  });
  const image = targets[manifest.files.findIndex((f) => f.role === 'image')]!;
  const changelogs = targets.filter((_, i) => manifest.files[i]!.role === 'changelog');
  // Each file is read once (stored hash, zstd -d, content hash in one stream) and a changelog scanned as soon
  // as it is whole, PLACE_PARALLEL files at a time: zstd and the hashing of one overlap the other's.
  const scans = new Map<string, ChangelogScan>();
  const sizes = await mapLimit(manifest.files, PLACE_PARALLEL, async (f, i) => {
    const file = path.join(dataPath, targets[i]!);
    const scanner = f.role === 'changelog' ? placingScanner(file, options.passTime) : undefined;
    const tap = scanner && ((chunk: Buffer) => scanner.push(chunk));
    // Not fsynced: `dataPath` is staging or a drill's scratch, which a crash discards; restore's DirHandle.place
    // syncs what it moves into the real DATA_PATH, and changelogs replaced by the cut never reach the disk.
    const size = await copySnapshotFile(snapshot, f, file, { keys: options.keys, signal, durable: false, tap });
    if (scanner) scans.set(targets[i]!, scanner.finish());
    return size;
  });
  const bytes = sizes.reduce((a, b) => a + b, 0);
  // A bad image is still handed to mfsmaster -a: the drill quotes mfsmaster's own verdict on it.
  const header = await readImageHeader(path.join(dataPath, image)).catch((err: Error) => err);
  if (header instanceof Error)
    return { image, imageProblem: header.message, changelogs, bytes, newestChangeMs: undefined, scans };
  return { image, header, changelogs, bytes, scans, ...(await chainInDataPath(dataPath, header, changelogs, scans)) };
}

/** Files a snapshot or the archive places at once (two cores: one file's zstd beside another's hashing). */
export const PLACE_PARALLEL = 2;

/** Every valid image of a DATA_PATH is newer than the version asked for (PlaceOptions.maxImageVersion). */
export class ImagesTooNew extends ChainError {
  constructor(
    readonly where: string,
    readonly oldest: { name: string; version: number },
  ) {
    super(
      where,
      `${where}: every metadata image is newer than the version asked for: the oldest, ${oldest.name}, ` +
        `is at version ${oldest.version}`,
    );
  }
}

/**
 * The image mfsmaster -a would pick: the highest version among valid ones; an `MFSM NEW` placeholder
 * only when nothing else is valid. Undefined when no image is usable.
 */
export function chooseImage(candidates: readonly ImageCandidate[]): ImageCandidate | undefined {
  const valid = candidates.filter((c) => c.header);
  const real = valid
    .filter((c) => !c.header!.empty)
    .sort((a, b) => b.header!.version - a.header!.version || b.entry.mtimeMs - a.entry.mtimeMs);
  return real[0] ?? valid[0];
}

/** `changelog_ml`, `changelog_ml_back` or `changelog`: the rotation family of a file. */
function family(name: string): string {
  return name.replace(/\.\d+\.mfs$/, '');
}

async function download(
  source: FileSource,
  from: string,
  to: string,
  bound: ReadBound,
  signal?: AbortSignal,
): Promise<number> {
  await source.download(from, to, { bound, signal, durable: false });
  await fs.chmod(to, FILE_MODE);
  return (await fs.stat(to)).size;
}

/**
 * Copy a metalogger's (or master's) newest usable image and the changelogs that roll it forward.
 * Changelogs are taken newest first per family (`.0`, `.1`, …) until one starts at or before the
 * image: older rotations cannot add anything and may be gigabytes.
 */
export async function placeFromDataPath(
  source: FileSource,
  remoteDataPath: string,
  dataPath: string,
  options: PlaceOptions = {},
): Promise<PlacedRestorePoint> {
  const { signal } = options;
  const where = `${source.label}:${remoteDataPath}`;
  const listing = await listDataPath(source, remoteDataPath);
  const candidates: ImageCandidate[] = [];
  for (const entry of listing.images) {
    const file = path.posix.join(remoteDataPath, entry.name);
    try {
      candidates.push({ entry, path: file, header: await readSourceImageHeader(source, file, entry.size) });
    } catch (err) {
      candidates.push({ entry, path: file, error: (err as Error).message });
    }
  }
  const max = options.maxImageVersion;
  const chosen = chooseImage(
    max === undefined ? candidates : candidates.filter((c) => !c.header || c.header.empty || c.header.version <= max),
  );
  if (!chosen) {
    const newer = candidates
      .filter((c) => c.header && max !== undefined && c.header.version > max)
      .sort((a, b) => a.header!.version - b.header!.version)[0];
    if (newer) throw new ImagesTooNew(where, { name: newer.entry.name, version: newer.header!.version });
    const why =
      candidates
        .map((c) => c.error && `${c.entry.name}: ${c.error}`)
        .filter(Boolean)
        .join('; ') || 'no metadata image at all';
    throw new ChainError(where, `${where}: no usable metadata image (${why})`);
  }
  await options.ensureSpace?.(2 * chosen.entry.size + listing.changelogs.reduce((sum, e) => sum + e.size, 0));
  const image = restoredImageName(chosen.entry.name);
  // Into staging or a drill's scratch, which a crash discards (restore syncs what it places into DATA_PATH): no fsync.
  const fetch = (name: string, to: string, bound: ReadBound) =>
    download(source, path.posix.join(remoteDataPath, name), path.join(dataPath, to), bound, signal);
  // The image is copied beside the changelogs' copies and scans, which the source's header chooses.
  const chosenFrom = restoreFrom(chosen.header!);
  const [imageCopy, chosenLogs] = await Promise.allSettled([
    fetch(chosen.entry.name, image, { size: chosen.entry.size }),
    placeChangelogs(dataPath, listing.changelogs, chosenFrom, fetch),
  ]);
  if (imageCopy.status === 'rejected') throw imageCopy.reason;
  if (chosenLogs.status === 'rejected') throw chosenLogs.reason;
  let bytes = imageCopy.value;
  // The source may have replaced the file between the header check and the copy: check the copy.
  const header = await readImageHeader(path.join(dataPath, image));
  const sessions = sessionsFile(listing, header.magic);
  if (sessions) bytes += await fetch(sessions.name, RESTORED_SESSIONS, { size: sessions.size });
  const from = restoreFrom(header);
  let logs = chosenLogs.value;
  if (from !== chosenFrom) {
    // A new image meanwhile (a metalogger downloads one every hour): its changelogs, chosen again.
    for (const name of logs.changelogs) await fs.rm(path.join(dataPath, name), { force: true });
    logs = await placeChangelogs(dataPath, listing.changelogs, from, fetch);
  }
  const { changelogs, scans } = logs;
  bytes += logs.bytes;
  return { image, header, changelogs, bytes, scans, ...(await chainInDataPath(dataPath, header, changelogs, scans)) };
}

/**
 * Changelogs are taken newest first per family (`.0`, `.1`, …) until one starts at or before `from`, each
 * scanned once as placed and the scan reused for the chain, not read and parsed a second time.
 */
async function placeChangelogs(
  dataPath: string,
  listed: readonly { name: string; size: number }[],
  from: number,
  fetch: (name: string, to: string, bound: ReadBound) => Promise<number>,
): Promise<{ changelogs: string[]; scans: Map<string, ChangelogScan>; bytes: number }> {
  const changelogs: string[] = [];
  const scans = new Map<string, ChangelogScan>();
  const done = new Set<string>();
  let bytes = 0;
  for (const entry of [...listed].sort((a, b) => (changelogIndex(a.name) ?? 0) - (changelogIndex(b.name) ?? 0))) {
    if (done.has(family(entry.name))) continue;
    bytes += await fetch(entry.name, entry.name, changelogBound(entry.name, entry.size));
    const local = path.join(dataPath, entry.name);
    await trimCutLastLine(local);
    changelogs.push(entry.name);
    const scan = await scanChangelogFile(local);
    scans.set(entry.name, scan);
    if (scan.first !== undefined && scan.first <= from) done.add(family(entry.name));
  }
  return { changelogs, scans, bytes };
}
