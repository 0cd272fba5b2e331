import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, CopyConfig } from '../../core/config.js';
import { ChainError, describeError, TransferError } from '../../core/errors.js';
import { DIR_MODE, pathExists } from '../../core/atomic.js';
import type { Limit } from '../../transport/listing-bounds.js';
import { restoreFrom } from '../../moosefs/metadata.js';
import { MANIFEST, onDisk } from '../manifest.js';
import { windowMs } from '../retention.js';
import type { StoreWriteSettings } from '../stored-file.js';
import type { StoreKeys } from '../sealed.js';
import {
  ARCHIVE_DIR,
  archiveDir,
  chooseSegments,
  compactStoreSegments,
  listSegments,
  parseSegmentManifest,
  segmentsNotNeeded,
  type ArchiveCompaction,
  type ArchivePruning,
  type SegmentManifest,
  type StoredSegment,
} from '../segments.js';
import { download, ensureRoom, openWithin } from './fetch.js';
import { copyListingBudget, listCopy, MAX_MANIFEST_BYTES } from './listing.js';
import { openCopy } from './open.js';
import { emptyCopyRun, pushSnapshot, removeRemoteSnapshot, type CopyRun } from './push.js';
import type { CopyRepository } from './repository.js';

/**
 * The changelog archive on an off-site copy: the store's `archive/<id>/` under the copy's `archive/`,
 * written like its snapshots (stored bytes, manifest last) and read back like them (only a manifest the
 * store signed, names and sizes bounded by it, every byte hashed against it before use).
 */

export interface CopySegments {
  /** One non-overlapping set, by first version (chooseSegments, as the store's listing). */
  segments: { id: string; manifest: SegmentManifest }[];
  /** Segments a merged one among `segments` holds the lines of (compaction's leftovers). */
  superseded: { id: string; manifest: SegmentManifest }[];
  /** Segment directories without a manifest (an interrupted push). */
  incomplete: string[];
  broken: { id: string; error: string }[];
}

/**
 * The ids that may hold lines at or after `from`, by the first version each id names (`-v<first>`): every one
 * starting after it and the last one starting at or before it. Only a shortcut (a recovery window holds
 * thousands of segments, each manifest a read): the manifests read are still checked, and an id that lies
 * about its first version at most leaves its segment out, as a copy's owner deleting it would.
 */
export function idsFrom(ids: readonly string[], from: number): string[] {
  const firstOf = (id: string) => Number(/-v(\d+)$/.exec(id)?.[1] ?? NaN);
  const known = ids.filter((id) => Number.isSafeInteger(firstOf(id))).sort((a, b) => firstOf(a) - firstOf(b));
  const startAt = known.reduce((at, id, i) => (firstOf(id) <= from ? i : at), 0);
  return known.slice(startAt);
}

/**
 * Every segment on the copy (`fromVersion`: only those that may hold lines at or after it, idsFrom), its
 * manifest checked; one listing budget for the lot (`deadline`: all of it within that).
 */
export async function listCopySegments(
  repo: CopyRepository,
  keys: StoreKeys,
  signal?: AbortSignal,
  o: { fromVersion?: number; deadline?: Limit } = {},
): Promise<CopySegments> {
  const budget = copyListingBudget(repo, { signal, ...(o.deadline ? { deadline: o.deadline } : {}) });
  try {
    const listed = (await repo.listSnapshotIds(budget)).ids;
    const ids = o.fromVersion === undefined ? listed : idsFrom(listed, o.fromVersion);
    const out: CopySegments = { segments: [], superseded: [], incomplete: [], broken: [] };
    for (const id of ids) {
      const manifestFile = (await repo.listFiles(id, budget)).find((f) => f.name === MANIFEST);
      if (!manifestFile) {
        out.incomplete.push(id);
        continue;
      }
      try {
        if (manifestFile.size > MAX_MANIFEST_BYTES)
          throw new ChainError(
            `${ARCHIVE_DIR}/${id}/${MANIFEST}`,
            `${MANIFEST} is ${manifestFile.size} bytes, more than a manifest can be`,
          );
        budget.hold(`${ARCHIVE_DIR}/${id}/${MANIFEST}`, manifestFile.size);
        const parts: Buffer[] = [];
        for await (const chunk of await repo.read(id, MANIFEST, { size: manifestFile.size }))
          parts.push(chunk as Buffer);
        const where = `copy ${repo.name}: ${ARCHIVE_DIR}/${id}/${MANIFEST}`;
        const manifest = parseSegmentManifest(Buffer.concat(parts).toString('utf8'), where, keys);
        if (manifest.id !== id) throw new ChainError(where, `${where}: manifest says id ${manifest.id}, not ${id}`);
        out.segments.push({ id, manifest });
      } catch (err) {
        if (err instanceof TransferError) throw err;
        out.broken.push({ id, error: describeError(err) });
      }
    }
    const { chosen, superseded } = chooseSegments(out.segments);
    return { ...out, segments: chosen, superseded };
  } finally {
    budget.end();
  }
}

