import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  DIR_MODE,
  ensureDir,
  fsyncDir,
  pathExists,
  renameDurable,
  writeFileAtomic,
  writeNewFile,
  type Durability,
} from '../core/atomic.js';
import { ChainError, describeError } from '../core/errors.js';
import { plainNameProblem, shownName } from '../core/names.js';
import { openFilesUnder } from '../core/openfiles.js';
import { mapLimit } from '../core/parallel.js';
import type { Hole } from '../moosefs/chain.js';
import {
  documentMac,
  fileProblem,
  ID_PATTERN,
  macKeyOf,
  macProblem,
  MANIFEST,
  sealedFilesProblem,
  snapshotId,
  UntrustedManifestError,
  type ManifestFile,
  type ManifestMac,
} from './manifest.js';
import {
  batchable,
  copySnapshotFile,
  copySnapshotFiles,
  openSnapshotFile,
  readSnapshotContent,
  storeStagedFile,
  storeStream,
  type FileHolder,
  type StoreKeys,
  type StoreWriteSettings,
} from './stored-file.js';

/**
 * The changelog archive (issue #26): the lines MooseFS writes, cut into sealed **segments** as they
 * come, beside the snapshots' images:
 *
 *   <store>/archive/<YYYYMMDDTHHMMSSZ>-v<first>/   one segment: UTC time of its first line, its first version
 *       changelog.<first>.mfs[.zst][.enc]            the lines, whole, versions first..last, stored like any file
 *       manifest.json                                this module's SegmentManifest, signed like a snapshot's
 *   <store>/archive/.tmp/                            segments being sealed (a killed run's are removed)
 *
 * A segment is complete or absent (staged, fsynced, renamed). Segments follow each other by version:
 * `previous` is the archive's end before it; a segment that does not start right after it carries the
 * `gap` it leaves (recorded when it is sealed, never papered over). Copies hold the same under `archive/`.
 */
export const ARCHIVE_DIR = 'archive';
const SEGMENT_DOMAIN = 'mfs-jobs segment v1';
/** Where a restore places segment k (oldest first): high N = old, as MooseFS numbers rotated changelogs. */
const PLACED_BASE = 900_000_000;
/** More parts than a week of 1-second segments is not a compaction this code wrote. */
const MAX_PARTS = 7 * 86_400;

export interface SegmentManifest {
  formatVersion: 1;
  kind: 'segment';
  id: string;
  /** The host the lines were read from (any source's line of a version is the same change). */
  source: SegmentSource;
  /** The filesystem's metaid the file is sealed for ('' when the cluster's is not known yet). */
  metaid: string;
  /** Changelog versions inside (whole lines, +1 each), and the unix times of the first and last. */
  first: number;
  last: number;
  firstTime: number;
  lastTime: number;
  /** The archive's last version before this segment; absent for the archive's first segment. */
  previous?: number;
  /** Versions lost between `previous` and `first`, and why (a source rotated past them, or restarted). */
  gap?: Hole & { why: string };
  /** Compaction (compactStoreSegments): this segment holds the lines of this many sealed segments, merged. */
  parts?: number;
  files: ManifestFile[];
  mfsJobsVersion: string;
  sealedAt: string;
  mac?: ManifestMac;
}

export interface SegmentSource {
  name: string;
  host: string;
  role: 'master' | 'metalogger' | 'chunkserver';
  dataPath: string;
}

export interface StoredSegment {
  id: string;
  dir: string;
  manifest: SegmentManifest;
}

export function archiveDir(store: string): string {
  return path.join(store, ARCHIVE_DIR);
}

/** The segment's changelog under its MooseFS name (what its file is sealed for). */
export function segmentFileName(first: number): string {
  return `changelog.${first}.mfs`;
}

/** Reading a segment's file goes through the store's one reader, sealed for the segment's id and metaid. */
export function segmentHolder(s: StoredSegment): FileHolder {
  return { id: s.id, dir: s.dir, manifest: { id: s.id, image: { metaid: s.manifest.metaid } } };
}

const isVersion = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

