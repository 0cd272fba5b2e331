import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';

/** Files we create are private, like MooseFS's own DATA_PATH (0640/0600) and our state (0600). */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** fsync a directory so a rename or unlink inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A temp name beside the target: same filesystem (rename is atomic), recognisable for cleanup, and
 * unpredictable, so nobody can plant a symlink there in advance.
 */
export function tempNameFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(8).toString('hex')}`,
  );
}

/**
 * The one way mfs-jobs creates a file by path: O_CREAT|O_EXCL|O_NOFOLLOW with `mode`, so a file or symlink
 * already there is never written through. The caller fills it and makes it durable (fillAndSync).
 */
export function openExclusive(file: string, mode = FILE_MODE, o: { readBack?: boolean } = {}): Promise<fs.FileHandle> {
  // readBack: the caller reads what another writer (a child given the descriptor) put there.
  return fs.open(file, (o.readBack ? fsc.O_RDWR : fsc.O_WRONLY) | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
}

/**
 * The one way mfs-jobs creates a temp file: a fresh unpredictable name beside `target`, opened
 * O_CREAT|O_EXCL|O_NOFOLLOW with `mode`, so a file or symlink already there is never written through.
 */
export async function createTempExclusive(
  target: string,
  mode = FILE_MODE,
): Promise<{ tmp: string; handle: fs.FileHandle }> {
  const tmp = tempNameFor(target);
  const handle = await openExclusive(tmp, mode);
  // The umask may have taken bits away from `mode` (0644 Prometheus files); set exactly what was asked.
  await handle.chmod(mode);
  return { tmp, handle };
}

/** Up to `length` bytes of an open file from `start` (fewer at its end). */
export async function readAt(handle: fs.FileHandle, start: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buf, 0, length, start);
  return buf.subarray(0, bytesRead);
}

/**
 * Create `target` exclusively (O_EXCL|O_NOFOLLOW: never through a planted file or link), let `write` fill
 * it, fsync it; on any failure close and remove it, so nothing half-written is left under its name.
 */
export async function writeNewFile(
  target: string,
  write: (out: fs.FileHandle) => Promise<void>,
  mode = FILE_MODE,
  o: Durability = {},
): Promise<void> {
  await fillAndSync(await openExclusive(target, mode), target, write, o);
}

/**
 * Let `write` fill a file this process just created (`handle`, at `file`), fsync (unless `durable: false`) and
 * close it; on any failure close and remove it, so nothing half-written is left under its name.
 */
export async function fillAndSync(
  handle: fs.FileHandle,
  file: string,
  write: (out: fs.FileHandle) => Promise<unknown>,
  o: Durability = {},
): Promise<void> {
  try {
    await write(handle);
    if (o.durable !== false) await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(file, { force: true });
    throw err;
  }
  await handle.close();
}

/** A filled temp file into place durably (renameDurable); removed if that fails. */
export async function placeTemp(tmp: string, target: string): Promise<void> {
  try {
    await renameDurable(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * The one way mfs-jobs writes a file that must survive a crash: temp file, fsync, rename, fsync dir.
 * A reader sees either the old content or the new, never half of it.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = FILE_MODE): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true, mode: DIR_MODE });
  const { tmp, handle } = await createTempExclusive(target, mode);
  await fillAndSync(handle, tmp, (out) => out.writeFile(data));
  await placeTemp(tmp, target);
}

/**
 * Append one line durably (O_APPEND, fsync; the directory too when the file is new, created 0600).
 * For append-only files others also write, like known_hosts: a rewrite by rename could lose a line
 * another process appended meanwhile.
 */
export async function appendLineDurable(file: string, line: string, mode = FILE_MODE): Promise<void> {
  const existed = await pathExists(file);
  const handle = await fs.open(file, 'a+', mode);
  try {
    const { size } = await handle.stat();
    const last = Buffer.alloc(1);
    if (size > 0) await handle.read(last, 0, 1, size - 1);
    await handle.appendFile((size > 0 && last[0] !== 0x0a ? '\n' : '') + line.replace(/\n*$/, '\n'));
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (!existed) await fsyncDir(path.dirname(file));
}

/** fsync an already written file by path. */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Make an already written file durable and private. */
export async function sealFile(file: string): Promise<void> {
  await fs.chmod(file, FILE_MODE);
  await fsyncFile(file);
}

/** How durable a rename or copy must be. Durable unless the caller opts out, saying why at the call. */
export interface Durability {
  /**
   * false: no fsync (of the directories, of a copy). Only where a crash loses nothing: a staging directory
   * a crash discards (what is placed from it is synced then), a cache fetched again, a link on tmpfs.
   */
  durable?: boolean;
}

/**
 * The one way mfs-jobs renames by path: atomic, and durable (both directories fsynced) unless `durable:
 * false`. Not inside a directory another user owns: there, DirHandle.moveTo (dirhandle.ts).
 */
export async function renameDurable(from: string, to: string, o: Durability = {}): Promise<void> {
  await fs.rename(from, to);
  if (o.durable === false) return;
  await fsyncDir(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) await fsyncDir(path.dirname(from));
}

/**
 * Copy `from` to a new file `to` (exclusive: never over an existing file or link; a reflink clone where the
 * filesystem can) and fsync it unless `durable: false`; removed again if that fails.
 */
export async function copyDurable(from: string, to: string, o: Durability = {}): Promise<void> {
  await fs.copyFile(from, to, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
  if (o.durable === false) return;
  try {
    await fsyncFile(to);
  } catch (err) {
    await fs.rm(to, { force: true });
    throw err;
  }
}

/**
 * A hard link of `from` at `to`, or where `to` is on another filesystem (EXDEV) a copy (copyDurable): the
 * one place that falls back from a link to a copy.
 */
export async function linkOrCopy(from: string, to: string, o: Durability = {}): Promise<void> {
  try {
    await fs.link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyDurable(from, to, o);
  }
  if (o.durable !== false) await fsyncDir(path.dirname(to));
}

export async function ensureDir(dir: string, mode = DIR_MODE): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode });
}

export async function pathExists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
