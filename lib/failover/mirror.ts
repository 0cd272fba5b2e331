import { createReadStream, promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import {
  copyDurable,
  DIR_MODE,
  FILE_MODE,
  fsyncDir,
  linkOrCopy,
  openExclusive,
  readAt,
  renameDurable,
  sealFile,
  tempNameFor,
  writeFileAtomic,
} from '../core/atomic.js';
import type { Config, DataPathHost } from '../core/config.js';
import { ChainError, describeError, MfsJobsError, UntrustedPathError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { plainNameProblem } from '../core/names.js';
import { ChangelogScanner, type ChangelogScan } from '../moosefs/changelog.js';
import { listDataPath, readSourceImageHeader } from '../moosefs/datapath.js';
import { readImageHeader } from '../moosefs/metadata.js';
import { CHANGELOG_GROWTH } from '../transport/bounded.js';
import { openSource, type FileSource } from '../transport/remote.js';
import { readChangelogEdges } from '../moosefs/changelog-edges.js';
import { delay } from '../core/delay.js';
import { standbyMasterPid } from './standby.js';

/**
 * A warm standby's mirror: `mfs-jobs daemon` on the standby keeps a local copy of what each remote
 * source (metalogger, 1.x chunkserver) holds for the newest restore point — its newest image and the
 * changelogs after it — so that at promotion the image is a hard link away and a changelog costs only
 * the lines written since the last pass.
 *
 * The mirror is a cache, never a source: promote still lists and reads every source itself, and takes
 * a mirrored file only when it is provably the same bytes (an image of the same version, metaid and
 * size; a changelog whose first and last mirrored bytes the source still has at the same offsets).
 * Files are named by what they hold, not by the source's name, so the metalogger's hourly rotation
 * (changelog_ml.0 → .1) costs nothing: `image-<version>-<metaid>.mfs`, `changelog-<first version>.mfs`.
 *
 * Hard links are safe for images: MooseFS never writes an existing image in place (mfsmaster writes
 * metadata.mfs.back.tmp and renames it; 4.59.2 metadata.c), so the master that starts from a linked
 * image leaves the mirror's bytes alone (and an image whose mtime moved is not vouched for again). A
 * restored master only reads the metalogger's changelogs it was given (it writes changelog.N.mfs of its
 * own), so the daemon's mirror links those too, after bringing them up to the source's end; the mirror
 * itself never writes into a file that has another link (it copies it first). A mirror read by another
 * process (a promote not handed to the daemon) copies changelogs instead.
 */

const CHUNK = 4 << 20;
/**
 * A mirrored image's mtime, set when it is complete: anything that writes into it afterwards (through
 * a hard link it was placed by) moves the mtime, and the mirror no longer takes it for the source's bytes.
 */
const IMAGE_STAMP_S = 946_684_800;
const stamped = (st: { mtimeMs: number }) => Math.round(st.mtimeMs) === IMAGE_STAMP_S * 1000;

class TornCopy extends MfsJobsError {}
const OVERLAP = 4096;
/** Into promote's staging: a crash discards it, and DirHandle.place syncs what it places from there. */
const STAGED = { durable: false } as const;

/** What promote takes from the mirror. */
export interface MirrorUse {
  /** Bytes that came from the mirror instead of the source. */
  reused: number;
  /** Bytes still read from the source (a changelog's new lines). */
  fetched: number;
  /** The staged changelog's scan, when the mirror kept it as the file grew (no second pass over it). */
  scan?: ChangelogScan;
}

export class MirrorStore {
  /** Scans of the mirrored changelogs, pushed the bytes as they are appended (this store's own writes). */
  private readonly scans = new Map<string, ChangelogScanner>();

  /**
   * `owner`: this store is the one that writes the mirror (the daemon's, paused while promote stages):
   * staging may then bring a changelog up to date in the mirror itself and link it. Any other
   * instance only reads, and copies.
   */
  constructor(
    readonly dir: string,
    readonly owner = false,
  ) {}

  sourceDir(source: string): string {
    const why = plainNameProblem(source);
    if (why)
      throw new UntrustedPathError(
        source,
        `mirror: source name ${JSON.stringify(source)} cannot be a directory name (${why})`,
      );
    return path.join(this.dir, source);
  }

  imagePath(source: string, version: number, metaid: string): string {
    return path.join(this.sourceDir(source), `image-${version}-${metaid || 'empty'}.mfs`);
  }

  changelogPath(source: string, first: number): string {
    return path.join(this.sourceDir(source), `changelog-${first}.mfs`);
  }

  /** The mirror's own directories: created 0700 by us, and never a link someone planted. */
  async ensure(source: string): Promise<string> {
    for (const d of [this.dir, this.sourceDir(source)]) {
      await fs.mkdir(d, { mode: DIR_MODE }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      const st = await fs.lstat(d);
      if (!st.isDirectory() || st.uid !== process.getuid!())
        throw new UntrustedPathError(d, `mirror: ${d} is not a directory of ours: not using it`);
    }
    return this.sourceDir(source);
  }

  /**
   * Stage `file` of `source` at `tmp` from the mirror where it holds the same bytes; undefined when
   * it does not (the caller fetches the whole file as before).
   */
  async stage(
    file: {
      source: string;
      name: string;
      path: string;
      size: number;
      version?: number;
      metaid?: string;
      segments?: { first: number }[];
    },
    files: FileSource,
    tmp: string,
  ): Promise<MirrorUse | undefined> {
    if (file.version !== undefined && file.metaid !== undefined) {
      const mirrored = this.imagePath(file.source, file.version, file.metaid);
      const st = await fs.lstat(mirrored).catch(() => undefined);
      if (!st?.isFile() || st.size !== file.size || !stamped(st)) return undefined;
      await linkOrCopy(mirrored, tmp, STAGED);
      return { reused: st.size, fetched: 0 };
    }
    const first = file.segments?.[0]?.first;
    if (first === undefined) return undefined;
    const mirrored = this.changelogPath(file.source, first);
    return this.owner ? this.stageLinked(mirrored, file, files, tmp) : this.stageCopied(mirrored, file, files, tmp);
  }

  /** The owner's way: the mirrored changelog brought up to the source's end in place, then linked. */
  private async stageLinked(
    mirrored: string,
    file: { path: string; size: number },
    files: FileSource,
    tmp: string,
  ): Promise<MirrorUse | undefined> {
    const st = await fs.lstat(mirrored).catch(() => undefined);
    if (!st?.isFile() || st.size === 0 || !(await sameEdges(mirrored, st.size, files, file.path))) return undefined;
    const fetched = await this.extend(mirrored, files, file.path, file.size + CHANGELOG_GROWTH, true);
    await linkOrCopy(mirrored, tmp, STAGED);
    return { reused: st.size, fetched, scan: (await this.scanner(mirrored)).snapshot(tmp) };
  }

  private async stageCopied(
    mirrored: string,
    file: { path: string; size: number },
    files: FileSource,
    tmp: string,
  ): Promise<MirrorUse | undefined> {
    const out = await openExclusive(tmp);
    try {
      const reused = await copyVerifiedPrefix(mirrored, out, files, file.path);
      if (reused === undefined) {
        await out.close();
        await fs.rm(tmp, { force: true });
        return undefined;
      }
      const fetched = await appendFrom(files, file.path, reused, out, file.size + CHANGELOG_GROWTH, true);
      await out.sync();
      await out.close();
      return { reused, fetched };
    } catch (err) {
      await out.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  /** The scan of a mirrored changelog as it is now: kept, or made once by reading the file. */
  private async scanner(mirrored: string): Promise<ChangelogScanner> {
    const { size } = await fs.stat(mirrored);
    const kept = this.scans.get(mirrored);
    if (kept && kept.bytes === size) return kept;
    const scanner = new ChangelogScanner(mirrored);
    for await (const chunk of createReadStream(mirrored, { highWaterMark: 1 << 20, end: size - 1 }))
      scanner.push(chunk as Buffer);
    this.scans.set(mirrored, scanner);
    return scanner;
  }

  /**
   * Bring a mirrored changelog up to the source's `limit` (its listed size, or that plus a live file's
   * growth): only the new bytes, or all of them again if the old ones differ at the end. A file with
   * another link (placed into a DATA_PATH by a promotion) is never written into: it is copied first.
   */
  async extend(
    mirrored: string,
    files: FileSource,
    remote: string,
    limit: number,
    refuseBeyond: boolean,
  ): Promise<number> {
    let st = await fs.lstat(mirrored).catch(() => undefined);
    if (st && !st.isFile())
      throw new UntrustedPathError(mirrored, `mirror: ${mirrored} is not a plain file: not using it`);
    if (st && st.nlink > 1) {
      const tmp = tempNameFor(mirrored);
      await copyDurable(mirrored, tmp);
      await renameDurable(tmp, mirrored);
      st = await fs.lstat(mirrored);
    }
    let have = st?.size ?? 0;
    if (have > 0 && !(await sameTail(mirrored, have, files, remote, limit))) {
      await fs.rm(mirrored);
      this.scans.delete(mirrored);
      have = 0;
    }
    const h = await fs.open(mirrored, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, FILE_MODE);
    try {
      if (have >= limit) return 0;
      const scanner = have > 0 ? await this.scanner(mirrored) : new ChangelogScanner(mirrored);
      const fetched = await appendFrom(files, remote, have, h, limit, refuseBeyond, (b) => scanner.push(b));
      await h.sync();
      this.scans.set(mirrored, scanner);
      return fetched;
    } finally {
      await h.close();
    }
  }
}

/** The source still has the mirrored file's last bytes where the mirror has them (and is no shorter). */
async function sameTail(
  mirrored: string,
  have: number,
  files: FileSource,
  remote: string,
  limit: number,
): Promise<boolean> {
  if (have > limit) return false;
  const k = Math.min(OVERLAP, have);
  const local = Buffer.alloc(k);
  const h = await fs.open(mirrored, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await h.read(local, 0, k, have - k);
  } finally {
    await h.close();
  }
  return (await files.readRange(remote, have - k, k)).equals(local);
}

/** The source still has the mirrored file's first and last 4 KiB at the same offsets. */
async function sameEdges(mirrored: string, size: number, files: FileSource, remote: string): Promise<boolean> {
  const k = Math.min(OVERLAP, size);
  const h = await fs.open(mirrored, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  const head = Buffer.alloc(k);
  const tail = Buffer.alloc(k);
  try {
    await h.read(head, 0, k, 0);
    await h.read(tail, 0, k, size - k);
  } finally {
    await h.close();
  }
  const [rh, rt] = await Promise.all([files.readRange(remote, 0, k), files.readRange(remote, size - k, k)]);
  return rh.equals(head) && rt.equals(tail);
}

/**
 * Copy the mirrored changelog into `out` if the source still holds the same bytes at the same offsets
 * (its first and last 4 KiB compared): how many bytes, or undefined when it does not.
 */
async function copyVerifiedPrefix(
  mirrored: string,
  out: fs.FileHandle,
  files: FileSource,
  remote: string,
): Promise<number | undefined> {
  const h = await fs.open(mirrored, fsc.O_RDONLY | fsc.O_NOFOLLOW).catch(() => undefined);
  if (!h) return undefined;
  try {
    const { size } = await h.stat();
    if (size === 0) return undefined;
    // A short read means the daemon's pass rewrote the file under us: not the same bytes, no use.
    const read = async (start: number, length: number) => {
      const b = await readAt(h, start, length);
      if (b.length !== length) throw new TornCopy(mirrored, `${mirrored}: rewritten while it was read`);
      return b;
    };
    const k = Math.min(OVERLAP, size);
    const [localHead, localTail] = await Promise.all([read(0, k), read(size - k, k)]);
    const [remoteHead, remoteTail] = await Promise.all([
      files.readRange(remote, 0, k),
      files.readRange(remote, size - k, k),
    ]);
    if (!localHead.equals(remoteHead) || !localTail.equals(remoteTail)) return undefined;
    for (let at = 0; at < size; at += CHUNK) {
      const b = await read(at, Math.min(CHUNK, size - at));
      await out.write(b, 0, b.length, at);
    }
    return size;
  } catch (err) {
    if (err instanceof TornCopy) return undefined;
    throw err;
  } finally {
    await h.close();
  }
}

/**
 * Append the source's bytes from `from` to its end into `out`, at most up to `limit`: how many. With
 * `refuseBeyond`, a file longer than `limit` is an error (the same bound a download has).
 */
async function appendFrom(
  files: FileSource,
  remote: string,
  from: number,
  out: fs.FileHandle,
  limit: number,
  refuseBeyond: boolean,
  onBytes?: (b: Buffer) => void,
): Promise<number> {
  let at = from;
  while (at < limit) {
    const want = Math.min(CHUNK, limit - at);
    const b = await files.readRange(remote, at, want);
    await out.write(b, 0, b.length, at);
    onBytes?.(b);
    at += b.length;
    if (b.length < want) return at - from;
  }
  if (refuseBeyond && (await files.stat(remote)).size > limit)
    throw new ChainError(remote, `${remote}: longer than ${limit} bytes: refused`);
  return at - from;
}

export interface MirrorPass {
  source: string;
  /** Version of the mirrored image and the newest complete changelog line mirrored. */
  imageVersion?: number;
  newestVersion?: number;
  /** Bytes read from the source in this pass. */
  fetched: number;
  files: number;
}

/**
 * One pass over one source: its newest image and every changelog that reaches past it, brought up to
 * date in the mirror; what the mirror held that the source no longer needs is removed.
 */
export async function mirrorPass(
  store: MirrorStore,
  source: string,
  files: FileSource,
  dataPath: string,
): Promise<MirrorPass> {
  const dir = await store.ensure(source);
  const listing = await listDataPath(files, dataPath);
  const at = (name: string) => path.posix.join(dataPath, name);
  const keep = new Set<string>();
  const pass: MirrorPass = { source, fetched: 0, files: 0 };
  let image: { version: number; metaid: string; name: string; size: number } | undefined;
  for (const e of listing.images) {
    const h = await readSourceImageHeader(files, at(e.name), e.size).catch(() => undefined);
    if (!h || h.empty) continue;
    if (!image || h.version > image.version)
      image = { version: h.version, metaid: h.metaid, name: e.name, size: e.size };
  }
  if (image) {
    const target = store.imagePath(source, image.version, image.metaid);
    keep.add(path.basename(target));
    const st = await fs.lstat(target).catch(() => undefined);
    if (!st || st.size !== image.size || !stamped(st)) {
      await fetchImage(files, at(image.name), image, target);
      pass.fetched += image.size;
    }
    pass.imageVersion = image.version;
    pass.files++;
  }
  for (const e of listing.changelogs) {
    if (e.size === 0) continue;
    const { first, last } = await readChangelogEdges(files, at(e.name), e.size);
    if (!first || !last || (image && last.version <= image.version)) continue;
    const target = store.changelogPath(source, first.version);
    keep.add(path.basename(target));
    pass.fetched += await store.extend(target, files, at(e.name), e.size, false);
    pass.newestVersion = Math.max(pass.newestVersion ?? 0, last.version);
    pass.files++;
  }
  for (const name of await fs.readdir(dir)) {
    if (!keep.has(name)) await fs.rm(path.join(dir, name), { force: true });
  }
  return pass;
}

async function fetchImage(
  files: FileSource,
  remote: string,
  image: { version: number; metaid: string; size: number },
  target: string,
): Promise<void> {
  // An unpredictable name in our own 0700 directory: nobody else can have put anything there.
  const tmp = tempNameFor(target);
  try {
    await files.download(remote, tmp, { bound: { size: image.size, growth: 0 } });
    const h = await readImageHeader(tmp, { checkEnding: true });
    if (h.empty || h.version !== image.version || h.metaid !== image.metaid)
      throw new ChainError(remote, `${remote}: replaced while it was mirrored`);
    await sealFile(tmp);
    await fs.utimes(tmp, IMAGE_STAMP_S, IMAGE_STAMP_S);
    await renameDurable(tmp, target);
    await fsyncDir(path.dirname(target));
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** A mirror pass's one-line summary, for the daemon's log. */
export function describePass(p: MirrorPass): string {
  return `${p.source}: image ${p.imageVersion ?? '-'}, changelogs to ${p.newestVersion ?? '-'} (${p.files} files, ${p.fetched} bytes read)`;
}

export function describeMirrorError(source: string, err: unknown): string {
  return `mirror of ${source}: ${describeError(err)}`;
}

/**
 * Where a standby's mirror lives: `<stateDir>/mirror`, a directory only root (mfs-jobs) may write —
 * never inside DATA_PATH, which the MooseFS user owns and could swap a directory of ours in for a link
 * (and a pass deletes what the source no longer needs). On the same filesystem as DATA_PATH (the usual
 * /var) files are linked into place; elsewhere they are copied, still without a transfer.
 */
export function mirrorDirOf(config: Config): string {
  return path.join(config.stateDir, 'mirror');
}

export function mirrorOf(config: Config, owner = false): MirrorStore | undefined {
  return config.standby?.mirror ? new MirrorStore(mirrorDirOf(config), owner) : undefined;
}

/**
 * The daemon's side: a pass over every remote source each `standby.mirrorIntervalSeconds`, its SFTP
 * connection kept open between passes. No pass while a master runs in the standby's DATA_PATH (it is
 * no standby then) or while promote says `pause()`.
 */
export class StandbyMirror {
  private stopped = false;
  private paused = 0;
  private readonly stop = new AbortController();
  private readonly loop: Promise<void>;
  private readonly open = new Map<string, FileSource>();
  private readonly said = new Map<string, string>();
  /** The newest pass of each source. */
  readonly passes = new Map<string, MirrorPass>();

  constructor(
    private readonly config: Config,
    readonly store: MirrorStore,
    private readonly hosts: readonly DataPathHost[],
    private readonly o: { intervalMs: number; log: Logger },
  ) {
    this.loop = this.run();
  }

  /**
   * The mirror's open SFTP connection to `source`, lent to promote (its close() leaves it open), when
   * it still answers: a promotion then spares itself an SSH handshake per source.
   */
  async borrow(source: string, dir: string): Promise<FileSource | undefined> {
    const files = this.open.get(source);
    if (!files) return undefined;
    try {
      await files.stat(dir);
    } catch {
      return undefined;
    }
    return new Proxy(files, {
      get: (target, key, receiver) =>
        key === 'close' ? async () => undefined : (Reflect.get(target, key, receiver) as unknown),
    });
  }

  /** Promote stops passes while it reads the mirror; `resume` undoes one `pause`. */
  pause(): void {
    this.paused++;
  }

  resume(): void {
    this.paused = Math.max(0, this.paused - 1);
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.stop.abort();
    await this.loop;
    await Promise.all([...this.open.values()].map((f) => f.close().catch(() => undefined)));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const began = Date.now();
      if (this.paused === 0 && !(await standbyMasterPid(this.config.standby!))) {
        for (const host of this.hosts) {
          if (this.stopped || this.paused > 0) break;
          await this.passOver(host);
        }
      }
      await delay(Math.max(0, began + this.o.intervalMs - Date.now()), this.stop.signal);
    }
  }

  private async passOver(host: DataPathHost): Promise<void> {
    try {
      let files = this.open.get(host.name);
      if (!files) {
        files = await openSource(this.config, host, this.stop.signal, (m) => this.o.log.warn(m));
        this.open.set(host.name, files);
      }
      const pass = await mirrorPass(this.store, host.name, files, host.dataPath);
      const before = this.passes.get(host.name);
      this.passes.set(host.name, pass);
      if (before?.imageVersion !== pass.imageVersion || before?.newestVersion !== pass.newestVersion)
        await this.writeStatus();
      this.tell(
        host.name,
        'info',
        `mirror up to date: ${describePass(pass)}`,
        `${pass.imageVersion}/${pass.newestVersion}`,
        pass,
      );
    } catch (err) {
      await this.open
        .get(host.name)
        ?.close()
        .catch(() => undefined);
      this.open.delete(host.name);
      if (!this.stopped) this.tell(host.name, 'warn', describeMirrorError(host.name, err), describeError(err));
    }
  }

  /**
   * `<stateDir>/state/mirror.json`: where a promotion from this standby would start, before any failure —
   * per source, the mirrored image and the newest complete change, and when that was seen.
   */
  private async writeStatus(): Promise<void> {
    const sources = Object.fromEntries(
      [...this.passes].map(([name, p]) => [
        name,
        { imageVersion: p.imageVersion ?? null, newestVersion: p.newestVersion ?? null },
      ]),
    );
    await writeFileAtomic(
      path.join(this.config.stateDir, 'state', 'mirror.json'),
      JSON.stringify({ updatedAt: new Date().toISOString(), dir: this.store.dir, sources }, null, 2) + '\n',
    );
  }

  /** Log a source's state when it changes, not every pass. */
  private tell(source: string, level: 'info' | 'warn', message: string, key: string, pass?: MirrorPass): void {
    const k = `${level}:${key}`;
    if (this.said.get(source) === k) return;
    this.said.set(source, k);
    this.o.log[level](message, {
      source,
      ...(pass ? { imageVersion: pass.imageVersion, newestVersion: pass.newestVersion } : {}),
    });
  }
}

/** The sources a standby mirrors: every metalogger and chunkserver it reaches over SFTP (local ones need no copy). */
export function mirroredHosts(config: Config): DataPathHost[] {
  return [...config.metaloggers, ...config.chunkservers].filter((h) => !h.local);
}
