import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { constants as fsc, createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openExclusive, readAt, writeNewFile, type Durability } from '../core/atomic.js';
import type { Compression, Config } from '../core/config.js';
import { ChainError, ProcessError, StoreError } from '../core/errors.js';
import { trustedProgram } from '../core/trusted-path.js';
import {
  checkImageEnding,
  endingBytes,
  HEADER_BYTES,
  parseImageHeader,
  type ImageHeader,
} from '../moosefs/metadata.js';
import { ChangelogScanner, type ChangelogScan } from '../moosefs/changelog.js';
import { contentDigest, TAIL_BYTES, type ManifestFile, type StoredForm } from './manifest.js';
import {
  CHUNK_BYTES,
  contentHmac,
  decryptStage,
  encryptStage,
  loadStoreKey,
  openTail,
  SealError,
  sealTail,
  type SealContext,
  type StoreKey,
  type StoreKeys,
} from './sealed.js';

export type { StoreKeys } from './sealed.js';

/**
 * How a snapshot's files lie on disk, and the one way to read them back. A manifest file without
 * `stored` is the MooseFS file itself (snapshots made before compression); with it, the file on disk
 * is `stored.name`: zstd-compressed (Debian's zstd through a pipe, BENCHMARKS.md 7), then optionally
 * sealed (sealed.ts). Everything that reads a snapshot's content goes through `openSnapshotFile`.
 */

type Stage = (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>;

/**
 * What new snapshots are written as (config `snapshotStore.compression` and `.encryption`), and the keys
 * their manifests are signed with (`.signingKeyFile`): a StoreKeys without problems.
 */
export interface StoreWriteSettings {
  compression: Compression;
  key?: StoreKey;
  signing?: StoreKey;
}

export function storedName(name: string, compression: StoredForm['compression'], encrypted: boolean): string {
  return `${name}${compression === 'zstd' ? '.zst' : ''}${encrypted ? '.enc' : ''}`;
}

/** The file on disk for a manifest entry. */
export function storedPathOf(snapshot: { dir: string }, f: ManifestFile): string {
  return path.join(snapshot.dir, f.stored?.name ?? f.name);
}

/** Bytes a manifest entry takes on disk. */
export function storedSizeOf(f: ManifestFile): number {
  return f.stored?.size ?? f.size;
}

function zstdMissing(): StoreError {
  return new StoreError('zstd', 'zstd is not installed (the snapshot store compresses with it): apt-get install zstd');
}

let zstdFound: Promise<string> | undefined;

/**
 * zstd's absolute path, found once per process: the first in PATH (or $MFS_JOBS_ZSTD), and only if no
 * user but root could have put it there or changed it (lib/core/trusted-path.ts). As root, under cron's
 * or systemd's PATH, a zstd planted in a directory another user writes (/usr/local/bin of group staff)
 * would otherwise run as root on every backup.
 */
function zstdBinary(): Promise<string> {
  zstdFound ??= trustedProgram('zstd', process.env.PATH, process.env.MFS_JOBS_ZSTD).then((t) => {
    if (t.trusted) return t.real;
    if (t.missing) throw zstdMissing();
    throw new StoreError('zstd', `zstd not run: ${t.why}, so another user could have put it there or changed it`);
  });
  // A refusal or a missing zstd is asked again next time (it may have been installed meanwhile).
  zstdFound.catch(() => (zstdFound = undefined));
  return zstdFound;
}

/**
 * Debian's zstd CLI as a pipeline stage: it runs on its own CPU, and our event loop stays free. `into`: a
 * descriptor of ours that zstd writes its output to itself (it yields nothing then): its output does not pass
 * through the Node thread in 64 KiB pipe reads (issue 28).
 */
function zstdStage(args: string[], into?: number): Stage {
  return async function* (source) {
    const child = spawn(await zstdBinary(), ['-q', '-c', ...args], { stdio: ['pipe', into ?? 'pipe', 'pipe'] });
    const stdin = child.stdin!;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('latin1')).slice(-2000)));
    // EPIPE when zstd stops reading (bad input): its exit status says why.
    stdin.on('error', () => undefined);
    const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? zstdMissing() : err));
      });
      let exited = false;
      void closed.then(() => (exited = true));
      // What comes from upstream (a stored checksum found wrong at its end) is the better message than
      // zstd's own complaint: once zstd has quit, the rest is still read (not written) so upstream can say it.
      const feed = (async () => {
        try {
          for await (const chunk of source) {
            if (exited) continue;
            if (!stdin.write(chunk)) await Promise.race([once(stdin, 'drain').catch(() => undefined), closed]);
          }
          stdin.end();
          return undefined;
        } catch (err) {
          stdin.destroy();
          return { err };
        }
      })();
      if (child.stdout) for await (const chunk of child.stdout) yield chunk as Buffer;
      const code = await closed;
      const upstream = await feed;
      if (upstream) throw upstream.err;
      if (code !== 0)
        throw new ZstdError(
          'zstd',
          stderr
            .trim()
            .split('\n')
            .pop()
            ?.replace(/^zstd: /, '') || `exit status ${code}`,
        );
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
}

