import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { DIR_MODE, FILE_MODE } from './atomic.js';
import { ProcessError } from './errors.js';
import { shownName } from './names.js';

/**
 * The one way mfs-jobs (root) works inside a directory another user owns — a DATA_PATH belongs to the
 * MooseFS user, who can rename, replace or symlink any entry of it at any moment. Every create, rename,
 * chown, chmod, unlink and mkdir there goes through a held directory descriptor, never a path that user
 * can change:
 * - the directory is opened O_DIRECTORY|O_NOFOLLOW once and checked (fstat); from then on every entry is
 *   `/proc/self/fd/N/<name>` with `name` one plain component. The kernel resolves the descriptor, not the
 *   directory's name, so swapping the name for a symlink redirects nothing (Node has no openat/renameat:
 *   the descriptor's /proc path is how Linux offers the same, for both sides of a rename too);
 * - the last component is never followed: files are opened O_NOFOLLOW, created O_CREAT|O_EXCL, and
 *   rename(2)/unlink(2)/mkdir(2) act on a link itself (a planted link is moved as a link — harmless);
 * - owner and mode are set on our own open descriptor (fchown/fchmod), never by name;
 * - a directory of our own inside it (staging, aside, mfsmetarestore's output) is made exclusively,
 *   opened O_NOFOLLOW, checked to be ours, 0700 and empty (a swapped-in one is refused), and used only
 *   through its own descriptor: inside a root-owned 0700 directory nobody else can plant anything.
 *
 * Why by descriptor rather than as the owner (a child that drops to WORKING_USER, as MooseFS does):
 * measured with bench/dirhandle-choice.mjs (1000 renames, 2 busy cores): by descriptor 72–129 µs a rename;
 * a worker child dropped to the owner, one pipe round a rename, 300–400 µs (its start included); a process
 * per operation (setpriv mv) 22–32 ms. Speed decides little at DATA_PATH sizes, the rest does: the owner
 * cannot do the work alone — the staged files lie in root's 0700 staging (the owner cannot read them) and
 * giving root's file to the owner is a chown only root may do — so a worker needs fd passing or a second
 * copy, and a protocol whose every message is another input to trust. The descriptor keeps one process,
 * one privilege, no IPC, and the whole guarantee in this file.
 */
export class DirHandle {
  private constructor(
    /** Its name when opened: for messages only, never to reach it again. */
    readonly path: string,
    private readonly handle: fs.FileHandle,
    readonly uid: number,
    readonly gid: number,
    readonly dev: number,
    readonly ino: number,
    /** For a directory this process made (makePrivateDir): its parent and its name there, to remove it. */
    private readonly madeIn?: { parent: fs.FileHandle; name: string },
  ) {}

  /**
   * Open a directory whose own path is root's to choose (a DATA_PATH from the config or the command
   * line): its parents are resolved once here, the last component must be a real directory.
   */
  static async open(dir: string, what = 'directory'): Promise<DirHandle> {
    const real = await fs.realpath(dir).catch((err: NodeJS.ErrnoException) => {
      throw new ProcessError(dir, `${dir}: ${what} cannot be opened (${err.code ?? err.message})`);
    });
    const flags = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
    const handle = await fs.open(real, flags).catch((err: NodeJS.ErrnoException) => {
      throw new ProcessError(dir, `${dir}: ${what} cannot be opened (${err.code ?? err.message})`);
    });
    const st = await handle.stat();
    return new DirHandle(dir, handle, st.uid, st.gid, st.dev, st.ino);
  }

  /** `/proc/self/fd/N`: the directory held, whatever its name points at now. */
  get at(): string {
    return `/proc/self/fd/${this.handle.fd}`;
  }

  /** The descriptor, for a child process that must reach the directory too (execCapture's `fds`). */
  get fd(): number {
    return this.handle.fd;
  }