export function openArchiveCopy(config: Config, copy: CopyConfig, signal?: AbortSignal): Promise<CopyRepository> {
  return openCopy(config, copy, signal, ARCHIVE_DIR);
}

/**
 * Push sealed segments the copy does not hold complete yet (`known`: ids already there, kept up to date
 * across calls so a follower lists the copy once, not at every seal). Never removes anything. `floor`: the
 * first version of the oldest segment the copy holds; a segment ending before it was pruned there (the
 * copy's images do not need it: pruneCopySegments) and is not sent back.
 */
export async function pushSegments(
  repo: CopyRepository,
  segments: readonly StoredSegment[],
  known: Set<string>,
  signal: AbortSignal,
  floor?: number,
): Promise<CopyRun> {
  const run = emptyCopyRun(repo.name, 'sftp', repo.label);
  const started = Date.now();
  for (const s of segments) {
    if (known.has(s.id) || (floor !== undefined && s.manifest.last < floor)) continue;
    // Pruned from the store since the follower listed it (backup, prune): nothing left to send.
    if (!(await pathExists(s.dir))) continue;
    await pushSnapshot(repo, s, run, signal);
    known.add(s.id);
  }
  run.ok = true;
  run.seconds = (Date.now() - started) / 1000;
  return run;
}

/** Bounds on what fetchCopySegments brings home (promote: a failover never waits long for a copy). */
export interface SegmentFetchBounds {
  /**
   * Connecting and listing within this, and the downloads within it again; what arrived in time is kept (the
   * oldest segments first: a prefix of the archive still rolls the image forward) and a note says why.
   */
  within?: Limit;
  /** At most this many segments, this many stored bytes (the oldest first; a note says what was left). */
  maxSegments?: number;
  maxBytes?: number;
  notes?: string[];
}

/**
 * The copy's segments holding lines at or after `fromVersion`, downloaded into `dir` (one private
 * subdirectory each) and hashed against their manifests: StoredSegments like the store's.
 */
export async function fetchCopySegments(
  config: Config,
  copy: CopyConfig,
  fromVersion: number,
  keys: StoreKeys,
  dir: string,
  signal: AbortSignal,
  bounds: SegmentFetchBounds = {},
): Promise<StoredSegment[]> {
  const { repo, deadline } = await openWithin(config, copy, signal, bounds.within, ARCHIVE_DIR);
  const note = (line: string) => bounds.notes?.push(`copy ${copy.name}: archive: ${line}`);
  try {
    const listing = await listCopySegments(repo, keys, signal, { fromVersion, deadline: deadline() });
    let wanted = listing.segments.filter((s) => s.manifest.last >= fromVersion);
    const maxSegments = bounds.maxSegments ?? Infinity;
    let bytes = 0;
    const cut = wanted.findIndex((s, i) => {
      bytes += onDisk(s.manifest.files[0]!).size;
      return i >= maxSegments || bytes > (bounds.maxBytes ?? Infinity);
    });
    if (cut >= 0) {
      const limits = `more than ${maxSegments} segments or ${bounds.maxBytes ?? '-'} bytes`;
      note(`${wanted.length - cut} of ${wanted.length} segments left out (${limits})`);
      wanted = wanted.slice(0, cut);
    }
    await ensureRoom(
      dir,
      wanted.map((s) => onDisk(s.manifest.files[0]!).size),
      `the archive of copy ${copy.name}`,
    );
    // Out of time: the connection is closed under a download that trickles (the copy's idle bound would not end it).
    const timer = bounds.within ? AbortSignal.timeout(bounds.within.seconds * 1000) : undefined;
    timer?.addEventListener('abort', () => void repo.close().catch(() => undefined), { once: true });
    const late = () => {
      const limit = `${bounds.within!.seconds} s (${bounds.within!.setting})`;
      note(`${wanted.length - out.length} of ${wanted.length} segments not fetched within ${limit}`);
    };
    const out: StoredSegment[] = [];
    for (const s of wanted) {
      signal.throwIfAborted();
      if (timer?.aborted) {
        late();
        break;
      }
      const into = path.join(dir, s.id);
      await fs.mkdir(into, { mode: DIR_MODE });
      const f = onDisk(s.manifest.files[0]!);
      let sha: string;
      try {
        sha = await download(repo, s.id, f.name, f.size, path.join(into, f.name));
      } catch (err) {
        if (!timer?.aborted || signal.aborted) throw err;
        await fs.rm(into, { recursive: true, force: true });
        late();
        break;
      }
      const { size } = await fs.stat(path.join(into, f.name));
      if (size !== f.size || sha !== f.sha256.toLowerCase()) {
        throw new ChainError(
          f.name,
          `copy ${copy.name}: segment ${s.id}: ${f.name} does not match its manifest: not used`,
        );
      }
      out.push({ id: s.id, dir: into, manifest: s.manifest });
    }
    return out;
  } finally {
    await repo.close().catch(() => undefined);
  }
}

