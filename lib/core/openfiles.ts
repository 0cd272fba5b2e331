import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Files under `dir` that some process on this machine holds open, with the PIDs holding them, read
 * from /proc/<pid>/fd. mfsmaster's "data writer" child holds changelog.0.mfs and mfsmetalogger holds
 * changelog_ml.0.mfs this way. Processes we may not inspect are skipped (we run as root in practice).
 */
export async function openFilesUnder(dir: string): Promise<Map<string, number[]>> {
  const root = await fs.realpath(dir).catch(() => path.resolve(dir));
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const held = new Map<string, number[]>();
  const pids = (await fs.readdir('/proc').catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
  await Promise.all(
    pids.map(async (pid) => {
      const fdDir = `/proc/${pid}/fd`;
      const fds = await fs.readdir(fdDir).catch(() => [] as string[]);
      for (const fd of fds) {
        const target = await fs.readlink(path.join(fdDir, fd)).catch(() => '');
        if (!target.startsWith(prefix)) continue;
        const file = target.replace(/ \(deleted\)$/, '');
        held.set(file, [...(held.get(file) ?? []), Number(pid)]);
      }
    }),
  );
  return held;
}