/** zstd's own complaint (its last stderr line); `subject` is the zstd command. */
class ZstdError extends ProcessError {}

type Hasher = { update(data: Buffer): unknown; digest(encoding: 'hex'): string };

/**
 * Hash and count what passes; `limit`: fail as soon as more bytes than that come (a decompression bomb).
 * `hasher`: a keyed one for an encrypted file's content (its sha256 would confirm a guess).
 */
function measureStage(
  out: { size: number; sha256: string },
  limit?: { bytes: number; what: string },
  hasher?: Hasher,
  tail?: { bytes: Buffer },
): Stage {
  return async function* (source) {
    const hash: Hasher = hasher ?? createHash('sha256');
    for await (const chunk of source) {
      out.size += chunk.length;
      if (limit && out.size > limit.bytes)
        throw new ChainError(limit.what, `${limit.what}: more than the ${limit.bytes} bytes the manifest says`);
      hash.update(chunk);
      if (tail) tail.bytes = lastBytes(tail.bytes, chunk, TAIL_BYTES);
      yield chunk;
    }
    out.sha256 = hash.digest('hex');
  };
}

/**
 * Whose files these are: a snapshot (StoredSnapshot), or an archive segment (lib/store/segments.ts), whose
 * files are sealed for its id and the filesystem's metaid the same way.
 */
export interface FileHolder {
  id: string;
  dir: string;
  manifest: { id: string; image: { metaid: string } };
}

/** Where a snapshot's file belongs, as its sealed chunks and tail bind it. */
export function sealContext(manifest: { id: string; image: { metaid: string } }, f: { name: string }): SealContext {
  return { metaid: manifest.image.metaid, snapshot: manifest.id, file: f.name };
}

/**
 * Store a staged MooseFS file (`stage/<f.name>`, already checked) in the configured form, next to it,
 * fsynced; the original is removed (storeStream reading the staged copy). A given `f.sha256` (re-sealing)
 * must match, and the size must be `f.size`.
 */
export async function storeStagedFile(
  stage: string,
  f: ManifestFile,
  settings: StoreWriteSettings,
  snapshot: { id: string; image: { metaid: string } },
): Promise<ManifestFile> {
  const where = path.join(stage, f.name);
  const compression = settings.compression.type;
  const plain = compression === 'none' && !settings.key;
  const input = createReadStream(where, { highWaterMark: 1 << 20 });
  // Kept as it is: only hashed (the staged file is the stored form; it was made durable when fetched).
  const stored = await storeStream(stage, f, input, settings, snapshot, { hashOnly: plain });
  if (stored.size !== f.size) {
    if (!plain) await fs.rm(storedPathOf({ dir: stage }, stored), { force: true });
    throw new ChainError(f.name, `${where}: ${stored.size} bytes while storing, ${f.size} when checked`);
  }
  if (f.sha256 !== undefined && stored.sha256 !== undefined && f.sha256 !== stored.sha256) {
    if (!plain) await fs.rm(storedPathOf({ dir: stage }, stored), { force: true });
    throw new ChainError(f.name, `${where}: content changed while storing (sha256 differs)`);
  }
  if (!plain) await fs.rm(where);
  return stored;
}