/**
 * The copy's side of the recovery window: its complete segments whose lines are all older than every image
 * the copy keeps (`retainedStarts`, after its retention ran; pinned snapshots among them) are removed,
 * manifest first, so none looks complete while half gone. The newest segment always stays. Segments the
 * store did not sign (refused by the listing) and incomplete uploads are left alone: the archiver finishes
 * the latter, verify names the former. Returns the removed ids (or, with `dryRun`, those it would remove).
 */
export async function pruneCopySegments(
  config: Config,
  copy: CopyConfig,
  retainedStarts: readonly number[],
  keys: StoreKeys,
  signal: AbortSignal,
  dryRun = false,
): Promise<string[]> {
  if (!retainedStarts.length) return [];
  const repo = await openArchiveCopy(config, copy, signal);
  try {
    const { segments } = await listCopySegments(repo, keys, signal);
    const doomed = segmentsNotNeeded(segments, retainedStarts).map((s) => s.id);
    if (dryRun) return doomed;
    const removed: string[] = [];
    for (const id of doomed) {
      signal.throwIfAborted();
      await removeRemoteSnapshot(repo, id);
      removed.push(id);
    }
    return removed;
  } finally {
    await repo.close().catch(() => undefined);
  }
}

/** The versions the complete snapshots on the copy restore from (what its archive must reach from). */
export async function copyImageStarts(
  config: Config,
  copy: CopyConfig,
  keys: StoreKeys,
  signal: AbortSignal,
): Promise<number[]> {
  const repo = await openCopy(config, copy, signal);
  try {
    const { complete } = await listCopy(repo, keys, { signal });
    return [...new Set(complete.map((s) => restoreFrom(s.manifest.image)))].sort((a, b) => a - b);
  } finally {
    await repo.close().catch(() => undefined);
  }
}

/**
 * pruneCopySegments for backup and prune alike, as lines: over `retainedStarts` (backup: what the copy keeps
 * after its retention ran) or, without, over every complete snapshot the copy holds (prune). A failure is a
 * line, not a failed run (unless the run was stopped).
 */
export async function pruneCopyArchive(
  config: Config,
  copy: CopyConfig,
  keys: StoreKeys,
  retainedStarts: readonly number[] | undefined,
  signal: AbortSignal,
  dryRun: boolean,
): Promise<ArchivePruning> {
  const out: ArchivePruning = { destination: `copy ${copy.name}`, removed: [], lines: [], errors: [] };
  try {
    const starts = retainedStarts ?? (await copyImageStarts(config, copy, keys, signal));
    out.removed = await pruneCopySegments(config, copy, starts, keys, signal, dryRun);
    const n = out.removed.length;
    if (n) {
      const what = `${n} archive segment${n === 1 ? '' : 's'} older than every image it keeps`;
      out.lines.push(`copy ${copy.name}: ${dryRun ? 'would remove' : 'removed'} ${what} (${out.removed.join(', ')})`);
    }
  } catch (err) {
    if (signal.aborted) throw err;
    const line = `copy ${copy.name}: archive: could not remove old segments: ${describeError(err)}`;
    out.errors.push(line);
    out.lines.push(line);
  }
  return out;
}