  /** An entry of the directory through the descriptor; `name` must be one plain component. */
  entry(name: string): string {
    // Any name the directory can hold is fine (its owner chooses them); only one component, never a path.
    if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/')) {
      throw new ProcessError(this.path, `${this.path}: ${shownName(name)} is not one entry of it`);
    }
    return `${this.at}/${name}`;
  }

  list(): Promise<string[]> {
    return fs.readdir(this.at);
  }

  /** lstat of an entry (a link is described, not followed); undefined when it is not there. */
  async lstat(name: string): Promise<import('node:fs').Stats | undefined> {
    return fs.lstat(this.entry(name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  }

  /** Open an entry that must be a regular file, never through a link (O_NOFOLLOW). */
  async openFile(name: string, flags: number = fsc.O_RDONLY): Promise<fs.FileHandle> {
    const handle = await fs.open(this.entry(name), flags | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw new ProcessError(path.join(this.path, name), `${path.join(this.path, name)}: not a regular file`);
    }
    return handle;
  }

  /**
   * Let `use` read an entry by a path that reaches exactly the file opened here (`/proc/self/fd/K`), for
   * readers that take a path (image headers, a child process given the descriptor): never a planted link.
   */
  async withFile<T>(name: string, use: (file: string, handle: fs.FileHandle) => Promise<T>): Promise<T> {
    const handle = await this.openFile(name);
    try {
      return await use(`/proc/self/fd/${handle.fd}`, handle);
    } finally {
      await handle.close();
    }
  }

  /** Create a new file exclusively (O_CREAT|O_EXCL|O_NOFOLLOW): never an existing file or link. */
  async createFile(name: string, mode = FILE_MODE): Promise<fs.FileHandle> {
    const handle = await fs.open(this.entry(name), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
    await handle.chmod(mode);
    return handle;
  }

  /** Rename an entry into `to` (both sides by descriptor); a link is moved as the link it is. */
  async moveTo(name: string, to: DirHandle, newName = name): Promise<void> {
    await fs.rename(this.entry(name), to.entry(newName));
  }

  /** Remove an entry (unlink never follows a link; a directory of ours is emptied first). */
  async remove(name: string): Promise<void> {
    await fs.rm(this.entry(name), { recursive: true, force: true });
  }

  /**
   * Put a file of ours under `name` here, owned by `owner` with `mode`: owner and mode are set on the
   * opened file (O_NOFOLLOW), then it is renamed in, replacing whatever the directory's owner may have
   * planted under that name, never following it. `from` must lie where only this process can reach (a
   * staging directory of root's, or an entry of a private DirHandle). Across filesystems it is copied
   * into an exclusive temp file here and renamed the same way.
   */
  async place(from: string, name: string, o: { uid: number; gid: number; mode?: number }): Promise<void> {
    await this.placeNow(from, name, o).catch((err: unknown) => {
      throw this.failed(name, `placing ${path.basename(from)}`, err);
    });
  }

  /**
   * An error about an entry as the operator knows it (DATA_PATH/name, never /proc/self/fd/N/name), one line;
   * the errno stays in `cause`.
   */
  failed(name: string, doing: string, err: unknown): Error {
    if (err instanceof ProcessError) return err;
    const shown = path.join(this.path, name);
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return new ProcessError(shown, `${shown}: ${doing} failed (${why})`, { cause: err });
  }

  private async placeNow(from: string, name: string, o: { uid: number; gid: number; mode?: number }): Promise<void> {
    const mode = o.mode ?? FILE_MODE;
    const source = await fs.open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      if (!(await source.stat()).isFile()) throw new ProcessError(from, `${from}: not a regular file`);
      await source.sync();
      await source.chown(o.uid, o.gid);
      await source.chmod(mode);
      try {
        await fs.rename(from, this.entry(name));
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      }
      const tmp = `.${name}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
      const out = await this.createFile(tmp, mode);
      try {
        let pos = 0;
        const buf = Buffer.alloc(1 << 20);
        for (;;) {
          const { bytesRead } = await source.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          await out.write(buf, 0, bytesRead);
          pos += bytesRead;
        }
        await out.chown(o.uid, o.gid);
        await out.sync();
        await out.close();
        await fs.rename(this.entry(tmp), this.entry(name));
      } catch (err) {
        await out.close().catch(() => undefined);
        await this.remove(tmp).catch(() => undefined);
        throw err;
      }
    } finally {
      await source.close();
    }
  }

  /**
   * A new directory `name` of this process's own inside this one, 0700, held by its descriptor. Made
   * exclusively (an existing name, file or link is refused), then opened O_NOFOLLOW and checked to be a
   * directory, ours, 0700, empty and on the same filesystem: a swap between the mkdir and the open is
   * refused, never used. `what` names it in messages ("staging directory").
   */
  async makePrivateDir(name: string, what = 'directory'): Promise<DirHandle> {
    const shown = path.join(this.path, name);
    try {
      await fs.mkdir(this.entry(name), { mode: DIR_MODE });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw this.failed(name, `making the ${what}`, err);
      const st = await this.lstat(name).catch(() => undefined);
      const was = st ? describe(st) : 'gone again';
      throw new ProcessError(
        shown,
        `${shown}: ${what} already exists (${was}): not made by this run, refusing to use it`,
      );
    }
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(this.entry(name), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      const st = await handle.stat();
      const euid = process.geteuid?.() ?? st.uid;
      const empty = st.isDirectory() && (await fs.readdir(`/proc/self/fd/${handle.fd}`)).length === 0;
      if (!st.isDirectory() || st.uid !== euid || (st.mode & 0o077) !== 0 || st.dev !== this.dev || !empty) {
        const now = `now ${describe(st)}${empty ? '' : ', not empty'}`;
        throw new ProcessError(
          shown,
          `${shown}: ${what} was replaced right after it was made (${now}): refusing to use it`,
        );
      }
      const parent = await fs.open(this.at, fsc.O_RDONLY | fsc.O_DIRECTORY);
      return new DirHandle(shown, handle, st.uid, st.gid, st.dev, st.ino, { parent, name });
    } catch (err) {
      await handle?.close().catch(() => undefined);
      if (err instanceof ProcessError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      // Between the owner's rename and their symlink the name is briefly missing: that is a swap too.
      const now =
        code === 'ENOTDIR' || code === 'ELOOP'
          ? 'now a symbolic link or not a directory'
          : code === 'ENOENT'
            ? 'now missing: renamed or removed'
            : (code ?? String(err));
      throw new ProcessError(
        shown,
        `${shown}: ${what} was replaced right after it was made (${now}): refusing to use it`,
      );
    }
  }

  /** fsync the directory (a rename or unlink inside it survives a crash). */
  async sync(): Promise<void> {
    await this.handle.sync();
  }

  /**
   * A directory made by makePrivateDir: its contents removed through the descriptor, then its name in
   * the parent only while that name is still this directory (the owner may have renamed it); closed.
   */
  async discard(): Promise<void> {
    try {
      for (const n of await this.list()) await this.remove(n);
      if (this.madeIn) {
        const there = `/proc/self/fd/${this.madeIn.parent.fd}/${this.madeIn.name}`;
        const now = await fs.lstat(there).catch(() => undefined);
        // rmdir removes only an empty directory: at worst one the owner swapped in, theirs anyway.
        const still = now?.isDirectory() && now.ino === this.ino && now.dev === this.dev;
        if (still) await fs.rmdir(there).catch(() => undefined);
      }
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await this.madeIn?.parent.close().catch(() => undefined);
  }
}

function describe(st: { isSymbolicLink(): boolean; isDirectory(): boolean; uid: number; mode: number }): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (!st.isDirectory()) return 'not a directory';
  return `a directory owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}`;
}