/**
 * Store a MooseFS file's content as it arrives (`input`: its plain bytes, already bounded and checked by
 * the caller's stages) as `stage/<stored name>` in the configured form, fsynced once: the content's sha256
 * (or keyed hmac) and its last bytes are taken in the same pass as compression (zstd on its own CPU), so a
 * backup reads its source once and writes no plain copy (issue 28). On any failure — the input's own
 * (a check that refuses the file, a source that changed) or ours — nothing is left under the stored name.
 * Returns the manifest entry, `size` being the bytes that arrived: with `stored` (unless kept plain);
 * encrypted, with the keyed `hmac` and a sealed tail instead of the plaintext sha256 and tail.
 * `snapshot`: the id and metaid the file is sealed for. `hashOnly`: the file is already `stage/<f.name>`
 * (a staged plain copy kept as it is): only hash it. `sync: false`: a plain temp the caller rewrites (seals)
 * and syncs in that form.
 */
export async function storeStream(
  stage: string,
  f: Omit<ManifestFile, 'size'>,
  input: AsyncIterable<Buffer>,
  settings: StoreWriteSettings,
  snapshot: { id: string; image: { metaid: string } },
  o: { hashOnly?: boolean; sync?: boolean } = {},
): Promise<ManifestFile> {
  const compression = settings.compression.type;
  const name = f.name;
  const content = { size: 0, sha256: '' };
  const tail = { bytes: Buffer.alloc(0) };
  const hasher = settings.key ? contentHmac(settings.key) : undefined;
  const stages: Stage[] = [measureStage(content, undefined, hasher, tail)];
  if (o.hashOnly) {
    await pipeline(input, ...(stages as [Stage]), drain);
    const { sha256: _given, hmac: _keyed, ...rest } = f;
    return { ...rest, size: content.size, sha256: content.sha256 };
  }
  const plainForm = compression === 'none' && !settings.key;
  const target = storedName(name, compression, Boolean(settings.key));
  // Compressed, not sealed: zstd writes the stored file itself, measured once it has (read back from our handle).
  const direct = compression === 'zstd' && !settings.key;
  const file = path.join(stage, target);
  const out = await openExclusive(file, undefined, { readBack: direct });
  let measured = { size: 0, sha256: '' };
  const level = `-${settings.compression.level}`;
  if (compression === 'zstd') stages.push(zstdStage([level, '-T1'], direct ? out.fd : undefined));
  if (settings.key) stages.push(encryptStage(settings.key, sealContext(snapshot, f)));
  if (!direct) stages.push(measureStage(measured));
  try {
    try {
      await pipeline(input, ...(stages as [Stage]), direct ? drain : writeTo(out));
      if (direct) measured = await digestOf(out);
      if (o.sync ?? true) await out.sync();
    } finally {
      await out.close();
    }
  } catch (err) {
    await fs.rm(file, { force: true });
    throw err;
  }
  const { sha256: _given, hmac: _keyed, ...rest } = f;
  if (plainForm) return { ...rest, size: content.size, sha256: content.sha256 };
  const stored: StoredForm = { name: target, size: measured.size, sha256: measured.sha256, compression };
  if (!settings.key)
    return {
      ...rest,
      size: content.size,
      sha256: content.sha256,
      stored: { ...stored, tail: tail.bytes.toString('base64') },
    };
  return {
    ...rest,
    size: content.size,
    hmac: content.sha256,
    stored: {
      ...stored,
      encryption: { cipher: 'aes-256-gcm-chunked', keyId: settings.key.id, chunkBytes: CHUNK_BYTES },
      tailSealed: sealTail(settings.key, sealContext(snapshot, f), content.size, tail.bytes),
    },
  };
}

/** The end of a pipeline whose last stage writes elsewhere (or only hashes): it only pulls. */
async function drain(source: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of source);
}

/** Size and sha256 of what a handle's file holds, read by position into one reused buffer. */
async function digestOf(handle: fs.FileHandle): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buf, 0, buf.length, size);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Whether a local plain file has the content a manifest entry names (sha256, or the keyed hmac with `key`). */
export async function sameContent(file: string, f: ManifestFile, key: StoreKey | undefined): Promise<boolean> {
  const want = contentDigest(f);
  if (want.alg === 'hmac-sha256' && !key) return false;
  const hash: Hasher = want.alg === 'sha256' ? createHash('sha256') : contentHmac(key!);
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) hash.update(chunk);
  });
  return hash.digest('hex') === want.value;
}