/**
 * Compaction on a copy (issue #26), after the store's (compactStoreSegments): a merged segment of the store
 * the copy lacks is pushed there like any segment (stored bytes checked against its manifest, the manifest
 * last) — also where the copy missed its parts (down while they were sealed: the archiver no longer finds
 * them in the store) — then the parts it holds are removed, manifest first; a copy's leftovers (parts a merged
 * segment there supersedes: a run stopped before removing them) go too. The copy's bytes are never merged
 * or trusted: what it gets is the store's signed segment. A merged segment is not pushed where a copy's
 * segment only partly overlaps it (not a part of it: left for verify to report). `storeSegments`: the
 * store's listing after its compaction. A failure is a line (unless the run was stopped).
 */
export async function compactCopyArchive(
  config: Config,
  copy: CopyConfig,
  keys: StoreKeys,
  storeSegments: readonly StoredSegment[],
  signal: AbortSignal,
  dryRun: boolean,
): Promise<ArchiveCompaction> {
  const out: ArchiveCompaction = { destination: `copy ${copy.name}`, merged: [], removed: [], lines: [], errors: [] };
  const merged = storeSegments.filter((s) => s.manifest.parts !== undefined);
  if (!merged.length) return out;
  const run = emptyCopyRun(copy.name, copy.type, '');
  try {
    const repo = await openArchiveCopy(config, copy, signal);
    try {
      const listing = await listCopySegments(repo, keys, signal);
      const doomed = listing.superseded.map((s) => s.id);
      const there = new Set(listing.segments.map((s) => s.id));
      const floor = listing.segments[0]?.manifest.first;
      for (const m of merged) {
        if (there.has(m.id)) continue;
        const { first, last } = m.manifest;
        const touching = listing.segments.filter((s) => s.manifest.first <= last && s.manifest.last >= first);
        const inside = touching.filter((s) => s.manifest.first >= first && s.manifest.last <= last);
        // Older than the copy's oldest segment: pruned there by its own retention (as pushSegments' floor).
        if (inside.length !== touching.length || (floor !== undefined && last < floor)) continue;
        if (!dryRun) await pushSnapshot(repo, m, run, signal);
        out.merged.push(m.id);
        doomed.push(...inside.map((s) => s.id));
      }
      for (const id of doomed) {
        signal.throwIfAborted();
        if (!dryRun) await removeRemoteSnapshot(repo, id);
        out.removed.push(id);
      }
    } finally {
      await repo.close().catch(() => undefined);
    }
    if (out.merged.length || out.removed.length) {
      const verb = dryRun ? 'would push' : 'pushed';
      out.lines.push(
        `copy ${copy.name}: archive: ${verb} ${out.merged.length} merged segment(s), ` +
          `${dryRun ? 'would remove' : 'removed'} ${out.removed.length} segment(s) they hold`,
      );
    }
  } catch (err) {
    if (signal.aborted) throw err;
    const line = `copy ${copy.name}: archive: could not compact: ${describeError(err)}`;
    out.errors.push(line);
    out.lines.push(line);
  }
  return out;
}

/**
 * Compaction for backup and prune alike (under the backup lock): the store's archive, then each of `copies`
 * (backup: those it just reached). Nothing when the store has no archive. Failures are lines.
 */
export async function compactArchive(
  config: Config,
  settings: StoreWriteSettings,
  copies: readonly CopyConfig[],
  signal: AbortSignal,
  o: { dryRun: boolean; mfsJobsVersion: string },
): Promise<ArchiveCompaction[]> {
  const s = config.snapshotStore!;
  if (!(await pathExists(archiveDir(s.path)))) return [];
  const bounds = { afterSeconds: windowMs(s.compactSegmentsAfter) / 1000, maxBytes: s.compactSegmentBytes };
  let store: ArchiveCompaction;
  try {
    store = await compactStoreSegments(s.path, settings, { ...bounds, ...o });
  } catch (err) {
    const line = `archive: could not compact: ${describeError(err)}`;
    return [{ destination: 'store', merged: [], removed: [], lines: [line], errors: [line] }];
  }
  const out = [store];
  const { segments } = await listSegments(s.path, settings);
  for (const copy of copies) {
    signal.throwIfAborted();
    out.push(await compactCopyArchive(config, copy, settings, segments, signal, o.dryRun));
  }
  return out;
}
