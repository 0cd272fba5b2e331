import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { DirHandle } from '../core/dirhandle.js';
import { execCapture } from '../core/exec.js';
import { metarestoreArgs, restoreCommands, type Binaries } from './generations/binaries.js';
import type { Generation } from './generations/generation.js';
import { raiseNextChunkId as raiseInImage } from './generations/mfsm-1.5-chunks.js';
import { oldestFirst, readImageHeader } from './metadata.js';
import { LineSplitter, lineVersion } from './changelog.js';
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
  /** The whole command, as an operator would type it (restoreCommandLine). */
  commandLine: string;
  /** What mfsmetarestore wrote (the header of the new metadata.mfs); undefined for mfsmaster -a. */
  restoredVersion?: number;
  /** Where the restored image's next chunk id was raised (see raiseNextChunkId), or why it could not be. */
  chunkIds?: ChunkIdsRaised;
  /** Before 1.7: mfsmetarestore, the next chunk id raised and metadata.mfs placed, before the master's start. */
  metarestoreMs?: number;
}

/** How a restore is done: the generation's own way, unless standby.restoreMethod forces one. */
export type RestoreMethod = 'auto' | 'mfsmaster-a' | 'mfsmetarestore';

/**
 * What restoreAndStart runs on these files, as an operator would type it: restore prints it as the way
 * to start a restored master by hand, and runs it with --start, so the two never differ.
 */
export function restoreCommandLine(
  binaries: { generation: Binaries['generation']; mfsmaster?: string; mfsmetarestore?: string },
  configFile: string,
  files: PlacedFiles,
  method: RestoreMethod = 'auto',
): string {
  const ordered = { ...files, changelogs: oldestFirst(files.changelogs) };
  const way = method === 'auto' ? binaries.generation.restore : method;
  return restoreCommands(binaries.generation, binaries, configFile, ordered, way)
    .map((argv) => argv.join(' '))
    .join(' && ');
}

export type ChunkIdsRaised =
  { from: string; to: string; chunks: number; locked: number; lockedUntil: number } | { error: string };

/**
 * How far a restored image's next chunk id is raised where the master reuses lost chunk ids
 * (Generation.reusesLostChunkIds). Each changelog line allocates at most one chunk id, so the changes a
 * restore lost used fewer ids than they were lines: 2^32 is more than a 1.x master writes in weeks, and
 * 64-bit ids leave room for 2^32 such failovers. Ids are free; a reused one costs each write ~30 s of
 * retries and then EIO (the chunkserver refuses to create a chunk it holds; mfsmount retries 30 times).
 */
export const LOST_CHUNK_ID_MARGIN = 1n << 32n;

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
  o: { timeoutMs: number; signal?: AbortSignal; ready?: () => Promise<boolean>; method?: RestoreMethod },
): Promise<RestoreResult> {
  const { generation } = binaries;
  const start = {
    configFile,
    bin: binaries.mfsmaster,
    generation,
    ready: o.ready,
    timeoutMs: o.timeoutMs,
    signal: o.signal,
  };
  const method = !o.method || o.method === 'auto' ? generation.restore : o.method;
  const commandLine = restoreCommandLine(binaries, configFile, files, method);
  if (method === 'mfsmaster-a')
    return { ...(await startMaster({ ...start, autoRestore: true })), command: 'mfsmaster -a', commandLine };
  const started = Date.now();
  const { output, code, restoredVersion, chunkIds } = await metarestore(binaries, files, o);
  const command = 'mfsmetarestore';
  // 1.7+ keeps a stub that only says it is gone, and exits 0.
  if (/has been removed/.test(output)) {
    const fix =
      o.method === 'mfsmetarestore'
        ? 'standby.restoreMethod forces mfsmetarestore: set it to auto'
        : `${binaries.mfsmetarestore} is a 1.7+ stub: name a 1.x installation in moosefs.prefixes`;
    return { code: 1, output: `${output.trim()} (${fix})`, durationMs: Date.now() - started, command, commandLine };
  }
  if (code !== 0) return { code, output, durationMs: Date.now() - started, command, commandLine };
  const metarestoreMs = Date.now() - started;
  const master = await startMaster({ ...start, autoRestore: false });
  const durationMs = Date.now() - started;
  return {
    ...master,
    output: `${output}${master.output}`,
    durationMs,
    command,
    commandLine,
    restoredVersion,
    chunkIds,
    metarestoreMs,
  };
}

/**
 * `mfsmetarestore -m IMAGE -o metadata.mfs CHANGELOG…`, run as root on files in a DATA_PATH its owner can
 * change at any moment: a `metadata.mfs` planted there as a symlink once had root write the restored image
 * through it. So the program gets every input as a descriptor we opened O_NOFOLLOW and writes its output into
 * a root-only directory of ours (lib/core/dirhandle.ts), both reached as /proc/self/fd/N in the child; the
 * result is then placed into DATA_PATH like any staged file, owned like DATA_PATH.
 */
