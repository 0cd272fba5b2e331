import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { DIR_MODE } from '../core/atomic.js';
import { ProcessError } from '../core/errors.js';

/**
 * A private directory inside a directory someone else owns — promote's staging directory lives in the
 * standby's DATA_PATH, which belongs to the MooseFS user, so that placing is a rename. That user can
 * rename or replace any entry of DATA_PATH at any moment, so the directory is made exclusively (mkdir,
 * never an existing one: a planted directory or symlink is refused), checked to be ours and 0700, held
 * open, and every path into it goes through the held descriptor (`/proc/self/fd/N/…`): swapping the
 * name for a symlink afterwards redirects nothing, and inside a root-owned 0700 directory nobody else
 * can plant a link. (Node has no openat; the descriptor's /proc path is how Linux offers the same.)
 */
export interface PrivateDir {
  /** Its name in the parent, for messages and for moveAside to leave it alone. */
  path: string;
  /** Where to read and write inside it: through the held descriptor. */
  at: string;
  /** Remove its contents (through the descriptor), then the directory if its name is still it; close. */
  remove(): Promise<void>;
}

function describe(st: { isSymbolicLink(): boolean; isDirectory(): boolean; uid: number; mode: number }): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (!st.isDirectory()) return 'not a directory';
  return `a directory owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}`;
}

export async function createPrivateDir(parent: string, name: string): Promise<PrivateDir> {
  const dir = path.join(parent, name);
  try {
    await fs.mkdir(dir, { mode: DIR_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = await fs.lstat(dir).catch(() => undefined);
    throw new ProcessError(dir, `${dir}: staging directory already exists (${st ? describe(st) : 'gone again'}): not made by this run, refusing to use it`);
  }
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    const st = await handle.stat();
    const euid = process.geteuid?.() ?? st.uid;
    if (!st.isDirectory() || st.uid !== euid || (st.mode & 0o077) !== 0) {
      throw new ProcessError(dir, `${dir}: staging directory was replaced right after it was made (now ${describe(st)}): refusing to use it`);
    }
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (err instanceof ProcessError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    // Between the attacker's rename and their symlink the name is briefly missing: that is a swap too.
    const now =
      code === 'ENOTDIR' || code === 'ELOOP' ? 'now a symbolic link or not a directory' : code === 'ENOENT' ? 'now missing: renamed or removed' : (code ?? String(err));
    throw new ProcessError(dir, `${dir}: staging directory was replaced right after it was made (${now}): refusing to use it`);
  }
  const held = handle;
  const ino = (await held.stat()).ino;
  const at = `/proc/self/fd/${held.fd}`;
  return {
    path: dir,
    at,
    async remove() {
      try {
        for (const n of await fs.readdir(at)) await fs.rm(path.join(at, n), { recursive: true, force: true });
        // The name may have been swapped meanwhile: remove it only while it is still our directory.
        const now = await fs.lstat(dir).catch(() => undefined);
        if (now?.isDirectory() && now.ino === ino) await fs.rmdir(dir).catch(() => undefined);
      } finally {
        await held.close().catch(() => undefined);
      }
    },
  };
}