/** The content's last bytes as the manifest keeps them (clear, or sealed: opened with the key), if it does. */
function manifestTail(snapshot: FileHolder, f: ManifestFile, keys: StoreKeys | undefined): Buffer | undefined {
  if (f.stored?.tail !== undefined) return Buffer.from(f.stored.tail, 'base64');
  if (f.stored?.tailSealed === undefined || keyProblem(f, keys)) return undefined;
  try {
    return openTail(keys!.key!, sealContext(snapshot.manifest, f), f.size, f.stored.tailSealed);
  } catch (err) {
    throw new ChainError(storedPathOf(snapshot, f), `snapshot ${snapshot.id}: ${f.name}: ${(err as Error).message}`);
  }
}

/** The last `n` bytes of `kept` followed by `chunk` (a copy: a stream's chunk may be reused). */
export function lastBytes(kept: Buffer, chunk: Buffer, n: number): Buffer {
  if (chunk.length >= n) return Buffer.from(chunk.subarray(chunk.length - n));
  return Buffer.concat([kept, chunk]).subarray(-n);
}

/** Writes a pipeline's end keeps in flight: the next chunks are pulled (zstd goes on) while these land. */
const WRITES_IN_FLIGHT = 16;

/**
 * A pipeline's end that writes through our own handle (a FileHandle's write stream would hold it: no fsync
 * after); `tap` sees each chunk as it is written. Up to WRITES_IN_FLIGHT writes at their own offsets are in
 * flight, so the source is read on while they land (a write awaited before the next read stalls zstd on its
 * full pipe); every write has settled before this returns or throws. (Gathering zstd's 64 KiB chunks into
 * 1 MiB writev calls was measured in session 12: no gain.)
 */
function writeTo(out: fs.FileHandle, tap?: (chunk: Buffer) => void): (source: AsyncIterable<Buffer>) => Promise<void> {
  return async (source) => {
    let at = 0;
    let failed: { err: unknown } | undefined;
    const inFlight: Promise<void>[] = [];
    try {
      for await (const chunk of source) {
        tap?.(chunk);
        inFlight.push(
          out.write(chunk, 0, chunk.length, at).then(
            () => undefined,
            (err: unknown) => void (failed ??= { err }),
          ),
        );
        at += chunk.length;
        if (inFlight.length >= WRITES_IN_FLIGHT) await inFlight.shift();
        if (failed) throw failed.err;
      }
    } finally {
      await Promise.all(inFlight);
    }
    if (failed) throw failed.err;
  };
}

/** Why an encrypted file cannot be read with these keys (without reading it), or undefined. */
export function keyProblem(f: ManifestFile, keys: StoreKeys | undefined): string | undefined {
  const enc = f.stored?.encryption;
  if (!enc) return undefined;
  if (keys?.problem) return `encrypted with key ${enc.keyId}; the configured key is unusable: ${keys.problem}`;
  if (!keys?.key)
    return `encrypted with key ${enc.keyId}, and no snapshotStore.encryption.keyFile is configured (key missing)`;
  if (keys.key.id !== enc.keyId)
    return `encrypted with key ${enc.keyId}, but ${keys.key.file} holds key ${keys.key.id} (wrong key)`;
  return undefined;
}

/** One line naming the snapshot and file, whatever went wrong underneath. */
function readError(snapshot: FileHolder, f: ManifestFile, err: unknown): Error {
  const where = `snapshot ${snapshot.id}: ${f.name}`;
  const file = storedPathOf(snapshot, f);
  if (err instanceof StoreError || (err instanceof ChainError && err.message.startsWith('snapshot '))) return err;
  if (err instanceof SealError)
    return new ChainError(file, `${where}: cannot decrypt ${f.stored!.name}: ${err.message}`);
  if (err instanceof ZstdError)
    return new ChainError(file, `${where}: ${f.stored!.name} is not valid zstd data (${err.message})`);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new ChainError(file, `${where}: missing${f.stored ? ` (${f.stored.name})` : ''}`);
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return err as Error;
  return new ChainError(file, `${where}: ${(err as Error).message}`);
}

export interface OpenOptions {
  keys?: StoreKeys;
  /** Facts about the bytes on disk, filled in when the stream has ended. */
  storedFacts?: { size: number; sha256: string };
}

