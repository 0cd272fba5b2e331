import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ChainError } from '../core/errors.js';
import { describeBound, limitOf, ReadBoundError, type ReadBound } from '../transport/bounded.js';
import type { DownloadOptions, FileSource, RemoteEntry } from '../transport/remote.js';
import type { ManifestFile, StoredSnapshot } from './manifest.js';
import { copySnapshotFile, openSnapshotFile, readSnapshotRange, storedPathOf, type StoreKeys } from './stored-file.js';

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
    private readonly snapshot: StoredSnapshot,
    private readonly keys: StoreKeys | undefined,
  ) {
    this.label = `${hostName} (local)`;
  }

  private fileOf(file: string): ManifestFile {
    const f =
      path.dirname(file) === this.snapshot.dir
        ? this.snapshot.manifest.files.find((m) => m.name === path.basename(file))
        : undefined;
    if (!f)
      throw Object.assign(
        new ChainError(file, `${this.label}: ${file}: not in snapshot ${this.snapshot.id}'s manifest`),
        { code: 'ENOENT' },
      );
    return f;
  }

  private async entry(f: ManifestFile): Promise<RemoteEntry | undefined> {
    const st = await fs.lstat(storedPathOf(this.snapshot, f)).catch(() => undefined);
    return st ? { name: f.name, size: f.size, mtimeMs: st.mtimeMs, isFile: st.isFile() } : undefined;
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    if (dir !== this.snapshot.dir)
      throw new ChainError(dir, `${this.label}: ${dir} is not snapshot ${this.snapshot.id}`);
    const out: RemoteEntry[] = [];
    for (const f of this.snapshot.manifest.files) {
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
    const f = this.fileOf(remote);
    this.boundOf(remote, f, options.bound);
    await fs.rm(local, { force: true });
    await copySnapshotFile(this.snapshot, f, local, { keys: this.keys, signal: options.signal });
  }

  async readStream(file: string, bound: ReadBound): Promise<Readable> {
    const f = this.fileOf(file);
    this.boundOf(file, f, bound);
    return openSnapshotFile(this.snapshot, f, { keys: this.keys });
  }

  async readRange(file: string, start: number, length: number): Promise<Buffer> {
    return readSnapshotRange(this.snapshot, this.fileOf(file), start, length, this.keys);
  }

  async remove(file: string): Promise<void> {
    throw new ChainError(file, `${this.label}: ${file}: a snapshot is read-only here`);
  }

  async close(): Promise<void> {}
}

export function snapshotSource(name: string, snapshot: StoredSnapshot, keys?: StoreKeys): FileSource {
  return new SnapshotSource(name, snapshot, keys);
}
