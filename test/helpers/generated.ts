import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { execCapture } from '../../lib/core/exec.js';
import { LabMaster } from '../lab/moosefs.js';

/**
 * Metadata made quickly at scale (see moosefs-notes.md): a changelog of CREATE lines that a real
 * `mfsmaster` replays onto an empty filesystem, and real images at chosen versions made by
 * `mfsmaster restore` (restore the way `-a` does, store metadata.mfs, exit).
 */
export const GENERATED_METAID = '7712248374613481859';
const T0 = 1795600000;

/** Lines [from, to] of the generated history: line 1 sets the metaid, line v creates file f<v> as inode v. */
export function generatedLines(from: number, to: number): string {
  const out: string[] = [];
  for (let v = from; v <= to; v++)
    out.push(
      v === 1 ? `1: ${T0}|SETMETAID(${GENERATED_METAID})` : `${v}: ${T0 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v}`,
    );
  return out.length ? out.join('\n') + '\n' : '';
}

/** Write lines [from, to] to `file` in chunks (constant memory for big ranges). */
export async function writeGeneratedChangelog(file: string, from: number, to: number): Promise<void> {
  const out = createWriteStream(file);
  for (let v = from; v <= to; v += 20_000) {
    if (!out.write(generatedLines(v, Math.min(to, v + 19_999)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/**
 * Real images of the generated history at each of `versions` (ascending, ≥ 2): each one rolled
 * forward from the previous one by `mfsmaster restore`. Returns the image files, in `dir`.
 */
export async function generatedImages(dir: string, versions: readonly number[]): Promise<Map<number, string>> {
  const scratch = await LabMaster.create(path.join(dir, 'image-maker'));
  const data = scratch.dataPath;
  const out = new Map<number, string>();
  let from = 1;
  for (const v of [...versions].sort((a, b) => a - b)) {
    const log = path.join(data, 'changelog.1.mfs');
    await writeGeneratedChangelog(log, from, v - 1);
    const res = await execCapture('mfsmaster', ['-c', scratch.configFile, 'restore'], { timeoutMs: 120_000 });
    if (res.code !== 0) throw new Error(`mfsmaster restore to ${v} failed: ${res.stdout}${res.stderr}`);
    const image = path.join(dir, `image-v${v}.mfs`);
    await fs.copyFile(path.join(data, 'metadata.mfs'), image);
    await fs.rm(log);
    out.set(v, image);
    from = v;
  }
  await fs.rm(scratch.dir, { recursive: true, force: true });
  return out;
}

/**
 * A running master whose image holds `files` files (a few MB, so a throttled transfer of it takes
 * seconds): a changelog replayed by mfsmaster -a, then a clean restart.
 */
export async function bigMaster(dir: string, files: number): Promise<LabMaster> {
  const master = await LabMaster.create(dir);
  const t = Math.floor(Date.now() / 1000);
  const lines = Array.from({ length: files }, (_, i) => `${i + 1}: ${t}|CREATE(1,file${i},1,438,18,0,0,0):${i + 2}`);
  await fs.writeFile(path.join(master.dataPath, 'changelog.0.mfs'), lines.join('\n') + '\n');
  await master.start({ autoRestore: true });
  await master.restart();
  return master;
}