/**
 * A snapshot file's content (the MooseFS file), streaming. Every byte is checked: the stored bytes
 * against the manifest's stored size and sha256, then the content against its size and sha256; a
 * mismatch, a wrong or missing key, or bad zstd data errors the stream with one line naming the
 * snapshot and the file. Never more bytes than the manifest says (a hostile archive's zstd bomb).
 */
export function openSnapshotFile(snapshot: FileHolder, f: ManifestFile, o: OpenOptions = {}): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const reader = contentReader(snapshot, f, o);
  if (reader instanceof Error) {
    process.nextTick(() => out.destroy(reader));
    return out;
  }
  // `out` stays outside the pipeline: the pipeline would destroy it with the raw error, not our one line.
  // A reader that stops early (a header read) destroys `out`: the pipeline is aborted, zstd killed.
  const stop = new AbortController();
  out.once('close', () => {
    if (!out.writableFinished) stop.abort();
  });
  const into = async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) if (!out.write(chunk)) await once(out, 'drain', { signal: stop.signal });
  };
  pipeline(reader.input, ...(reader.stages as [Stage]), into, {
    signal: stop.signal,
  }).then(
    () => out.end(),
    (err: unknown) => {
      if (!stop.signal.aborted) out.destroy(readError(snapshot, f, err));
    },
  );
  return out;
}

/**
 * A file's stored bytes and the stages that make them its content, every byte checked (openSnapshotFile's and
 * copySnapshotFile's one recipe): the stored bytes against the manifest's stored size and sha256, decrypted,
 * `zstd -d`, then the content against its size and sha256 (or keyed hmac). Or, when the keys cannot open the
 * file, the one-line error (nothing opened).
 */
function contentReader(
  snapshot: FileHolder,
  f: ManifestFile,
  o: OpenOptions,
): { input: Readable; stages: Stage[] } | ChainError {
  const refused = keyRefusal(snapshot, f, o.keys);
  if (refused) return refused;
  const where = `snapshot ${snapshot.id}: ${f.name}`;
  const content = { size: 0, sha256: '' };
  const digest = contentDigest(f);
  const stages: Stage[] = [];
  if (f.stored) {
    stages.push(...storedStages(snapshot, f, o.keys, o.storedFacts));
    if (f.stored.compression === 'zstd') stages.push(zstdStage(['-d']));
  }
  // A stored form's content is bounded by the manifest (a hostile archive's zstd bomb); a plain file is its size on disk.
  // keyRefusal above made sure an hmac's key is there.
  const hasher = digest.alg === 'hmac-sha256' ? contentHmac(o.keys!.key!) : undefined;
  stages.push(measureStage(content, f.stored ? { bytes: f.size, what: where } : undefined, hasher));
  stages.push(checkStage(() => mismatch(content, { size: f.size, sha256: digest.value }, `${where}:`, digest.alg)));
  return { input: readStored(snapshot, f), stages };
}

/** The one line for a file these keys cannot open (sealed without the key, or hmac'd without it); else none. */
function keyRefusal(holder: FileHolder, f: ManifestFile, keys: StoreKeys | undefined): ChainError | undefined {
  const problem = keyProblem(f, keys);
  if (!problem) return undefined;
  return new ChainError(
    storedPathOf(holder, f),
    `snapshot ${holder.id}: ${f.name}: cannot decrypt ${f.stored!.name}: ${problem}`,
  );
}

/**
 * A stored form's first stages (contentReader's and copySnapshotFiles' one recipe): the stored bytes against the
 * manifest's stored size (bounded) and sha256, then decrypted with the file's own seal context — still
 * compressed when stored so.
 */
function storedStages(
  holder: FileHolder,
  f: ManifestFile,
  keys: StoreKeys | undefined,
  stored = { size: 0, sha256: '' },
): Stage[] {
  const s = f.stored!;
  const where = `snapshot ${holder.id}: ${f.name}: stored file ${s.name}`;
  const stages = [
    measureStage(stored, { bytes: s.size, what: where }),
    checkStage(() => mismatch(stored, s, `${where}:`)),
  ];
  if (s.encryption) stages.push(decryptStage(keys?.key, s.encryption.keyId, sealContext(holder.manifest, f)));
  return stages;
}

