import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ChainError } from '../core/errors.js';
import { describeBound, limitOf, ReadBoundError, type ReadBound } from '../transport/bounded.js';
import type { DownloadOptions, FileSource, RemoteEntry } from '../transport/remote.js';
import type { ManifestFile, StoredSnapshot } from './manifest.js';
import { segmentHolder, type StoredSegment } from './segments.js';
import {
  copySnapshotFile,
  openSnapshotFile,
  readSnapshotRange,
  storedPathOf,
  type FileHolder,
  type StoreKeys,
} from './stored-file.js';

/**
 * A stored snapshot seen as a DATA_PATH (promote's sources, lib/failover/collect.ts): its MooseFS
 * files by their own names and content sizes, read through openSnapshotFile — decompressed,
 * decrypted, and checked against the manifest on every read, so a snapshot damaged since verify saw
 * it fails its file (promote drops it and plans without it) instead of being restored.
 */
class SnapshotSource implements FileSource {
  readonly label: string;
  constructor(
    readonly hostName: string,
    /** The directory it stands for, what it is called in messages, and its files by MooseFS name. */
    private readonly dir: string,
    private readonly what: string,
    private readonly files: ReadonlyMap<string, { holder: FileHolder; file: ManifestFile }>,
    private readonly keys: StoreKeys | undefined,
  ) {
    this.label = `${hostName} (local)`;
  }

  private fileOf(file: string): { holder: FileHolder; file: ManifestFile } {
    const f = path.dirname(file) === this.dir ? this.files.get(path.basename(file)) : undefined;
    if (!f)
      throw Object.assign(new ChainError(file, `${this.label}: ${file}: not in ${this.what}'s manifest`), {
        code: 'ENOENT',
      });
    return f;
  }

  private async entry({
    holder,
    file: f,
  }: {
    holder: FileHolder;
    file: ManifestFile;
  }): Promise<RemoteEntry | undefined> {
    const st = await fs.lstat(storedPathOf(holder, f)).catch(() => undefined);
    return st ? { name: f.name, size: f.size, mtimeMs: st.mtimeMs, isFile: st.isFile() } : undefined;
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    if (dir !== this.dir) throw new ChainError(dir, `${this.label}: ${dir} is not ${this.what}`);
    const out: RemoteEntry[] = [];
    for (const f of this.files.values()) {
      const e = await this.entry(f);
      if (e) out.push(e);
    }
    return out;
  }

  async stat(file: string): Promise<RemoteEntry> {
    const e = await this.entry(this.fileOf(file));
    if (!e) throw Object.assign(new ChainError(file, `${this.label}: ${file}: missing`), { code: 'ENOENT' });
    return e;
  }

  /** The caller's bound holds here too (the manifest's size is the content's, checked on the way). */
  private boundOf(file: string, f: ManifestFile, bound: ReadBound): void {
    if (f.size > limitOf(bound))
      throw new ReadBoundError(
        this.hostName,
        `${this.label}: ${file}: the manifest says ${f.size} bytes, more than ${describeBound(bound)}: refused`,
      );
  }

  async download(remote: string, local: string, options: DownloadOptions): Promise<void> {
    const { holder, file } = this.fileOf(remote);
    this.boundOf(remote, file, options.bound);
    await fs.rm(local, { force: true });
    await copySnapshotFile(holder, file, local, { keys: this.keys, signal: options.signal });
  }

  async readStream(file: string, bound: ReadBound): Promise<Readable> {
    const f = this.fileOf(file);
    this.boundOf(file, f.file, bound);
    return openSnapshotFile(f.holder, f.file, { keys: this.keys });
  }

  async readRange(file: string, start: number, length: number): Promise<Buffer> {
    const f = this.fileOf(file);
    return readSnapshotRange(f.holder, f.file, start, length, this.keys);
  }

  async remove(file: string): Promise<void> {
    throw new ChainError(file, `${this.label}: ${file}: ${this.what} is read-only here`);
  }

  async close(): Promise<void> {}
}

export function snapshotSource(name: string, snapshot: StoredSnapshot, keys?: StoreKeys): FileSource {
  const files = new Map(snapshot.manifest.files.map((file) => [file.name, { holder: snapshot, file }]));
  return new SnapshotSource(name, snapshot.dir, `snapshot ${snapshot.id}`, files, keys);
}

/**
 * The store's changelog archive seen as a DATA_PATH of changelogs only (promote's `archive` source, like
 * a 1.x chunkserver's): each segment's changelog under its own name (`changelog.<first>.mfs`), read through
 * the same checked stream as a snapshot's files (segments listed by listSegments: signed manifests only).
 */
export function archiveSource(name: string, dir: string, segments: readonly StoredSegment[], keys?: StoreKeys) {
  const files = new Map<string, { holder: FileHolder; file: ManifestFile }>();
  for (const s of segments) {
    const file = s.manifest.files[0]!;
    if (!files.has(file.name)) files.set(file.name, { holder: segmentHolder(s), file });
  }
  return new SnapshotSource(name, dir, 'the changelog archive', files, keys) as FileSource;
}
