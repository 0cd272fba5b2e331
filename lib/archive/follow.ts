import path from 'node:path';
import type { Config, DataPathHost } from '../core/config.js';
import { describeError, TransferError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { ChangelogScanner, parseChangelogLine } from '../moosefs/changelog.js';
import { listDataPath } from '../moosefs/datapath.js';
import { readChangelogEdges } from '../moosefs/changelog-edges.js';
import { openSource, type FileSource, type RemoteEntry } from '../transport/remote.js';
import { clusterIdentity } from '../store/identity.js';
import {
  archiveChain,
  listSegments,
  removeSegmentLeftovers,
  segmentHolder,
  writeSegment,
  type StoredSegment,
} from '../store/segments.js';
import { openSnapshotFile, type StoreKeys, type StoreWriteSettings } from '../store/stored-file.js';

/**
 * Following the changelogs as MooseFS writes them and sealing them into the store's archive
 * (lib/store/segments.ts). One source at a time (metaloggers first); each round asks the source for the
 * lines from the archive's next version on, takes only whole lines that follow it +1 each, and seals a
 * segment every `segmentSeconds` or `segmentBytes`. What the sources no longer hold is a gap, recorded
 * in the next segment, never skipped quietly.
 */
export interface FollowSettings {
  segmentSeconds: number;
  segmentBytes: number;
  /** At most this much is read from a source per round (the rest next round). */
  readBytes: number;
}

/** A line longer than this has no end: a hostile or broken source, refused (changelog.ts allows as much). */
const MAX_LINE = 1 << 20;
/** A change stamped later than this ahead of our clock is not believed (a `--to-time` would trust it). */
const MAX_FUTURE_SECONDS = 3600;

/** The last whole line of `lines` (which end with a newline), without it. */
function lastLineOf(lines: Buffer): string | undefined {
  const end = lines.length - 1;
  if (end < 0) return undefined;
  return lines.subarray(lines.lastIndexOf(0x0a, end - 1) + 1, end).toString('latin1');
}

type Found =
  | { kind: 'lines'; lines: Buffer; first: number; last: number; firstTime: number; lastTime: number }
  | { kind: 'nothing' }
  | { kind: 'gap'; resumesAt: number; why: string };

interface Cursor {
  host: string;
  /** The file read: its name (which shifts at every rotation, so the offset is found again) and first version. */
  file: string;
  fileFirst: number;
  offset: number;
  next: number;
}

export interface FollowRequest {
  config: Config;
  store: string;
  sources: DataPathHost[];
  settings: FollowSettings;
  storage: StoreWriteSettings;
  keys: StoreKeys;
  log: Logger;
  mfsJobsVersion: string;
  /** Called with every sealed segment (push to the copies). */
  onSealed?: (segment: StoredSegment, all: readonly StoredSegment[]) => Promise<void>;
}

interface Pending {
  parts: Buffer[];
  bytes: number;
  first: number;
  last: number;
  firstTime: number;
  lastTime: number;
  since: number;
  gap?: { from: number; to: number; why: string };
}

export class ArchiveFollower {
  readonly segments: StoredSegment[] = [];
  /** The next version the archive wants (its last + 1), undefined until the first line is seen. */
  next: number | undefined;
  sealed: StoredSegment[] = [];
  gaps: { from: number; to: number; why: string }[] = [];
  problems: string[] = [];
  private pending: Pending | undefined;
  private pendingGap: Pending['gap'];
  private cursor: Cursor | undefined;
  private readonly open = new Map<string, FileSource>();
  private current = 0;
  private readonly firstVersions = new Map<string, number>();
  /** The text of the last archived line (without its newline), to tell a diverged source. */
  private lastLine: string | undefined;

  constructor(private readonly req: FollowRequest) {}

  /** Resume exactly where the archive ends (a killed run's half-sealed segment is dropped and read again). */
  async start(): Promise<void> {
    await removeSegmentLeftovers(this.req.store);
    const { segments, broken } = await listSegments(this.req.store, this.req.keys);
    if (broken.length) this.problems.push(...broken.map((b) => `archive segment ${b.id}: ${b.error}`));
    this.segments.push(...segments);
    const end = archiveChain(segments.map((s) => s.manifest)).last;
    this.next = end === undefined ? undefined : end + 1;
    const newest = segments.find((s) => s.manifest.last === end);
    if (newest) {
      let tail = Buffer.alloc(0);
      for await (const chunk of openSnapshotFile(segmentHolder(newest), newest.manifest.files[0]!, {
        keys: this.req.keys,
      })) {
        tail = Buffer.concat([tail, chunk as Buffer]).subarray(-(2 * MAX_LINE));
      }
      this.lastLine = lastLineOf(tail);
    }
  }

  async close(): Promise<void> {
    for (const s of this.open.values()) await s.close().catch(() => undefined);
    this.open.clear();
  }

  /** One round: new lines from a source, sealed when due. Returns whether anything new came. */
  async round(signal: AbortSignal, now = Date.now()): Promise<boolean> {
    const found = await this.readSomewhere(signal);
    if (found.kind === 'gap') {
      await this.seal();
      const from = this.next!;
      const gap = { from, to: found.resumesAt - 1, why: found.why };
      this.req.log.error(`archive gap: versions ${from}..${gap.to} are on no source (${found.why}); recorded`, gap);
      this.gaps.push(gap);
      this.pendingGap = gap;
      this.next = found.resumesAt;
      this.cursor = undefined;
      return true;
    }
    if (found.kind === 'lines') this.add(found, now);
    if (
      this.pending &&
      (this.pending.bytes >= this.req.settings.segmentBytes ||
        now - this.pending.since >= this.req.settings.segmentSeconds * 1000)
    ) {
      await this.seal();
    }
    return found.kind === 'lines';
  }

  private add(f: Extract<Found, { kind: 'lines' }>, now: number): void {
    const p = (this.pending ??= {
      parts: [],
      bytes: 0,
      first: f.first,
      last: f.first - 1,
      firstTime: f.firstTime,
      lastTime: f.firstTime,
      since: now,
      gap: this.pendingGap,
    });
    this.pendingGap = undefined;
    p.parts.push(f.lines);
    p.bytes += f.lines.length;
    p.last = f.last;
    p.lastTime = f.lastTime;
    this.next = f.last + 1;
    this.lastLine = lastLineOf(f.lines);
  }

  /** Seal what is pending (also on a graceful stop). */
  async seal(): Promise<StoredSegment | undefined> {
    const p = this.pending;
    if (!p) return undefined;
    const lines = Buffer.concat(p.parts);
    // The lines once more through the one scanner of the format: whole, well-formed, +1 each.
    const scanner = new ChangelogScanner('segment');
    scanner.push(lines);
    const scan = scanner.finish();
    if (scan.problems.length || scan.segments.length !== 1 || scan.first !== p.first || scan.last !== p.last) {
      throw new TransferError(
        'archive',
        `archive: lines ${p.first}..${p.last} do not check out (${scan.problems[0]?.reason ?? 'versions'}); not sealed`,
      );
    }
    const source = this.req.sources[this.current]!;
    const identity = await clusterIdentity(this.req.config);
    const previous = archiveChain(this.segments.map((s) => s.manifest)).last;
    const segment = await writeSegment(
      this.req.store,
      {
        lines,
        first: p.first,
        last: p.last,
        firstTime: p.firstTime,
        lastTime: p.lastTime,
        ...(previous !== undefined ? { previous } : {}),
        ...(p.gap
          ? { gap: p.gap }
          : previous !== undefined && p.first > previous + 1
            ? { gap: { from: previous + 1, to: p.first - 1, why: 'not on any source when archiving resumed' } }
            : {}),
        source: { name: source.name, host: source.host, role: source.role, dataPath: source.dataPath },
        metaid: identity?.metaid ?? '',
        mfsJobsVersion: this.req.mfsJobsVersion,
      },
      this.req.storage,
    );
    this.pending = undefined;
    this.segments.push(segment);
    this.sealed.push(segment);
    this.req.log.info('archive segment sealed', {
      segment: segment.id,
      first: p.first,
      last: p.last,
      bytes: lines.length,
    });
    await this.req.onSealed?.(segment, this.segments);
    return segment;
  }

  /** The current source first, then the others in order; a gap only when none holds the next version. */
  private async readSomewhere(signal: AbortSignal): Promise<Found> {
    const n = this.req.sources.length;
    let gap: Extract<Found, { kind: 'gap' }> | undefined;
    let nothing = false;
    const errors: string[] = [];
    for (let k = 0; k < n; k++) {
      const i = (this.current + k) % n;
      signal.throwIfAborted();
      try {
        const found = await this.readFrom(this.req.sources[i]!);
        if (found.kind === 'lines') {
          if (i !== this.current) this.req.log.warn(`archive: reading from ${this.req.sources[i]!.name} now`);
          this.current = i;
          return found;
        }
        if (found.kind === 'nothing') nothing = true;
        else if (!gap || found.resumesAt < gap.resumesAt) gap = found;
        // The current source is merely up to date: no need to ask the others every round.
        if (found.kind === 'nothing' && k === 0) return found;
      } catch (err) {
        if (signal.aborted) throw err;
        errors.push(`${this.req.sources[i]!.name}: ${describeError(err)}`);
        await this.drop(this.req.sources[i]!.name);
      }
    }
    if (errors.length === n)
      throw new TransferError('archive', `archive: no source could be read (${errors.join('; ')})`);
    if (errors.length) this.req.log.warn('archive: a source could not be read', { errors });
    // A gap is recorded only when every source answered and none holds the version.
    if (gap && !nothing && errors.length === 0) return gap;
    return { kind: 'nothing' };
  }

  private async drop(name: string): Promise<void> {
    await this.open
      .get(name)
      ?.close()
      .catch(() => undefined);
    this.open.delete(name);
  }

  private async sourceFor(host: DataPathHost): Promise<FileSource> {
    let s = this.open.get(host.name);
    if (!s) {
      s = await openSource(this.req.config, host, undefined);
      this.open.set(host.name, s);
    }
    return s;
  }

  /** Lines from `next` on in one host's DATA_PATH: from the file whose first line is at or before it. */
  private async readFrom(host: DataPathHost): Promise<Found> {
    const source = await this.sourceFor(host);
    const listing = await listDataPath(source, host.dataPath);
    const files: { entry: RemoteEntry; path: string; first: number }[] = [];
    for (const entry of listing.changelogs) {
      if (entry.size === 0) continue;
      const file = path.posix.join(host.dataPath, entry.name);
      // A rotated file does not change: its first version is read once, not every round.
      const key = `${host.name}\0${entry.name}\0${entry.size}\0${entry.mtimeMs}`;
      let first = this.firstVersions.get(key);
      if (first === undefined) {
        first = (await readChangelogEdges(source, file, entry.size, { head: true, tail: false })).first?.version;
        if (this.firstVersions.size > 1000) this.firstVersions.clear();
        if (first !== undefined) this.firstVersions.set(key, first);
      }
      if (first !== undefined) files.push({ entry, path: file, first });
    }
    if (!files.length) return { kind: 'nothing' };
    files.sort((a, b) => a.first - b.first);
    const want = this.next ?? files[0]!.first;
    // Files holding `want`, the newest first: a metalogger's `_back` tail may start as early and end sooner.
    const candidates = files.filter((f) => f.first <= want).reverse();
    if (!candidates.length)
      return {
        kind: 'gap',
        resumesAt: files[0]!.first,
        why: `${host.name}'s oldest changelog starts at ${files[0]!.first}`,
      };
    let holder: (typeof files)[number] | undefined;
    let offset: number | undefined;
    for (const f of candidates) {
      const c = this.cursor;
      const known = c && c.host === host.name && c.file === f.entry.name && c.fileFirst === f.first && c.next === want;
      const located = known ? { offset: c.offset } : await this.locate(source, f.path, f.entry.size, want);
      // The line before `want` must be the one archived last: else this source holds another history
      // (a master restored to an older point and gone on), whose lines must not continue the archive.
      if (located?.previous !== undefined && this.lastLine !== undefined && located.previous !== this.lastLine) {
        const why = `holds another history: its version ${want - 1} differs from the archived one; not archived from it`;
        throw new TransferError(host.name, `${host.name}:${f.entry.name}: ${why}`);
      }
      offset = located?.offset;
      if (offset !== undefined) {
        holder = f;
        break;
      }
    }
    if (!holder || offset === undefined) {
      // Every file ends before `want`: a newer file starting after it means those versions are gone here.
      const newer = files.find((f) => f.first > want);
      if (newer) {
        const why = `${host.name}: the changelogs before ${newer.entry.name} end before ${want}, it starts at ${newer.first}`;
        return { kind: 'gap', resumesAt: newer.first, why };
      }
      return { kind: 'nothing' };
    }
    const length = Math.min(holder.entry.size - offset, this.req.settings.readBytes);
    if (length <= 0) return { kind: 'nothing' };
    const bytes = await source.readRange(holder.path, offset, length);
    const taken = this.takeLines(bytes, want, `${host.name}:${holder.entry.name}`);
    if (!taken) {
      if (bytes.length >= MAX_LINE && bytes.indexOf(0x0a) === -1)
        throw new TransferError(host.name, `${host.name}:${holder.entry.name}: a line longer than ${MAX_LINE} bytes`);
      return { kind: 'nothing' };
    }
    this.cursor = {
      host: host.name,
      file: holder.entry.name,
      fileFirst: holder.first,
      offset: offset + taken.bytes,
      next: taken.last + 1,
    };
    return {
      kind: 'lines',
      lines: bytes.subarray(0, taken.bytes),
      first: want,
      last: taken.last,
      firstTime: taken.firstTime,
      lastTime: taken.lastTime,
    };
  }

  /**
   * The whole lines at the start of `bytes` that go on from `want` +1 each; a cut last line (no newline
   * yet) is left for the next round. Stops at the first line that does not follow.
   */
  private takeLines(
    bytes: Buffer,
    want: number,
    where: string,
  ): { bytes: number; last: number; firstTime: number; lastTime: number } | undefined {
    let start = 0;
    let expect = want;
    let firstTime: number | undefined;
    let lastTime = 0;
    const limit = Math.floor(Date.now() / 1000) + MAX_FUTURE_SECONDS;
    for (let nl = bytes.indexOf(0x0a); nl !== -1; nl = bytes.indexOf(0x0a, start)) {
      const line = parseChangelogLine(bytes.subarray(start, nl).toString('latin1'));
      if (!line || line.version !== expect) break;
      if (line.timestamp > limit)
        throw new TransferError(
          where,
          `${where}: version ${line.version} is stamped ${line.timestamp - limit + MAX_FUTURE_SECONDS} s in the future; not archived`,
        );
      firstTime ??= line.timestamp;
      lastTime = line.timestamp;
      expect++;
      start = nl + 1;
    }
    return firstTime === undefined ? undefined : { bytes: start, last: expect - 1, firstTime, lastTime };
  }

  /** Byte offset of the line of version `want` in a file, or undefined when the file ends before it. */
  private async locate(
    source: FileSource,
    file: string,
    size: number,
    want: number,
  ): Promise<{ offset: number; previous?: string } | undefined> {
    let offset = 0;
    let previous: string | undefined;
    while (offset < size) {
      const chunk = await source.readRange(file, offset, Math.min(size - offset, 4 << 20));
      if (!chunk.length) return undefined;
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        const text = chunk.subarray(start, nl).toString('latin1');
        const line = parseChangelogLine(text);
        if (line && line.version >= want)
          return line.version === want ? { offset: offset + start, previous } : undefined;
        previous = line?.version === want - 1 ? text : undefined;
        start = nl + 1;
      }
      if (start === 0) return undefined;
      offset += start;
    }
    return undefined;
  }
}