/**
 * A file's stored bytes as they are on disk. O_NOFOLLOW: a link under a stored name is never read through (the
 * checks come only at the end). Node's open takes numeric flags; the stream's type says string.
 */
function readStored(holder: FileHolder, f: ManifestFile): Readable {
  const flags = (fsc.O_RDONLY | fsc.O_NOFOLLOW) as unknown as string;
  return createReadStream(storedPathOf(holder, f), { flags, highWaterMark: 1 << 20 });
}

/** What differs between what was read and what the manifest says (size first: it explains the checksum). */
function mismatch(
  got: { size: number; sha256: string },
  want: { size: number; sha256: string },
  what: string,
  alg = 'sha256',
): string | undefined {
  if (got.size !== want.size) return `${what} ${got.size} bytes, manifest says ${want.size}`;
  if (got.sha256 !== want.sha256)
    return `${what} ${alg} ${got.sha256.slice(0, 12)}… does not match the manifest (${want.sha256.slice(0, 12)}…)`;
  return undefined;
}

/** Pass everything through; at the end, throw what `problem()` says, if anything. */
function checkStage(problem: () => string | undefined): Stage {
  return async function* (source) {
    for await (const chunk of source) yield chunk;
    const p = problem();
    if (p) throw new ChainError('snapshot', p);
  };
}

