import { promises as fs } from 'node:fs';
import path from 'node:path';
import { terminalProgress } from '../core/progress.js';
import type { FileSource, RemoteEntry } from './remote.js';
import type { ReadBound } from './bounded.js';
import { FILE_MODE, sealFile } from '../core/atomic.js';

export interface FetchResult {
  /** Bytes that landed locally: what the server announced when the file was opened. */
  size: number;
  /** The remote file as it looks right after the copy (undefined: it is gone, e.g. rotated away). */
  after: RemoteEntry | undefined;
  seconds: number;
}

/**
 * Copy one remote file to a local path with SFTP parallel reads (fastGet: straight to disk, constant
 * memory), at most `bound` bytes, make it private and durable, and look at the remote file again so
 * the caller can tell whether it changed while it was being copied. `durable: false`: the copy is a temp that
 * the caller rewrites (compressed, sealed) and fsyncs in that form; syncing the temp too would write it twice.
 */
export async function fetchFile(
  source: FileSource,
  remotePath: string,
  localPath: string,
  bound: ReadBound,
  signal?: AbortSignal,
  durable = true,
): Promise<FetchResult> {
  const started = Date.now();
  const progress = terminalProgress(`${source.hostName}: ${path.posix.basename(remotePath)}`);
  try {
    await source.download(remotePath, localPath, { bound, signal, onProgress: progress?.update });
  } finally {
    progress?.end();
  }
  if (durable) await sealFile(localPath);
  else await fs.chmod(localPath, FILE_MODE);
  const { size } = await fs.stat(localPath);
  const after = await source.stat(remotePath).catch(() => undefined);
  return { size, after, seconds: (Date.now() - started) / 1000 };
}

/** Did a file that must not change (an image) change between the listing and the end of the copy? */
export function imageChange(before: RemoteEntry, fetched: FetchResult): string | undefined {
  if (!fetched.after) return 'it disappeared during the copy';
  if (fetched.size !== before.size) return `the server announced ${before.size} bytes, ${fetched.size} arrived`;
  if (fetched.after.size !== before.size || fetched.after.mtimeMs !== before.mtimeMs) {
    return `size/mtime changed during the copy (${before.size} B @ ${new Date(before.mtimeMs).toISOString()} → ${fetched.after.size} B @ ${new Date(fetched.after.mtimeMs).toISOString()})`;
  }
  return undefined;
}

/**
 * A changelog may only grow while it is copied (MooseFS appends to changelog.0.mfs; the copy is the
 * stable prefix the server announced at open). Shrinking or vanishing means it was rotated/replaced.
 */
export function changelogChange(before: RemoteEntry, fetched: FetchResult): string | undefined {
  if (!fetched.after) return 'it disappeared during the copy (rotated?)';
  if (fetched.size < before.size) return `it shrank from ${before.size} to ${fetched.size} bytes`;
  if (fetched.after.size < fetched.size)
    return `it shrank from ${fetched.size} to ${fetched.after.size} bytes during the copy`;
  return undefined;
}

/**
 * Cut a changelog copy after its last newline: the line MooseFS was writing when the copy started
 * is incomplete, and mfsmaster would read it as garbage. Returns the bytes removed.
 */
export async function trimCutLastLine(file: string, maxLine = 1 << 20): Promise<number> {
  const handle = await fs.open(file, 'r+');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxLine + 1);
    const tail = Buffer.alloc(length);
    await handle.read(tail, 0, length, size - length);
    const nl = tail.lastIndexOf(0x0a);
    const keep = nl === -1 ? (length === size ? 0 : size) : size - length + nl + 1;
    if (keep === size) return 0;
    await handle.truncate(keep);
    await handle.sync();
    return size - keep;
  } finally {
    await handle.close();
  }
}
