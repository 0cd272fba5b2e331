import { promises as fs } from 'node:fs';
import { ProcessError } from './errors.js';

/** Room for the copy plus the image mfsmaster dumps at its clean stop, and a margin for stats.mfs & co. */
export const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

/**
 * Refuse to start a copy that would fill the filesystem (a drill or restore must not hurt the machine it
 * runs on). `who` names the run in the message: "the drill", "the restore".
 */
export async function ensureFreeSpace(dir: string, bytes: number, who: string): Promise<void> {
  const st = await fs.statfs(dir);
  const free = st.bavail * st.bsize;
  const need = bytes + SPACE_MARGIN_BYTES;
  if (free < need) {
    const mib = `${Math.ceil(need / 2 ** 20)} MiB, ${Math.floor(free / 2 ** 20)} MiB are free`;
    throw new ProcessError(dir, `not enough free space in ${dir}: ${who} needs about ${mib}`);
  }
}
