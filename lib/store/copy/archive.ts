import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, CopyConfig } from '../../core/config.js';
import { ChainError, describeError, TransferError } from '../../core/errors.js';
import { DIR_MODE } from '../../core/atomic.js';
import { MANIFEST, onDisk } from '../manifest.js';
import type { StoreKeys } from '../sealed.js';
import {
  ARCHIVE_DIR,
  parseSegmentManifest,
  segmentsNotNeeded,
  type SegmentManifest,
  type StoredSegment,
} from '../segments.js';
import { download, ensureRoom } from './fetch.js';
import { copyListingBudget, MAX_MANIFEST_BYTES } from './listing.js';
import { openCopy } from './open.js';
import { pushSnapshot, removeRemoteSnapshot, type CopyRun } from './push.js';
import type { CopyRepository } from './repository.js';

/**
 * The changelog archive on an off-site copy: the store's `archive/<id>/` under the copy's `archive/`,
 * written like its snapshots (stored bytes, manifest last) and read back like them (only a manifest the
 * store signed, names and sizes bounded by it, every byte hashed against it before use).
 */

export interface CopySegments {
  segments: { id: string; manifest: SegmentManifest }[];
  /** Segment directories without a manifest (an interrupted push). */
  incomplete: string[];
  broken: { id: string; error: string }[];
}

/** Every segment on the copy, its manifest checked (one listing budget for the lot). */
export async function listCopySegments(
  repo: CopyRepository,
  keys: StoreKeys,
  signal?: AbortSignal,
): Promise<CopySegments> {
  const budget = copyListingBudget(repo, { signal });
  try {
    const { ids } = await repo.listSnapshotIds(budget);
    const out: CopySegments = { segments: [], incomplete: [], broken: [] };
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
    out.segments.sort((a, b) => a.manifest.first - b.manifest.first);
    return out;
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
  const run: CopyRun = {
    copy: repo.name,
    type: 'sftp',
    label: repo.label,
    ok: false,
    sentFiles: 0,
    skippedFiles: 0,
    sentBytes: 0,
    pushed: [],
    removed: [],
    removedIncomplete: [],
    complete: [],
    seconds: 0,
  };
  const started = Date.now();
  for (const s of segments) {
    if (known.has(s.id) || (floor !== undefined && s.manifest.last < floor)) continue;
    await pushSnapshot(repo, s, run, signal);
    known.add(s.id);
  }
  run.ok = true;
  run.seconds = (Date.now() - started) / 1000;
  return run;
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
): Promise<StoredSegment[]> {
  const repo = await openArchiveCopy(config, copy, signal);
  try {
    const listing = await listCopySegments(repo, keys, signal);
    const wanted = listing.segments.filter((s) => s.manifest.last >= fromVersion);
    await ensureRoom(
      dir,
      wanted.map((s) => onDisk(s.manifest.files[0]!).size),
      `the archive of copy ${copy.name}`,
    );
    const out: StoredSegment[] = [];
    for (const s of wanted) {
      signal.throwIfAborted();
      const into = path.join(dir, s.id);
      await fs.mkdir(into, { mode: DIR_MODE });
      const f = onDisk(s.manifest.files[0]!);
      const sha = await download(repo, s.id, f.name, f.size, path.join(into, f.name));
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