/** Bytes [start, start+length) of a file's content; stops reading (and checking) once it has them. */
export async function readSnapshotRange(
  snapshot: FileHolder,
  f: ManifestFile,
  start: number,
  length: number,
  keys?: StoreKeys,
): Promise<Buffer> {
  if (!f.stored) {
    const h = await fs.open(storedPathOf(snapshot, f), fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      return await readAt(h, start, length);
    } finally {
      await h.close();
    }
  }
  // The end of the content (an image's marker, a changelog's last line) is in the manifest: no full pass.
  const tail = manifestTail(snapshot, f, keys);
  if (tail && start >= f.size - tail.length)
    return tail.subarray(start - (f.size - tail.length), start - (f.size - tail.length) + length);
  const stream = openSnapshotFile(snapshot, f, { keys });
  const parts: Buffer[] = [];
  let at = 0;
  let got = 0;
  try {
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      const from = Math.max(0, start - at);
      at += c.length;
      if (from >= c.length) continue;
      const piece = c.subarray(from, from + (length - got));
      parts.push(piece);
      got += piece.length;
      if (got >= length) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(parts);
}

/**
 * Write a file's content to `target` (created exclusively, 0600, fsynced unless `durable: false`); nothing is
 * left on failure. `tap` sees the content as it is written (a restore scans a changelog on the way, not after).
 */
export async function copySnapshotFile(
  snapshot: FileHolder,
  f: ManifestFile,
  target: string,
  o: { keys?: StoreKeys; signal?: AbortSignal; tap?: (chunk: Buffer) => void } & Durability = {},
): Promise<number> {
  // The checked content straight into the file, not through openSnapshotFile's PassThrough: reading that
  // stream joins its buffered chunks into one Buffer each time (measured: ≈ 1 s of the Node thread's 2 s to
  // place a 1M-file image and 48 MB of changelogs, issue 28). Read-side errors get the same one line.
  const write = async (out: fs.FileHandle) => {
    const reader = contentReader(snapshot, f, { keys: o.keys });
    if (reader instanceof Error) throw reader;
    let content: AsyncIterable<Buffer> = reader.input;
    for (const stage of reader.stages) content = stage(content);
    async function* checked(): AsyncGenerator<Buffer> {
      try {
        yield* content;
      } catch (err) {
        throw readError(snapshot, f, err);
      }
    }
    await pipeline(checked(), writeTo(out, o.tap), { signal: o.signal });
  };
  await writeNewFile(target, write, undefined, { durable: o.durable });
  return f.size;
}

/** One file of a batch (copySnapshotFiles): whose it is, its manifest entry, where its content goes. */
export interface BatchFile {
  holder: FileHolder;
  f: ManifestFile;
  target: string;
  /** Sees the file's content as it is written (a restore's scan of a segment). */
  tap?: (chunk: Buffer) => void;
}

/** Whether a file can go through a batch's one `zstd -d`: stored as zstd, readable with these keys. */
export function batchable(f: ManifestFile, keys: StoreKeys | undefined): boolean {
  return f.stored?.compression === 'zstd' && keyProblem(f, keys) === undefined;
}

/**
 * Several small zstd-stored files (archive segments) written to their targets through ONE `zstd -d`: a process
 * per file costs more than its content (≈ 36 ms a spawn from a large process; BENCHMARKS.md, issue 26/28). Each
 * file's stored bytes are read in order and checked against its own manifest (stored size and sha256, then
 * decrypted with its own seal context), their frames decompressed as one stream, and the output split back by
 * each file's content size from its manifest, each part checked against its own content size and sha256 (or
 * keyed hmac) — the same checks openSnapshotFile makes, so a damaged, swapped or reordered file fails, named.
 * Never more output than the manifests' sizes together (a zstd bomb). On any failure every target is removed;
 * a content mismatch names the file whose part mismatched, which, where one file's frame holds another's bytes,
 * may be its neighbour: a caller wanting the culprit named exactly places the files one by one again.
 */
export async function copySnapshotFiles(
  files: readonly BatchFile[],
  o: { keys?: StoreKeys; signal?: AbortSignal } & Durability = {},
): Promise<void> {
  for (const { holder, f } of files) {
    if (f.stored?.compression !== 'zstd')
      throw new ChainError(f.name, `snapshot ${holder.id}: ${f.name}: not stored as zstd: cannot join a batch`);
    const refused = keyRefusal(holder, f, o.keys);
    if (refused) throw refused;
  }
  async function* frames(): AsyncGenerator<Buffer> {
    for (const { holder, f } of files) {
      let chunks: AsyncIterable<Buffer> = readStored(holder, f);
      for (const stage of storedStages(holder, f, o.keys)) chunks = stage(chunks);
      try {
        yield* chunks;
      } catch (err) {
        throw readError(holder, f, err);
      }
    }
  }
  const handles: (fs.FileHandle | undefined)[] = [];
  const split = async (source: AsyncIterable<Buffer>) => {
    let i = -1;
    let left = 0;
    let content = { size: 0, sha256: '' };
    let hash: Hasher = createHash('sha256');
    // The part before `i + 1` is whole: check it against its manifest, then open the next file.
    const next = async () => {
      if (i >= 0) {
        const { holder, f } = files[i]!;
        const digest = contentDigest(f);
        content.sha256 = hash.digest('hex');
        const problem = mismatch(
          content,
          { size: f.size, sha256: digest.value },
          `snapshot ${holder.id}: ${f.name}:`,
          digest.alg,
        );
        if (problem) throw new ChainError(storedPathOf(holder, f), problem);
      }
      i++;
      if (i >= files.length) return;
      const { f, target } = files[i]!;
      handles[i] = await openExclusive(target);
      left = f.size;
      content = { size: 0, sha256: '' };
      hash = contentDigest(f).alg === 'hmac-sha256' ? contentHmac(o.keys!.key!) : createHash('sha256');
    };
    await next();
    while (i < files.length && left === 0) await next();
    for await (const chunk of source) {
      let at = 0;
      while (at < chunk.length) {
        if (i >= files.length) {
          const { holder, f } = files[files.length - 1]!;
          throw new ChainError(
            storedPathOf(holder, f),
            `snapshot ${holder.id}: ${f.name}: more than the ${f.size} bytes the manifest says (the batch's zstd output ` +
              `runs past the last file)`,
          );
        }
        const piece = chunk.subarray(at, at + left);
        at += piece.length;
        left -= piece.length;
        content.size += piece.length;
        hash.update(piece);
        files[i]!.tap?.(piece);
        await handles[i]!.write(piece);
        while (i < files.length && left === 0) await next();
      }
    }
    // The zstd output ended inside file i: it is short.
    if (i < files.length) {
      const { holder, f } = files[i]!;
      throw new ChainError(
        storedPathOf(holder, f),
        `snapshot ${holder.id}: ${f.name}: ${content.size} bytes, manifest says ${f.size}`,
      );
    }
  };
  try {
    try {
      await pipeline(frames(), zstdStage(['-d']), split, { signal: o.signal });
      if (o.durable !== false) for (const h of handles) await h!.sync();
    } finally {
      for (const h of handles) await h?.close().catch(() => undefined);
    }
  } catch (err) {
    for (const [k, h] of handles.entries()) if (h) await fs.rm(files[k]!.target, { force: true });
    if (err instanceof ZstdError) {
      const first = files[0]!;
      const last = files.at(-1)!;
      const span = `${first.holder.id}..${last.holder.id}`;
      throw new ChainError(storedPathOf(first.holder, first.f), `batch ${span}: not valid zstd data (${err.message})`);
    }
    throw err;
  }
}

export interface ContentFacts {
  /** Images: the header and end marker as read from the content (or why not). */
  header?: ImageHeader;
  headerError?: string;
  /** Changelogs: the scan of every line. */
  scan?: ChangelogScan;
}

/**
 * Read a file's content once, checked end to end (openSnapshotFile), and learn on the way what
 * verify and prune need: an image's header and ending, a changelog's scan. Rejects with the
 * one-line error when the file is damaged, missing or cannot be decrypted.
 */
export async function readSnapshotContent(
  snapshot: FileHolder,
  f: ManifestFile,
  o: { keys?: StoreKeys; signal?: AbortSignal } = {},
): Promise<ContentFacts> {
  const stream = openSnapshotFile(snapshot, f, { keys: o.keys });
  const scanner = f.role === 'changelog' ? new ChangelogScanner(f.name) : undefined;
  const headParts: Buffer[] = [];
  let headBytes = 0;
  let tail: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    if (o.signal?.aborted) {
      stream.destroy();
      throw o.signal.reason instanceof Error ? o.signal.reason : new Error('aborted');
    }
    const c = chunk as Buffer;
    scanner?.push(c);
    if (f.role === 'image' && headBytes < HEADER_BYTES) {
      headParts.push(c.subarray(0, HEADER_BYTES - headBytes));
      headBytes += Math.min(c.length, HEADER_BYTES - headBytes);
    }
    tail = lastBytes(tail, c, TAIL_BYTES);
  }
  // What promote reads instead of the file's end must be the file's end.
  const kept = manifestTail(snapshot, f, o.keys);
  if (kept && !kept.equals(tail)) {
    throw new ChainError(
      storedPathOf(snapshot, f),
      `snapshot ${snapshot.id}: ${f.name}: the manifest's ${f.stored?.tail !== undefined ? 'stored.tail' : 'stored.tailSealed'} does not match the content's last ${tail.length} bytes`,
    );
  }
  if (scanner) return { scan: scanner.finish() };
  if (f.role !== 'image') return {};
  const where = `snapshot ${snapshot.id}/${f.name}`;
  try {
    const head = Buffer.concat(headParts);
    if (f.size < 8) throw new ChainError(where, `${where}: metadata image truncated (${f.size} bytes)`);
    const header = parseImageHeader(head, where);
    if (!header.empty)
      checkImageEnding(header, tail.subarray(Math.max(0, tail.length - endingBytes(header))), f.size, where);
    return { header };
  } catch (err) {
    return { headerError: (err as Error).message.replace(`${where}: `, '') };
  }
}