function shapeProblem(m: SegmentManifest): string | undefined {
  if (!m || m.formatVersion !== 1 || m.kind !== 'segment') return 'not an mfs-jobs segment manifest';
  if (typeof m.id !== 'string' || !ID_PATTERN.test(m.id)) return `id ${shownName(m.id)} is not a segment id`;
  if (![m.first, m.last, m.firstTime, m.lastTime].every(isVersion) || m.first > m.last)
    return 'versions or times are not numbers';
  if (m.previous !== undefined && (!isVersion(m.previous) || m.previous >= m.first))
    return `previous ${shownName(String(m.previous))} is not below first`;
  if (typeof m.metaid !== 'string' || !/^[0-9A-Fa-f]{0,16}$/.test(m.metaid)) return 'metaid is not a metaid';
  if (!m.source || typeof m.source.name !== 'string') return 'source is not a source';
  if (!Array.isArray(m.files) || m.files.length !== 1) return 'a segment holds exactly one changelog';
  const f = m.files[0]!;
  const nameProblem = plainNameProblem(f?.name);
  if (nameProblem) return `files[0].name ${shownName(f?.name)} is not a plain file name (${nameProblem})`;
  if (f.name !== segmentFileName(m.first) || f.role !== 'changelog')
    return `files[0] is not ${segmentFileName(m.first)}`;
  if (f.firstVersion !== m.first || f.lastVersion !== m.last) return 'files[0] versions differ from the segment';
  const problem = fileProblem(f);
  if (problem) return `files[0]${problem}`;
  if (m.parts !== undefined && !(Number.isSafeInteger(m.parts) && m.parts >= 2 && m.parts <= MAX_PARTS))
    return `parts ${shownName(String(m.parts))} is not a count of merged segments`;
  if (m.gap !== undefined) {
    const g = m.gap;
    if (!g || !isVersion(g.from) || !isVersion(g.to) || g.to !== m.first - 1 || typeof g.why !== 'string')
      return 'gap is not a gap before first';
  }
  return undefined;
}

/**
 * A segment's manifest, checked like a snapshot's (parseManifest): shape, names and sizes first, then, with
 * a key, the MAC (its own domain: a snapshot's manifest never passes as a segment's) and the sealing rules.
 */
export function parseSegmentManifest(text: string, file: string, keys: StoreKeys): SegmentManifest {
  let m: SegmentManifest;
  try {
    m = JSON.parse(text) as SegmentManifest;
  } catch {
    throw new ChainError(file, `${file}: unreadable segment manifest (not valid JSON)`);
  }
  const problem = shapeProblem(m);
  if (problem) throw new ChainError(file, `${file}: ${problem}`);
  const { key, problem: keyProblem } = macKeyOf(keys);
  if (keyProblem)
    throw new UntrustedManifestError(file, `${file}: segment ${m.id}: cannot check its manifest: ${keyProblem}`);
  if (!key) return m;
  const untrusted =
    m.mac === undefined
      ? 'its manifest carries no MAC; refused'
      : (macProblem(m, key, SEGMENT_DOMAIN) ?? sealedFilesProblem(m.files, keys));
  if (untrusted) throw new UntrustedManifestError(file, `${file}: segment ${m.id}: ${untrusted}`);
  return m;
}

function signSegment(m: SegmentManifest, keys: StoreKeys): SegmentManifest {
  const { key, problem } = macKeyOf(keys);
  if (problem) throw new ChainError(m.id, `segment ${m.id}: cannot sign its manifest: ${problem}`);
  const { mac: _mac, ...rest } = m;
  return key ? { ...rest, mac: documentMac(rest, key, SEGMENT_DOMAIN) } : rest;
}

export interface SegmentListing {
  /** Complete, trusted segments, by first version: one non-overlapping set (chooseSegments). */
  segments: StoredSegment[];
  /** Trusted segments whose lines a merged segment among `segments` holds too (compaction's leftovers). */
  superseded: StoredSegment[];
  broken: { id: string; error: string; untrusted?: boolean }[];
}

