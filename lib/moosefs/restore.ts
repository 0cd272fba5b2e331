import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { FILE_MODE } from '../core/atomic.js';
import { execCapture } from '../core/exec.js';
import type { Binaries } from './generations/binaries.js';
import { oldestFirst, readImageHeader } from './metadata.js';
import { startMaster, type StartResult } from './mfsmaster.js';

/** A restore point placed in a DATA_PATH: the image and the changelogs that roll it forward. */
export interface PlacedFiles {
  dataPath: string;
  image: string;
  changelogs: readonly string[];
}

export interface RestoreResult extends StartResult {
  /** `mfsmaster -a` or `mfsmetarestore` (for messages). */
  command: string;
  /** What mfsmetarestore wrote (the header of the new metadata.mfs); undefined for mfsmaster -a. */
  restoredVersion?: number;
}

/**
 * Restore and start a master of `binaries.generation` on the files placed in `files.dataPath`:
 * - 1.7 and later: `mfsmaster -a` (the master reads the newest image and every changelog there);
 * - before 1.7: `mfsmetarestore -m IMAGE -o DATA_PATH/metadata.mfs CHANGELOG…` (oldest first; it stops
 *   at the first missing or damaged line), then a plain start from the metadata.mfs it wrote.
 * `ready` tells when a master that daemonises before initialising (1.5, 1.6.0–1.6.4) has started.
 */
export async function restoreAndStart(
  binaries: Binaries,
  configFile: string,
  files: PlacedFiles,
  o: { timeoutMs: number; signal?: AbortSignal; ready?: () => Promise<boolean>; method?: 'auto' | 'mfsmaster-a' | 'mfsmetarestore' },
): Promise<RestoreResult> {
  const { generation } = binaries;
  const start = { configFile, bin: binaries.mfsmaster, generation, ready: o.ready, timeoutMs: o.timeoutMs, signal: o.signal };
  const method = !o.method || o.method === 'auto' ? generation.restore : o.method;
  if (method === 'mfsmaster-a') return { ...(await startMaster({ ...start, autoRestore: true })), command: 'mfsmaster -a' };
  const started = Date.now();
  const metadata = path.join(files.dataPath, 'metadata.mfs');
  const image = path.join(files.dataPath, files.image);
  const { version: imageVersion } = await readImageHeader(image, { checkEnding: false });
  const changelogs: string[] = [];
  let res;
  try {
    for (const c of oldestFirst(files.changelogs)) changelogs.push(await metarestoreInput(path.join(files.dataPath, c), imageVersion));
    res = await execCapture(binaries.mfsmetarestore, ['-m', image, '-o', metadata, ...changelogs], { timeoutMs: o.timeoutMs, signal: o.signal });
  } finally {
    await removeTrimmed(changelogs);
  }
  const output = res.stdout + res.stderr;
  const command = 'mfsmetarestore';
  // 1.7+ keeps a stub that only says it is gone, and exits 0.
  if (/has been removed/.test(output)) {
    const fix = o.method === 'mfsmetarestore' ? 'standby.restoreMethod forces mfsmetarestore: set it to auto' : `${binaries.mfsmetarestore} is a 1.7+ stub: name a 1.x installation in moosefs.prefixes`;
    return { code: 1, output: `${output.trim()} (${fix})`, durationMs: Date.now() - started, command };
  }
  if (res.code !== 0) return { code: res.code ?? 1, output, durationMs: Date.now() - started, command };
  const restored = await readImageHeader(metadata).catch(() => undefined);
  const master = await startMaster({ ...start, autoRestore: false });
  return { ...master, output: `${output}${master.output}`, durationMs: Date.now() - started, command, restoredVersion: restored?.version };
}

const TRIMMED = '.mfs-jobs-metarestore';

/**
 * The changelog as mfsmetarestore must get it. 1.6.27's silently drops a whole file whose first line is
 * version 0 (its merger takes 0 for "no more lines") or whose last line is cut off, and restores less
 * with exit 0; 1.6.4's stops at a cut line ("':' expected"), which is how a chunkserver's
 * changelog_csback ends after a crash (written through a 4 KiB stdio buffer). So a file that starts
 * below the image's version or ends without a newline is handed over as a copy of its whole lines from
 * the image's version on; any other file as it is.
 */
async function metarestoreInput(file: string, fromVersion: number): Promise<string> {
  const handle = await fs.open(file, 'r');
  let needsCopy: boolean;
  try {
    const { size } = await handle.stat();
    if (size === 0) return file;
    const head = Buffer.alloc(Math.min(size, 32));
    await handle.read(head, 0, head.length, 0);
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    const first = /^(\d+):/.exec(head.toString('latin1'));
    needsCopy = last[0] !== 0x0a || (first !== null && Number(first[1]) < fromVersion);
  } finally {
    await handle.close();
  }
  if (!needsCopy) return file;
  const out = path.join(path.dirname(file), `${TRIMMED}.${path.basename(file)}`);
  // A run killed half-way may have left one: it is ours to replace (created exclusively again below).
  await fs.rm(out, { force: true });
  await writeWholeLinesFrom(file, out, fromVersion);
  return out;
}

async function writeWholeLinesFrom(file: string, out: string, fromVersion: number): Promise<void> {
  const writer = await fs.open(out, 'wx', FILE_MODE);
  try {
    let rest = '';
    const keep = (line: string) => {
      const m = /^(\d+):/.exec(line);
      return m !== null && Number(m[1]) >= fromVersion;
    };
    for await (const chunk of createReadStream(file, { encoding: 'latin1' })) {
      const lines = (rest + (chunk as string)).split('\n');
      rest = lines.pop()!;
      const kept = lines.filter(keep);
      if (kept.length) await writer.write(Buffer.from(`${kept.join('\n')}\n`, 'latin1'));
    }
    // `rest` is a last line without its newline: cut off when the writer died, never applied.
    await writer.sync();
  } finally {
    await writer.close();
  }
}

async function removeTrimmed(files: readonly string[]): Promise<void> {
  for (const f of files) if (path.basename(f).startsWith(TRIMMED)) await fs.rm(f, { force: true });
}
