import { promises as fs } from 'node:fs';
import path from 'node:path';
import { listDataPath, readSourceImageHeader, scanSourceChangelog, type DataPathListing } from '../moosefs/datapath.js';
import { describeError } from '../core/errors.js';
import type { StoredSnapshot } from '../store/manifest.js';
import { changelogIndex } from '../moosefs/metadata.js';
import { readSnapshotContent, storedPathOf, type StoreKeys } from '../store/stored-file.js';
import type { FileSource, RemoteEntry } from '../transport/remote.js';
import { ChangelogScanPool } from '../moosefs/changelog-pool.js';
import { planRestore, type ChangelogFacts, type ImageFacts, type RestorePlan } from '../moosefs/restore-model.js';

/**
 * The I/O half of verify: read what a metalogger's DATA_PATH or a stored snapshot holds (image
 * headers, every changelog line in one streaming pass, checksums) and hand it to the restore model.
 */

export interface DataPathFacts {
  dataPath: string;
  images: ImageFacts[];
  changelogs: ChangelogFacts[];
  plan: RestorePlan;
  /** Files kept changing while we read them (rotation, image download): the figures may be off. */
  unsettled?: string;
}

export interface InspectOptions {
  signal?: AbortSignal;
  /** A cut last line may be a line being written: read the file again after this pause. */
  cutLineRetryMs?: number;
}

function abortIfAsked(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readImages(source: FileSource, listing: DataPathListing): Promise<ImageFacts[]> {
  const out: ImageFacts[] = [];
  for (const e of listing.images) {
    const facts: ImageFacts = { name: e.name, size: e.size, mtimeMs: e.mtimeMs };
    try {
      facts.header = await readSourceImageHeader(source, path.posix.join(listing.dataPath, e.name), e.size);
    } catch (err) {
      facts.error = (err as Error).message;
    }
    out.push(facts);
  }
  return out;
}

async function readChangelogs(
  source: FileSource,
  listing: DataPathListing,
  o: InspectOptions,
): Promise<ChangelogFacts[]> {
  // A local DATA_PATH with much to read is scanned in worker threads, a file per core (issue #28); a remote one
  // streams over its one connection, a file at a time.
  const bytes = listing.changelogs.reduce((sum, e) => sum + e.size, 0);
  const pool = source.openLocal && bytes >= ChangelogScanPool.MIN_BYTES ? ChangelogScanPool.open() : undefined;
  const scanOne = async (e: RemoteEntry): Promise<ChangelogFacts> => {
    abortIfAsked(o.signal);
    const file = path.posix.join(listing.dataPath, e.name);
    let scan = await scanSourceChangelog(source, file, e.size, pool);
    if (scan.truncatedLastLine && (o.cutLineRetryMs ?? 0) > 0) {
      // The metalogger may be half-way through writing its newest line: look once more.
      await sleep(o.cutLineRetryMs!);
      scan = await scanSourceChangelog(source, file, e.size, pool);
    }
    return { name: e.name, size: scan.bytes, mtimeMs: e.mtimeMs, scan };
  };
  try {
    return await inOrder(listing.changelogs, pool?.size ?? 1, scanOne);
  } finally {
    await pool?.close();
  }
}

/** `f` over `items`, at most `width` at a time, results in the items' order; the first failure once all settled. */
async function inOrder<T, R>(items: readonly T[], width: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      results[i] = await f(items[i]!).catch((err: unknown) => {
        failed = true;
        throw err;
      });
    }
  };
  const lanes = await Promise.allSettled(Array.from({ length: Math.min(width, items.length) }, lane));
  const first = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
  if (first) throw first.reason;
  return results;
}

/**
 * Names and sizes that must not move while we read. The current changelog (N = 0) grows all the
 * time and is left out; everything else changes only on rotation or an image download.
 */
function settledSignature(listing: DataPathListing): string {
  const changelogs = listing.changelogs.map((e) =>
    changelogIndex(e.name) === 0 ? e.name : `${e.name}:${e.size}:${e.mtimeMs}`,
  );
  const images = listing.images
    .filter((e) => e.name !== 'metadata_ml.tmp')
    .map((e) => `${e.name}:${e.size}:${e.mtimeMs}`);
  return [...changelogs, ...images].sort().join('|');
}

/**
 * Read a DATA_PATH in full. Changelogs rotate (every name shifts by one, the oldest is deleted) and
 * images get replaced while a metalogger runs; when the listing moved under us, or a listed file was
 * gone by the time we read it, we read everything once more.
 */