export const SIGNING_KEY = 'snapshotStore.signingKeyFile';

/**
 * The keys new snapshots are sealed and signed with and readers open and check them with, from the
 * config. An unusable key file is kept as its problem: every manifest is then refused, naming it.
 */
export async function storeKeys(config: Config): Promise<StoreKeys> {
  const out: StoreKeys = {};
  const file = config.snapshotStore?.encryption?.keyFile;
  const signing = config.snapshotStore?.signingKeyFile;
  if (file)
    await loadStoreKey(file).then(
      (key) => (out.key = key),
      (err: Error) => (out.problem = err.message),
    );
  if (signing)
    await loadStoreKey(signing, SIGNING_KEY).then(
      (key) => (out.signing = key),
      (err: Error) => (out.signingProblem = err.message),
    );
  return out;
}

/** How backup writes new snapshots; an unusable key file fails the backup (ConfigError, one line). */
export async function storeWriteSettings(config: Config): Promise<StoreWriteSettings> {
  const s = config.snapshotStore!;
  const file = s.encryption?.keyFile;
  return {
    compression: s.compression,
    ...(file ? { key: await loadStoreKey(file) } : {}),
    ...(s.signingKeyFile ? { signing: await loadStoreKey(s.signingKeyFile, SIGNING_KEY) } : {}),
  };
}