/**
 * The one choice every reader of an archive makes (pure): a merged segment (compaction) and the parts it was
 * made of may both be listed — a run killed between sealing the merged segment and removing its parts, or a
 * copy that got the merged one before its parts went. The merged segment is chosen and every segment whose
 * versions lie inside it is `superseded` (the next compaction removes it). Only a merged segment supersedes:
 * two sealed segments that overlap are the archiver's fault and stay for archiveChain to report. Sorted by
 * first version; on the same first version the wider (then the merged) one wins.
 */
export function chooseSegments<S extends { id: string; manifest: Pick<SegmentManifest, 'first' | 'last' | 'parts'> }>(
  segments: readonly S[],
): { chosen: S[]; superseded: S[] } {
  const sorted = [...segments].sort(
    (a, b) =>
      a.manifest.first - b.manifest.first ||
      b.manifest.last - a.manifest.last ||
      (b.manifest.parts ?? 0) - (a.manifest.parts ?? 0) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const chosen: S[] = [];
  const superseded: S[] = [];
  let cover: S | undefined;
  for (const s of sorted) {
    if (cover && s.manifest.first >= cover.manifest.first && s.manifest.last <= cover.manifest.last) {
      superseded.push(s);
      continue;
    }
    chosen.push(s);
    if (s.manifest.parts !== undefined && (!cover || s.manifest.last > cover.manifest.last)) cover = s;
  }
  return { chosen, superseded };
}

export async function listSegments(store: string, keys: StoreKeys): Promise<SegmentListing> {
  const root = archiveDir(store);
  const names = await fs
    .readdir(root)
    .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
  const out: SegmentListing = { segments: [], superseded: [], broken: [] };
  for (const id of names.filter((n) => ID_PATTERN.test(n))) {
    const dir = path.join(root, id);
    const file = path.join(dir, MANIFEST);
    try {
      const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new ChainError(file, `${file}: unreadable segment manifest (${err.code ?? 'unreadable'})`);
      });
      const manifest = parseSegmentManifest(text, file, keys);
      if (manifest.id !== id)
        throw new UntrustedManifestError(file, `${file}: manifest says id ${shownName(manifest.id)}, not ${id}`);
      out.segments.push({ id, dir, manifest });
    } catch (err) {
      out.broken.push({
        id,
        error: (err as Error).message,
        ...(err instanceof UntrustedManifestError ? { untrusted: true } : {}),
      });
    }
  }
  const { chosen, superseded } = chooseSegments(out.segments);
  return { ...out, segments: chosen, superseded };
}

/** What the segments cover: the archive's span, its holes (recorded gaps or not), overlapping segments. */
export interface ArchiveChain {
  first?: number;
  /** Last archived version, and the unix time of its line. */
  last?: number;
  lastTime?: number;
  holes: (Hole & { why?: string })[];
  overlaps: string[];
}

/** Pure: the segments (any order) as one chain of versions. */
export function archiveChain(
  segments: readonly Pick<SegmentManifest, 'id' | 'first' | 'last' | 'lastTime' | 'gap'>[],
): ArchiveChain {
  const sorted = [...segments].sort((a, b) => a.first - b.first);
  const chain: ArchiveChain = { holes: [], overlaps: [] };
  for (const s of sorted) {
    if (chain.last === undefined) chain.first = s.first;
    else if (s.first > chain.last + 1)
      chain.holes.push({ from: chain.last + 1, to: s.first - 1, ...(s.gap ? { why: s.gap.why } : {}) });
    else if (s.first <= chain.last)
      chain.overlaps.push(`${s.id} starts at ${s.first}, the archive already holds up to ${chain.last}`);
    if (chain.last === undefined || s.last > chain.last) {
      chain.last = s.last;
      chain.lastTime = s.lastTime;
    }
  }
  return chain;
}

export interface NewSegment {
  /** Whole changelog lines, versions first..last, each ending in a newline. */
  lines: Buffer;
  first: number;
  last: number;
  firstTime: number;
  lastTime: number;
  previous?: number;
  gap?: SegmentManifest['gap'];
  source: SegmentSource;
  metaid: string;
  mfsJobsVersion: string;
}