export async function inspectDataPath(
  source: FileSource,
  dataPath: string,
  o: InspectOptions = {},
): Promise<DataPathFacts> {
  for (let attempt = 1; ; attempt++) {
    abortIfAsked(o.signal);
    let read: Omit<DataPathFacts, 'plan' | 'unsettled'> & { moved: boolean };
    try {
      read = await readOnce(source, dataPath, o);
    } catch (err) {
      if (attempt >= 2 || o.signal?.aborted) throw err;
      continue;
    }
    if (!read.moved || attempt >= 2) {
      const { moved, ...facts } = read;
      const unsettled = moved
        ? `files in ${dataPath} kept changing while they were read (rotation or image download); figures may be off until the next run`
        : undefined;
      return { ...facts, plan: planRestore(facts.images, facts.changelogs), unsettled };
    }
  }
}

async function readOnce(source: FileSource, dataPath: string, o: InspectOptions) {
  const before = await listDataPath(source, dataPath);
  const images = await readImages(source, before);
  const changelogs = await readChangelogs(source, before, o);
  const after = await listDataPath(source, dataPath);
  return { dataPath, images, changelogs, moved: settledSignature(before) !== settledSignature(after) };
}

export interface SnapshotFileCheck {
  name: string;
  role: 'image' | 'changelog' | 'sessions';
  /** What is wrong with the stored copy; undefined when size and sha256 match the manifest. */
  problem?: string;
}

export interface SnapshotFacts {
  snapshot: StoredSnapshot;
  files: SnapshotFileCheck[];
  images: ImageFacts[];
  changelogs: ChangelogFacts[];
  plan: RestorePlan;
}

/**
 * Check one stored snapshot against its manifest: every file there, stored and content sizes and
 * sha256 equal (decompressed and decrypted on the way, stored-file.ts), image header, chain sound.
 */
export async function inspectSnapshot(
  snapshot: StoredSnapshot,
  o: { signal?: AbortSignal; keys?: StoreKeys } = {},
): Promise<SnapshotFacts> {
  const files: SnapshotFileCheck[] = [];
  const images: ImageFacts[] = [];
  const changelogs: ChangelogFacts[] = [];
  for (const f of snapshot.manifest.files) {
    abortIfAsked(o.signal);
    const st = await fs.stat(storedPathOf(snapshot, f)).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) {
      files.push({
        name: f.name,
        role: f.role,
        problem:
          st.code === 'ENOENT'
            ? `missing${f.stored ? ` (${f.stored.name})` : ''}`
            : `unreadable (${describeError(st)})`,
      });
      continue;
    }
    let read;
    try {
      read = await readSnapshotContent(snapshot, f, { keys: o.keys, signal: o.signal });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      files.push({
        name: f.name,
        role: f.role,
        problem: (err as Error).message.replace(`snapshot ${snapshot.id}: ${f.name}: `, ''),
      });
      continue;
    }
    files.push({ name: f.name, role: f.role });
    if (f.role === 'changelog' && read.scan)
      changelogs.push({ name: f.name, size: f.size, mtimeMs: st.mtimeMs, scan: read.scan });
    if (f.role === 'image')
      images.push({ name: f.name, size: f.size, mtimeMs: st.mtimeMs, header: read.header, error: read.headerError });
  }
  return { snapshot, files, images, changelogs, plan: planRestore(images, changelogs) };
}

/**
 * What a pre-1.6.5 failover restores from: the newest snapshot (its image and changelogs) rolled
 * forward with a chunkserver's changelog_csback files, as one DataPathFacts (names say where each came from).
 */
export async function inspectChunkserver(
  source: FileSource,
  dataPath: string,
  snapshot: SnapshotFacts | undefined,
  o: InspectOptions = {},
): Promise<DataPathFacts> {
  const own = await inspectDataPath(source, dataPath, o);
  const from = (name: string) => `snapshot ${snapshot!.snapshot.id}/${name}`;
  const images = snapshot ? snapshot.images.map((i) => ({ ...i, name: from(i.name) })) : [];
  // A chunkserver writes through a 4 KiB stdio buffer: its file ends mid-line as a rule, and a 1.x restore
  // by mfs-jobs hands mfsmetarestore its whole lines (lib/moosefs/roll-forward.ts). The cut line is not damage.
  const whole = own.changelogs.map((c) => ({
    ...c,
    scan: { ...c.scan, truncatedLastLine: false, problems: c.scan.problems.filter((p) => p.kind !== 'cut-last-line') },
  }));
  const changelogs = [...(snapshot ? snapshot.changelogs.map((c) => ({ ...c, name: from(c.name) })) : []), ...whole];
  return { ...own, images, changelogs, plan: planRestore(images, changelogs) };
}