async function metarestore(
  binaries: Binaries,
  files: PlacedFiles,
  o: { timeoutMs: number; signal?: AbortSignal },
): Promise<{ code: number; output: string; restoredVersion?: number; chunkIds?: ChunkIdsRaised }> {
  const data = await DirHandle.open(files.dataPath, 'DATA_PATH');
  const inputs: { name: string; handle: fs.FileHandle }[] = [];
  let work: DirHandle | undefined;
  try {
    work = await data.makePrivateDir(`${TRIMMED}-${randomBytes(6).toString('hex')}`, 'mfsmetarestore directory');
    const image = await data.openFile(files.image);
    inputs.push({ name: files.image, handle: image });
    const { version: imageVersion } = await readImageHeader(`/proc/self/fd/${image.fd}`, { checkEnding: false });
    for (const c of oldestFirst(files.changelogs)) {
      inputs.push({ name: c, handle: await metarestoreInput(data, c, work, imageVersion) });
    }
    // The child sees `fds` as 3, 4, …: the output directory first, then the image, then the changelogs.
    const child = (i: number) => `/proc/self/fd/${3 + i}`;
    const args = metarestoreArgs(
      child(1),
      `${child(0)}/metadata.mfs`,
      inputs.slice(1).map((_, i) => child(i + 2)),
    );
    const fds = [work.fd, ...inputs.map((i) => i.handle.fd)];
    const res = await execCapture(binaries.mfsmetarestore, args, { timeoutMs: o.timeoutMs, signal: o.signal, fds });
    // Its messages name the files as the operator knows them, not by our descriptors.
    const shown = [files.dataPath, ...inputs.map((f) => path.join(files.dataPath, f.name))];
    const named = (m: string, n: string) => shown[Number(n) - 3] ?? m;
    const output = (res.stdout + res.stderr).replace(/\/proc\/self\/fd\/(\d+)/g, named);
    if (res.code !== 0 || /has been removed/.test(output)) return { code: res.code ?? 1, output };
    const restored = await readImageHeader(work.entry('metadata.mfs')).catch(() => undefined);
    const { generation } = binaries;
    const chunkIds = generation.reusesLostChunkIds ? await raiseNextChunkId(work, generation) : undefined;
    await data.place(work.entry('metadata.mfs'), 'metadata.mfs', { uid: data.uid, gid: data.gid });
    await data.sync();
    return { code: 0, output, restoredVersion: restored?.version, chunkIds };
  } finally {
    for (const i of inputs) await i.handle.close().catch(() => undefined);
    await work?.discard();
    await data.close();
  }
}

const TRIMMED = '.mfs-jobs-metarestore';

/**
 * A master that does not raise its next chunk id past the chunks its chunkservers report (1.5, 1.6.0–1.6.4)
 * hands the ids of the changes a restore lost out again; the lost files' chunks are still on the chunkservers,
 * which refuse to create them, and every write given such an id fails after ~30 s of retries. So the image
 * mfsmetarestore wrote (in `work`, root's own directory: never a file in DATA_PATH) gets its next chunk id
 * raised by LOST_CHUNK_ID_MARGIN before anything starts from it. A restore never fails for this: an image
 * this walk cannot read is left as it is, and the reason returned.
 */
async function raiseNextChunkId(work: DirHandle, generation: Generation): Promise<ChunkIdsRaised> {
  const file = work.entry('metadata.mfs');
  const lockedAt = Math.floor(Date.now() / 1000);
  try {
    const handle = await work.openFile('metadata.mfs', fsc.O_RDWR);
    try {
      const raised = await raiseInImage(handle, file, LOST_CHUNK_ID_MARGIN, lockedAt);
      const { chunks, locked, lockedUntil } = raised;
      const from = raised.nextChunkId - LOST_CHUNK_ID_MARGIN;
      return { from: from.toString(), to: raised.nextChunkId.toString(), chunks, locked, lockedUntil };
    } finally {
      await handle.close();
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { error: `${generation.label}: next chunk id left as restored: ${why}` };
  }
}

/**
 * The changelog as mfsmetarestore must get it, opened (never through a link). 1.6.27's silently drops a
 * whole file whose first line is version 0 (its merger takes 0 for "no more lines") or whose last line is cut
 * off, and restores less with exit 0; 1.6.4's stops at a cut line ("':' expected"), which is how a
 * chunkserver's changelog_csback ends after a crash (written through a 4 KiB stdio buffer). So a file that
 * starts below the image's version or ends without a newline is handed over as a copy of its whole lines from
 * the image's version on, made in `work`; any other file as it is.
 */
async function metarestoreInput(data: DirHandle, name: string, work: DirHandle, from: number): Promise<fs.FileHandle> {
  const handle = await data.openFile(name);
  let needsCopy = false;
  try {
    const { size } = await handle.stat();
    if (size > 0) {
      const head = Buffer.alloc(Math.min(size, 32));
      await handle.read(head, 0, head.length, 0);
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      const first = lineVersion(head);
      needsCopy = last[0] !== 0x0a || (first !== undefined && first < from);
    }
    if (!needsCopy) return handle;
    const out = await work.createFile(name);
    try {
      await writeWholeLinesFrom(handle, out, from);
    } finally {
      await out.close();
    }
  } finally {
    if (needsCopy) await handle.close();
  }
  return work.openFile(name);
}

const NEWLINE = Buffer.from('\n');

async function writeWholeLinesFrom(input: fs.FileHandle, writer: fs.FileHandle, fromVersion: number): Promise<void> {
  const kept: Buffer[] = [];
  const lines = new LineSplitter((buf, from, to) => {
    const version = lineVersion(buf, from);
    if (version !== undefined && version >= fromVersion) kept.push(buf.subarray(from, to), NEWLINE);
  });
  for await (const chunk of input.createReadStream({ start: 0, autoClose: false })) {
    lines.push(chunk as Buffer);
    if (kept.length) await writer.write(Buffer.concat(kept.splice(0)));
  }
  // What `end()` holds is a last line without its newline: cut off when the writer died, never applied.
  await writer.sync();
}