async function freeSegmentId(store: string, at: Date, first: number): Promise<string> {
  for (let shift = 0; ; shift++) {
    const id = snapshotId(new Date(at.getTime() + shift * 1000), first);
    if (!(await pathExists(path.join(archiveDir(store), id)))) return id;
  }
}

/** Staging lives under the archive, apart from backup's `.tmp/` (backup removes its leftovers there while we run). */
function stagingDir(store: string): string {
  return path.join(archiveDir(store), '.tmp');
}

/** Segments a killed run left half-sealed (the caller holds the archive lock). */
export async function removeSegmentLeftovers(store: string): Promise<number> {
  const names = await fs.readdir(stagingDir(store)).catch(() => [] as string[]);
  for (const n of names) await fs.rm(path.join(stagingDir(store), n), { recursive: true, force: true });
  return names.length;
}

/** Seal one segment: the lines stored like any snapshot file (compressed, sealed), the manifest signed, renamed in. */
export async function writeSegment(
  store: string,
  seg: NewSegment,
  settings: StoreWriteSettings,
): Promise<StoredSegment> {
  await ensureDir(store);
  await ensureDir(archiveDir(store));
  await ensureDir(stagingDir(store));
  const stage = await fs.mkdtemp(path.join(stagingDir(store), 'segment-'));
  try {
    await fs.chmod(stage, DIR_MODE);
    const id = await freeSegmentId(store, new Date(seg.firstTime * 1000), seg.first);
    const name = segmentFileName(seg.first);
    await writeNewFile(path.join(stage, name), async (out) => {
      await out.write(seg.lines);
    });
    const plain: ManifestFile = {
      name,
      role: 'changelog',
      size: seg.lines.length,
      sha256: createHash('sha256').update(seg.lines).digest('hex'),
      sourcePath: seg.source.dataPath,
      sourceSize: seg.lines.length,
      sourceMtimeMs: seg.lastTime * 1000,
      firstVersion: seg.first,
      lastVersion: seg.last,
    };
    const file = await storeStagedFile(stage, plain, settings, { id, image: { metaid: seg.metaid } });
    const manifest: SegmentManifest = {
      formatVersion: 1,
      kind: 'segment',
      id,
      source: seg.source,
      metaid: seg.metaid,
      first: seg.first,
      last: seg.last,
      firstTime: seg.firstTime,
      lastTime: seg.lastTime,
      ...(seg.previous !== undefined ? { previous: seg.previous } : {}),
      ...(seg.gap ? { gap: seg.gap } : {}),
      files: [file],
      mfsJobsVersion: seg.mfsJobsVersion,
      sealedAt: new Date().toISOString(),
    };
    return await moveSealedSegment(store, stage, manifest, settings);
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/**
 * Every byte of a segment read back through the store's reader (stored and content checksums, key), and
 * its lines: whole, gap-free, exactly first..last. Returns the problems (empty = good).
 */
export async function verifySegment(s: StoredSegment, keys: StoreKeys): Promise<string[]> {
  const f = s.manifest.files[0]!;
  try {
    const facts = await readSnapshotContent(segmentHolder(s), f, { keys });
    const scan = facts.scan!;
    const problems = scan.problems.slice(0, 3).map((p) => `${f.name}:${p.line}: ${p.reason}`);
    if (scan.segments.length > 1) problems.push(`${f.name}: versions are not contiguous`);
    if (scan.first !== s.manifest.first || scan.last !== s.manifest.last) {
      problems.push(
        `${f.name}: holds ${scan.first ?? '-'}..${scan.last ?? '-'}, manifest says ${s.manifest.first}..${s.manifest.last}`,
      );
    }
    return problems;
  } catch (err) {
    return [(err as Error).message];
  }
}

/** The segments a restore from an image at `fromVersion` needs (lines at or after it), oldest first. */
export function segmentsFrom(segments: readonly StoredSegment[], fromVersion: number): StoredSegment[] {
  return segments.filter((s) => s.manifest.last >= fromVersion).sort((a, b) => a.manifest.first - b.manifest.first);
}

/** Plain bytes of segments one `zstd -d` decompresses for placeSegments (one process, not one per segment). */
const BATCH_BYTES = 64 << 20;

/**
 * Runs of segments, in order, that go through one `zstd -d` (batchable, at most BATCH_BYTES of lines
 * together); a segment that cannot join one (stored plain, or larger) is a run of its own.
 */
function placingBatches<S extends StoredSegment>(segments: readonly S[], keys: StoreKeys | undefined): S[][] {
  const out: S[][] = [];
  let run: S[] = [];
  let bytes = 0;
  for (const s of segments) {
    const f = s.manifest.files[0]!;
    const joins = batchable(f, keys) && f.size <= BATCH_BYTES;
    if (!joins || bytes + f.size > BATCH_BYTES) {
      if (run.length) out.push(run);
      run = [];
      bytes = 0;
    }
    if (!joins) {
      out.push([s]);
      continue;
    }
    run.push(s);
    bytes += f.size;
  }
  if (run.length) out.push(run);
  return out;
}

/**
 * Copy segments into a restore's DATA_PATH as MooseFS changelogs (checked on the way like a snapshot's
 * files), under names no snapshot's changelog has. Returns the placed names and bytes. Small zstd-stored
 * segments go through one `zstd -d` together (copySnapshotFiles: each still checked against its own
 * manifest); a batch that fails is placed again one segment at a time, so the error names the segment exactly.
 */
export async function placeSegments(
  segments: readonly StoredSegment[],
  dataPath: string,
  o: Durability & {
    keys?: StoreKeys;
    signal?: AbortSignal;
    /** Batches (or lone segments) copied at once (each read once: stored hash, zstd -d, content hash). */
    parallel?: number;
    /** Called with each segment once it is placed whole (the caller scans it while the next is copied). */
    placed?: (name: string, file: string) => Promise<void>;
    /** What sees each segment's content as it is written (a restore's scan of it): by its placed name. */
    tap?: (name: string) => ((chunk: Buffer) => void) | undefined;
  },
): Promise<{ names: string[]; bytes: number }> {
  const names = segments.map((_, i) => `changelog.${PLACED_BASE - i}.mfs`);
  const index = new Map(segments.map((s, i) => [s, i]));
  const one = async (s: StoredSegment) => {
    const i = index.get(s)!;
    const file = path.join(dataPath, names[i]!);
    await copySnapshotFile(segmentHolder(s), s.manifest.files[0]!, file, { ...o, tap: o.tap?.(names[i]!) });
    await o.placed?.(names[i]!, file);
  };
  const batch = async (run: StoredSegment[]) => {
    const files = run.map((s) => {
      const name = names[index.get(s)!]!;
      return {
        holder: segmentHolder(s),
        f: s.manifest.files[0]!,
        target: path.join(dataPath, name),
        tap: o.tap?.(name),
      };
    });
    try {
      await copySnapshotFiles(files, o);
    } catch (err) {
      if (o.signal?.aborted) throw err;
      // Nothing of the batch is left (copySnapshotFiles removed it): each again through its own stream.
      for (const s of run) await one(s);
      return;
    }
    for (const [k, s] of run.entries()) await o.placed?.(names[index.get(s)!]!, files[k]!.target);
  };
  await mapLimit(placingBatches(segments, o.keys), o.parallel ?? 1, (run) =>
    run.length === 1 ? one(run[0]!) : batch(run),
  );
  return { names, bytes: segments.reduce((n, s) => n + s.manifest.files[0]!.size, 0) };
}

/**
 * Segments no retained image needs (pure): every line older than the oldest retained image's start
 * version. The archive's newest segment always stays (it is where the archive resumes).
 */
export function segmentsNotNeeded<S extends { manifest: Pick<SegmentManifest, 'last'> }>(
  segments: readonly S[],
  retainedStarts: readonly number[],
): S[] {
  if (!retainedStarts.length || !segments.length) return [];
  const oldest = Math.min(...retainedStarts);
  const newest = segments.reduce((a, b) => (b.manifest.last > a.manifest.last ? b : a));
  return segments.filter((s) => s !== newest && s.manifest.last < oldest);
}

/** The segment ids a process holds a file of open (a restore copying it): never removed under it. */
async function heldSegments(store: string): Promise<Set<string | undefined>> {
  const open = await openFilesUnder(archiveDir(store));
  const root = await fs.realpath(archiveDir(store)).catch(() => archiveDir(store));
  return new Set([...open.keys()].map((f) => path.relative(root, f).split(path.sep)[0]));
}

/** Remove a segment so no reader sees half of it: renamed into the archive's staging directory first. */
export async function removeSegment(store: string, id: string): Promise<void> {
  await ensureDir(stagingDir(store));
  const doomed = path.join(stagingDir(store), `remove-${id}-${process.pid}`);
  await renameDurable(path.join(archiveDir(store), id), doomed);
  await fs.rm(doomed, { recursive: true, force: true });
}

/** What pruning one destination's archive did (or, dry run, would do): the removed ids, one line each. */
export interface ArchivePruning {
  /** `store`, or `copy NAME`. */
  destination: string;
  /** Removed (dry run: would be removed), oldest first. */
  removed: string[];
  lines: string[];
  errors: string[];
}

/**
 * The recovery window's side of the store's archive (issue #26), for backup (after its retention) and prune
 * alike: the segments whose lines are all older than every retained image (`retainedStarts`: the versions the
 * snapshots left in the store restore from, pinned ones among them) go, never the newest (segmentsNotNeeded),
 * never one a process holds open (a restore copying it). Only segments whose manifest the listing accepts
 * are counted. A failure is a line, not a failed run. The caller holds the backup lock (so two prunings never
 * race, and no snapshot appears that the starts miss); the archiver seals under `archive/.tmp/` and renames
 * in, so nothing it is writing is ever a listed segment.
 */
export async function pruneStoreSegments(
  store: string,
  keys: StoreKeys,
  retainedStarts: readonly number[],
  dryRun: boolean,
): Promise<ArchivePruning> {
  const out: ArchivePruning = { destination: 'store', removed: [], lines: [], errors: [] };
  const { segments } = await listSegments(store, keys);
  const doomed = segmentsNotNeeded(segments, retainedStarts);
  if (!doomed.length) return out;
  const held = dryRun ? new Set<string>() : await heldSegments(store);
  for (const seg of doomed) {
    const versions = `${seg.manifest.first}..${seg.manifest.last}`;
    const what = `segment ${seg.id} (versions ${versions}: older than every retained image)`;
    if (dryRun) {
      out.removed.push(seg.id);
      out.lines.push(`archive: would remove ${what}`);
      continue;
    }
    if (held.has(seg.id)) {
      out.lines.push(
        `archive: left segment ${seg.id}: opened by a process (a restore reading it); the next run retries`,
      );
      continue;
    }
    try {
      await removeSegment(store, seg.id);
      out.removed.push(seg.id);
      out.lines.push(`archive: removed ${what}`);
    } catch (err) {
      const line = `archive: could not remove segment ${seg.id}: ${describeError(err)}`;
      out.errors.push(line);
      out.lines.push(line);
    }
  }
  return out;
}

/** Compaction's bounds (config `snapshotStore.compactSegmentsAfter`, `.compactSegmentBytes`). */
export interface CompactionSettings {
  /** Only hours that ended at least this long ago (seconds) are merged. */
  afterSeconds: number;
  /** A merged segment holds at most this many bytes of lines (an hour above it becomes several). */
  maxBytes: number;
}

const HOUR = 3600;

/**
 * What compaction merges (pure): runs of segments, in version order, that started in the same UTC hour, follow
 * each other without a gap, are sealed for the same metaid and hold at most `maxBytes` of lines together; only
 * runs of two or more. An hour is merged only once it ended `afterSeconds` before `now` and the archive's
 * newest segment starts after it (the archiver has moved past it: it resumes from the newest segment and only
 * ever appends after it, so nothing it writes lands in a merged hour). The newest segment is never merged.
 */
export function compactionPlan<S extends { id: string; manifest: SegmentManifest }>(
  segments: readonly S[],
  now: number,
  o: CompactionSettings,
): S[][] {
  const sorted = [...segments].sort((a, b) => a.manifest.first - b.manifest.first);
  const newest = sorted.at(-1);
  if (!newest) return [];
  const hourOf = (s: S) => Math.floor(s.manifest.firstTime / HOUR);
  const done = (h: number) => (h + 1) * HOUR <= now - o.afterSeconds && (h + 1) * HOUR <= newest.manifest.firstTime;
  const groups: S[][] = [];
  let run: S[] = [];
  let bytes = 0;
  const close = () => {
    if (run.length > 1) groups.push(run);
    run = [];
    bytes = 0;
  };
  for (const s of sorted.slice(0, -1)) {
    const prev = run.at(-1);
    const size = s.manifest.files[0]!.size;
    const joins =
      prev !== undefined &&
      hourOf(prev) === hourOf(s) &&
      s.manifest.first === prev.manifest.last + 1 &&
      !s.manifest.gap &&
      s.manifest.metaid === prev.manifest.metaid &&
      bytes + size <= o.maxBytes;
    if (!joins) close();
    if (!done(hourOf(s))) continue;
    run.push(s);
    bytes += size;
  }
  close();
  return groups;
}

/**
 * One segment holding the lines of `parts` (a run from compactionPlan): read through the store's checked
 * reader, stored like any segment, read back and scanned whole (verifySegment) in staging, and only then
 * renamed in. The parts are left for the caller to remove.
 */
export async function mergeSegments(
  store: string,
  parts: readonly StoredSegment[],
  settings: StoreWriteSettings,
  mfsJobsVersion: string,
): Promise<StoredSegment> {
  const first = parts[0]!.manifest;
  const last = parts.at(-1)!.manifest;
  await ensureDir(stagingDir(store));
  const stage = await fs.mkdtemp(path.join(stagingDir(store), 'merge-'));
  try {
    await fs.chmod(stage, DIR_MODE);
    const id = await freeSegmentId(store, new Date(first.firstTime * 1000), first.first);
    const size = parts.reduce((n, p) => n + p.manifest.files[0]!.size, 0);
    async function* lines(): AsyncGenerator<Buffer> {
      for (const p of parts) {
        const stream = openSnapshotFile(segmentHolder(p), p.manifest.files[0]!, { keys: settings });
        for await (const chunk of stream) yield chunk as Buffer;
      }
    }
    const holder = { id, image: { metaid: first.metaid } };
    const entry = {
      name: segmentFileName(first.first),
      role: 'changelog' as const,
      sourcePath: first.files[0]!.sourcePath,
      sourceSize: size,
      sourceMtimeMs: last.lastTime * 1000,
      firstVersion: first.first,
      lastVersion: last.last,
    };
    const file = await storeStream(stage, entry, lines(), settings, holder);
    if (file.size !== size)
      throw new ChainError(id, `merged segment ${id}: ${file.size} bytes of lines, parts hold ${size}`);
    const manifest: SegmentManifest = {
      formatVersion: 1,
      kind: 'segment',
      id,
      source: first.source,
      metaid: first.metaid,
      first: first.first,
      last: last.last,
      firstTime: first.firstTime,
      lastTime: last.lastTime,
      ...(first.previous !== undefined ? { previous: first.previous } : {}),
      ...(first.gap ? { gap: first.gap } : {}),
      parts: parts.reduce((n, p) => n + (p.manifest.parts ?? 1), 0),
      files: [file],
      mfsJobsVersion,
      sealedAt: new Date().toISOString(),
    };
    const staged: StoredSegment = { id, dir: stage, manifest };
    const problems = await verifySegment(staged, settings);
    if (problems.length) throw new ChainError(id, `merged segment ${id}: ${problems.join('; ')}`);
    return await moveSealedSegment(store, stage, manifest, settings);
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/** What compacting one destination's archive did (or, dry run, would do). */
export interface ArchiveCompaction {
  /** `store`, or `copy NAME`. */
  destination: string;
  /** Merged segments written (dry run: the runs that would be merged, as `first..last` ids). */
  merged: string[];
  /** Parts removed once their merged segment was sealed and verified (leftovers of a killed run among them). */
  removed: string[];
  lines: string[];
  errors: string[];
}

/**
 * Compaction of the store's archive (issue #26): keeps the segment count bounded with a short segmentSeconds
 * (17,280 segments a day at 5 s; about 24 a day once merged). First the leftovers of a killed run: a part a
 * merged segment supersedes goes once that merged segment reads back whole. Then every run compactionPlan
 * finds is merged (mergeSegments) and its parts removed. A part a process holds open (a restore) stays for
 * the next run; a failure is a line. The caller holds the backup lock (prune, backup): two compactions never
 * race, nor compaction and retention; the archiver only appends after the newest segment, never merged.
 */
export async function compactStoreSegments(
  store: string,
  settings: StoreWriteSettings,
  o: CompactionSettings & { now?: number; dryRun?: boolean; mfsJobsVersion: string },
): Promise<ArchiveCompaction> {
  const out: ArchiveCompaction = { destination: 'store', merged: [], removed: [], lines: [], errors: [] };
  const fail = (line: string) => {
    out.errors.push(line);
    out.lines.push(line);
  };
  const listing = await listSegments(store, settings);
  const groups = compactionPlan(listing.segments, o.now ?? Date.now() / 1000, o);
  if (o.dryRun) {
    for (const s of listing.superseded) out.lines.push(`archive: would remove segment ${s.id} (merged already)`);
    for (const g of groups) {
      out.merged.push(`${g[0]!.id}..${g.at(-1)!.id}`);
      out.lines.push(`archive: would merge ${g.length} segments (${g[0]!.id}..${g.at(-1)!.id})`);
    }
    return out;
  }
  const held = listing.superseded.length || groups.length ? await heldSegments(store) : new Set<string>();
  const removeParts = async (parts: readonly StoredSegment[], into: string) => {
    for (const p of parts) {
      if (held.has(p.id)) {
        const why = 'opened by a process; the next run retries';
        out.lines.push(`archive: left segment ${p.id} (merged into ${into}): ${why}`);
        continue;
      }
      try {
        await removeSegment(store, p.id);
        out.removed.push(p.id);
      } catch (err) {
        fail(`archive: could not remove segment ${p.id} (merged into ${into}): ${describeError(err)}`);
      }
    }
  };
  const containerOf = (p: StoredSegment) =>
    listing.segments.find(
      (m) =>
        m.manifest.parts !== undefined && m.manifest.first <= p.manifest.first && p.manifest.last <= m.manifest.last,
    );
  const checked = new Map<string, string[]>();
  for (const p of listing.superseded) {
    const m = containerOf(p)!;
    if (!checked.has(m.id)) checked.set(m.id, await verifySegment(m, settings));
    const problems = checked.get(m.id)!;
    if (problems.length) {
      fail(`archive: kept segment ${p.id}: the merged segment ${m.id} does not read back (${problems[0]})`);
      continue;
    }
    await removeParts([p], m.id);
  }
  for (const g of groups) {
    let merged: StoredSegment;
    try {
      merged = await mergeSegments(store, g, settings, o.mfsJobsVersion);
    } catch (err) {
      fail(`archive: could not merge segments ${g[0]!.id}..${g.at(-1)!.id}: ${describeError(err)}`);
      continue;
    }
    out.merged.push(merged.id);
    const versions = `${merged.manifest.first}..${merged.manifest.last}`;
    out.lines.push(`archive: merged ${g.length} segments into ${merged.id} (versions ${versions})`);
    await removeParts(g, merged.id);
  }
  return out;
}

/** The manifest written (signed) last into a staged segment, then the whole segment renamed into the archive. */
async function moveSealedSegment(
  store: string,
  stage: string,
  manifest: SegmentManifest,
  settings: StoreWriteSettings,
): Promise<StoredSegment> {
  await writeFileAtomic(path.join(stage, MANIFEST), JSON.stringify(signSegment(manifest, settings), null, 2) + '\n');
  await fsyncDir(stage);
  const target = path.join(archiveDir(store), manifest.id);
  await renameDurable(stage, target);
  return { id: manifest.id, dir: target, manifest };
}
