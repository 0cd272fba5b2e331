import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FileEntryWithStats, SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import { hostList, requireSsh, type Config, type DataPathHost } from '../core/config.js';
import { ConfigError, TransferError } from '../core/errors.js';
import { acceptNewHostKey, checkHostKey, loadKnownHosts, type HostKeyVerdict } from './knownhosts.js';
import { plainNameProblem, shownName } from '../core/names.js';
import { currentJobLogger } from '../core/logger.js';
import { FILE_MODE, readAt, writeNewFile, type Durability } from '../core/atomic.js';
import {
  boundedStream,
  describeBound,
  limitOf,
  READ_IDLE_SECONDS,
  ReadBoundError,
  ReadWatchdog,
  type BoundedReadOptions,
  type ReadBound,
} from './bounded.js';
import { ListingBudget, type Limit } from './listing-bounds.js';

export interface RemoteEntry {
  name: string;
  size: number;
  mtimeMs: number;
  isFile: boolean;
}

export interface DownloadOptions {
  /** What the listing said about the file: more than this (plus its growth) is refused. */
  bound: ReadBound;
  /** Called with bytes done and total while the transfer runs. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /**
   * false: the copy is not fsynced (a local source's; an SFTP download never is): `local` is in staging or a
   * drill's scratch, which a crash discards (lib/core/atomic.ts Durability).
   */
  durable?: boolean;
}

/**
 * A host's DATA_PATH, over SFTP or on this machine's disk: the one interface backup, verify, prune
 * and promote read MooseFS files through.
 */
export interface FileSource {
  /** For messages: `ml1 (127.0.0.1:22)` or `ml1 (local)`. */
  readonly label: string;
  readonly hostName: string;
  /**
   * Plain file names only: a name with '/', '..' or control characters is skipped with a warning.
   * Counted against `budget` as the entries arrive (default: one of the source's own, listing-bounds.ts).
   */
  list(dir: string, budget?: ListingBudget): Promise<RemoteEntry[]>;
  stat(file: string): Promise<RemoteEntry>;
  /**
   * Copy a remote file to a local path, at most `options.bound` bytes (the caller owns temp names,
   * fsync and rename). On failure nothing is left at `local`.
   */
  download(remote: string, local: string, options: DownloadOptions): Promise<void>;
  /** The file's bytes, at most `bound` of them, failing on more or on a stalled read. */
  readStream(file: string, bound: ReadBound): Promise<Readable>;
  /** Bytes [start, start+length) of a file (image headers, EOF markers). */
  readRange(file: string, start: number, length: number): Promise<Buffer>;
  /**
   * The whole file, as fast as this source reads a file to disk, to be stored as it arrives (backup's one
   * pass, issue 28): bounded and checked like `download` (what a file's opened handle shows; more than the
   * bound refused with a ReadBoundError; a stall or `signal` ends it). Local: readStream. SFTP: parallel
   * reads on the checked handle, emitted in order.
   */
  readWhole?(file: string, bound: ReadBound, signal?: AbortSignal): Promise<Readable>;
  /**
   * A source on this machine's disk only: the file opened as readStream opens it (never through a symlink, a
   * regular file), and the bounds readStream would apply, for a reader in a worker thread that reads by the
   * descriptor (lib/moosefs/changelog-pool.ts). The caller closes the handle.
   */
  openLocal?(file: string, bound: ReadBound): Promise<{ handle: fs.FileHandle; limits: BoundedReadOptions }>;
  remove(file: string): Promise<void>;
  close(): Promise<void>;
}

export type Warn = (message: string) => void;

/** To the running job's logger (JSON lines like every other log line); stderr outside a job. Never stdout. */
const warnOnStderr: Warn = (message) => {
  const log = currentJobLogger();
  if (log) log.warn(message);
  else process.stderr.write(`mfs-jobs: warning: ${message}\n`);
};

/** The listing's plain file names; the others are reported once each and left out. */
function plainEntries<T extends { name: string }>(entries: readonly T[], where: string, warn: Warn): T[] {
  return entries.filter((e) => {
    const why = plainNameProblem(e.name);
    if (why) warn(`${where}: skipped listed name ${shownName(e.name)}: ${why}`);
    return !why;
  });
}

/**
 * Open a file of a local source to read: never through a symlink (O_NOFOLLOW: a DATA_PATH belongs to
 * the MooseFS user, who could point a changelog's name at /etc/shadow), never a FIFO or device
 * (O_NONBLOCK: opening a planted FIFO would block for ever), only a regular file.
 */
async function openRegular(
  host: string,
  label: string,
  file: string,
): Promise<{ handle: fs.FileHandle; size: number }> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      throw new TransferError(
        host,
        `${label}: ${file}: is a symbolic link: refused (links in a source directory are never followed)`,
      );
    throw err;
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new TransferError(host, `${label}: ${file}: not a regular file: refused`);
  }
  return { handle, size: st.size };
}

/**
 * Copy a local source's file to `dst` (created exclusively, 0600), at most `bound`'s limit: a clone
 * (reflink) of the file as fstat saw it where the filesystem can, else a copy through the bounded
 * reader, so a file that grows without end while it is copied cannot fill the disk. Fsynced unless `o.durable`
 * is false.
 */
export async function copyLocalFile(
  host: string,
  src: string,
  dst: string,
  bound: ReadBound,
  label = `${host} (local)`,
  o: Durability = {},
): Promise<void> {
  const { handle, size } = await openRegular(host, label, src);
  const limit = limitOf(bound);
  const overflow = (got: number) =>
    new ReadBoundError(
      host,
      `${label}: ${src}: ${got} bytes, more than ${describeBound(bound)}: refused, nothing kept`,
    );
  try {
    if (size > limit) throw overflow(size);
    try {
      await fs.copyFile(`/proc/self/fd/${handle.fd}`, dst, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE_FORCE);
      const cloned = (await fs.stat(dst)).size;
      if (cloned > limit) throw overflow(cloned);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw err;
      await fs.rm(dst, { force: true });
      if (err instanceof ReadBoundError) throw err;
    }
    await writeNewFile(
      dst,
      async (out) => {
        const input = handle.createReadStream({ start: 0, end: limit, autoClose: false, highWaterMark: 1 << 20 });
        for await (const chunk of boundedStream(input, {
          host,
          what: `${label}: ${src}`,
          bound,
          idleSeconds: READ_IDLE_SECONDS,
        }))
          await out.write(chunk as Buffer);
      },
      FILE_MODE,
      o,
    );
  } finally {
    await handle.close().catch(() => undefined);
  }
}

class LocalSource implements FileSource {
  readonly label: string;
  constructor(
    readonly hostName: string,
    private readonly warn: Warn = warnOnStderr,
  ) {
    this.label = `${hostName} (local)`;
  }
  private bounded(file: string, bound: ReadBound): BoundedReadOptions {
    return { host: this.hostName, what: `${this.label}: ${file}`, bound, idleSeconds: READ_IDLE_SECONDS };
  }
  private listingBudget(): ListingBudget {
    // One entry is one "answer" here: the answer limit is no limit for a local directory.
    return new ListingBudget({
      subject: this.hostName,
      what: this.label,
      window: { seconds: READ_IDLE_SECONDS, setting: 'the local read idle limit' },
      limits: { pages: Infinity },
    });
  }
  /** Counted as it reads (a DATA_PATH is the MooseFS user's: it may hold millions of names). */
  async list(dir: string, budget = this.listingBudget()): Promise<RemoteEntry[]> {
    const read: { name: string }[] = [];
    try {
      for await (const e of await fs.opendir(dir, { bufferSize: 256 })) {
        budget.page(dir, [e.name]);
        read.push({ name: e.name });
      }
    } finally {
      budget.end();
    }
    const names = plainEntries(read, `${this.label}: ${dir}`, this.warn).map((e) => e.name);
    const out: RemoteEntry[] = [];
    for (const name of names) {
      // lstat: a symlink is listed as what it is (not a file), never as the file it points to.
      const st = await fs.lstat(path.join(dir, name)).catch(() => undefined);
      if (st) out.push({ name, size: st.size, mtimeMs: st.mtimeMs, isFile: st.isFile() });
    }
    return out;
  }
  async stat(file: string): Promise<RemoteEntry> {
    const st = await fs.lstat(file);
    return { name: path.basename(file), size: st.size, mtimeMs: st.mtimeMs, isFile: st.isFile() };
  }
  /** Bounded while it copies, like an SFTP download (copyLocalFile); nothing is left at `local` on failure. */
  async download(remote: string, local: string, options: DownloadOptions): Promise<void> {
    if (options.signal?.aborted) throw new TransferError(this.hostName, `${this.label}: transfer of ${remote} aborted`);
    await fs.rm(local, { force: true });
    await copyLocalFile(this.hostName, remote, local, options.bound, this.label, { durable: options.durable });
  }
  async readStream(file: string, bound: ReadBound): Promise<Readable> {
    const { handle } = await openRegular(this.hostName, this.label, file);
    return boundedStream(
      handle.createReadStream({ highWaterMark: 1 << 20, end: limitOf(bound) }),
      this.bounded(file, bound),
    );
  }
  async readWhole(file: string, bound: ReadBound, signal?: AbortSignal): Promise<Readable> {
    if (signal?.aborted) throw new TransferError(this.hostName, `${this.label}: transfer of ${file} aborted`);
    return this.readStream(file, bound);
  }
  async openLocal(file: string, bound: ReadBound) {
    const { handle } = await openRegular(this.hostName, this.label, file);
    return { handle, limits: this.bounded(file, bound) };
  }
  async readRange(file: string, start: number, length: number): Promise<Buffer> {
    const { handle: h } = await openRegular(this.hostName, this.label, file);
    try {
      return await readAt(h, start, length);
    } finally {
      await h.close();
    }
  }
  async remove(file: string): Promise<void> {
    await fs.unlink(file);
  }
  async close(): Promise<void> {}
}

/**
 * ssh2 closes a read stream's remote handle after 'end'; if the connection goes away before that
 * close is answered, the stream emits 'error' when nobody listens any more, and Node dies of an
 * unhandled 'error' event. A reader that got 'end' has all its bytes: later errors are noise.
 */
function quietAfterEnd(stream: Readable): Readable {
  stream.once('end', () => stream.on('error', () => undefined));
  return stream;
}

/**
 * Settle `work` as soon as `signal` aborts. Ending an ssh2 connection under a pending call leaves
 * that call's promise pending for good (ssh2-sftp-client ignores an end it was asked for), and
 * with nothing else pending Node would exit 0 in the middle of a job.
 */
async function unlessAborted<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
  abortError: () => Error,
): Promise<T> {
  work.catch(() => undefined);
  if (!signal) return work;
  let listener = () => undefined as void;
  const aborted = new Promise<never>((_, reject) => {
    listener = () => {
      reject(abortError());
      onAbort();
    };
    if (signal.aborted) listener();
    else signal.addEventListener('abort', listener, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', listener);
  }
}

/** A directory on this machine's disk read through the FileSource interface (snapshot store, local hosts). */
export function localSource(name: string, warn?: Warn): FileSource {
  return new LocalSource(name, warn);
}

/** SSH keepalive: a link silent for KEEPALIVE_MS × KEEPALIVE_COUNT ends the connection (and the pending call). */
const KEEPALIVE_MS = 5000;
const KEEPALIVE_COUNT = 3;

/** ssh2's words for a connection that died under a call, in an operator's words (undefined: something else). */
function brokenConnection(msg: string): string | undefined {
  if (/Keepalive timeout/i.test(msg))
    return `no answer for ${(KEEPALIVE_MS * KEEPALIVE_COUNT) / 1000} s (SSH keepalive): the link went silent`;
  if (/Unexpected (end|close) event|ECONNRESET|No SFTP connection|Not connected/i.test(msg))
    return `connection lost (sshd stopped or the network dropped): ${msg}`;
  return undefined;
}

/** Transfer tuning measured on loopback sshd (see docs): big chunks, moderate concurrency, AES-GCM. */
const FAST_GET = { concurrency: 16, chunkSize: 261120 };
const CIPHERS = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'chacha20-poly1305@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
];

/**
 * ssh2's fastGet reading from `handle`, a file openChecked has opened and checked, instead of opening
 * `remote` again by name (a second open would follow whatever link was swapped in since). fastGet
 * opens its source synchronously when called, so the connection's open answers with the handle for
 * that one call; fastGet closes it when done. Through ssh2-sftp-client's `_fastGet`, which keeps its
 * connection-loss listeners.
 */
function fastGetFromHandle(
  client: SftpClient,
  sftp: SFTPWrapper,
  handle: Buffer,
  local: string,
  options: object,
): Promise<unknown> {
  const inner = (client as unknown as { _fastGet?: (r: string, l: string, o: object) => Promise<unknown> })._fastGet;
  if (typeof inner !== 'function')
    throw new TransferError('ssh2-sftp-client', 'ssh2-sftp-client has no _fastGet: cannot read a checked handle');
  const own = sftp as unknown as { open?: unknown };
  own.open = (_path: string, _flags: string, cb: (err: undefined, h: Buffer) => void) => cb(undefined, handle);
  try {
    return inner.call(client, '(checked handle)', local, options);
  } finally {
    delete own.open;
  }
}

/** SSH_FX_EOF: a READDIR's "no more entries" (the SFTP protocol's number, as ssh2 reports it in `code`). */
const SFTP_EOF = 1;

/** One ssh2 call as a promise (`undefined` for the end of a directory). */
function sftpCall<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) =>
    fn((err, value) => {
      if (err && (err as { code?: unknown }).code === SFTP_EOF) resolve(undefined);
      else if (err) reject(err);
      else resolve(value);
    }),
  );
}

type Entry = FileEntryWithStats;

/**
 * A directory read one READDIR answer at a time, each counted against `budget` as it arrives:
 * ssh2-sftp-client's list() keeps every answer until the server says EOF, which a hostile one never
 * does. `abandon` ends the connection when an answer does not come (nothing else settles an ssh2 call).
 */
async function readDirBounded(sftp: SFTPWrapper, dir: string, budget: ListingBudget, abandon: () => void) {
  const handle = await budget.answer(dir, () => sftpCall<Buffer>((cb) => sftp.opendir(dir, cb)), abandon);
  // Wrapped by list()'s catch into a TransferError naming the host.
  if (!handle) throw new Error(`no handle for ${dir}`);
  const out: Entry[] = [];
  try {
    for (;;) {
      const answer = await budget.answer(dir, () => sftpCall<Entry[]>((cb) => sftp.readdir(handle, cb)), abandon);
      if (!answer) return out;
      budget.page(
        dir,
        answer.map((e) => e.filename),
      );
      for (const e of answer) if (e.filename !== '.' && e.filename !== '..') out.push(e);
    }
  } finally {
    // Not awaited: a server that never answers CLOSE must not hold the listing (nor a refused one fail it).
    try {
      sftp.close(handle, () => undefined);
    } catch {
      // The connection is gone (abandoned): the handle went with it.
    }
  }
}

/** A regular file by its mode (ssh2-sftp-client went by the first letter of `ls -l`'s line). */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

interface SftpAttrs {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
}

/**
 * The handle's fstat shows the file the name's lstat showed, as far as SFTP can tell (it gives no
 * inode number): the same owner, group and mode, no smaller and no older (a live changelog grows in
 * between). The DATA_PATH's owner can swap a link in between, but cannot make its target theirs.
 */
const sameFile = (named: SftpAttrs, opened: SftpAttrs) =>
  opened.uid === named.uid &&
  opened.gid === named.gid &&
  opened.mode === named.mode &&
  opened.size >= named.size &&
  opened.mtime >= named.mtime;
const isRegular = (e: Entry) =>
  e.attrs.mode !== undefined ? (e.attrs.mode & S_IFMT) === S_IFREG : e.longname.startsWith('-');

/**
 * Reads in flight and their size for readWhole: 255 KiB (one OpenSSH packet each, as fastGet), 8 at a time
 * (2 MiB in flight: 200 MB/s at a 10 ms round trip). Measured on loopback under load (BENCHMARKS.md, issue 28
 * one-pass): 16 in flight cost more CPU and memory for no speed (answers wait in order for the slowest).
 */
const IN_ORDER = { requests: 8, bytes: FAST_GET.chunkSize };

/**
 * Bytes [0, size) of an open SFTP handle as a stream: up to IN_ORDER.requests reads in flight, each answer
 * kept until the ones before it have been emitted. A short answer asks again for the rest; an empty one
 * (EOF: the file shrank) ends the stream early, which the caller sees as fewer bytes than announced. The
 * handle is closed (not awaited) when the stream closes. Memory: requests × bytes, whatever the file's size.
 */
function inOrderReads(
  sftp: SFTPWrapper,
  handle: Buffer,
  size: number,
  wrap: (err: unknown) => Error,
  progress: (done: number) => void,
): Readable {
  let next = 0; // the next offset to ask for
  let emitted = 0; // the next offset to emit
  let inFlight = 0;
  let ended = false;
  let wanting = false;
  const answers = new Map<number, { data: Buffer; asked: number }>();
  const out = new Readable({
    highWaterMark: IN_ORDER.requests * IN_ORDER.bytes,
    read() {
      wanting = true;
      pump();
    },
    destroy(err, cb) {
      ended = true;
      answers.clear();
      try {
        sftp.close(handle, () => undefined);
      } catch {
        // The connection is gone: the handle went with it.
      }
      cb(err);
    },
  });
  const ask = (pos: number, len: number) => {
    inFlight++;
    const buf = Buffer.allocUnsafe(len);
    sftp.read(handle, buf, 0, len, pos, (err: Error | null | undefined, bytesRead: number) => {
      inFlight--;
      if (ended) return;
      if (err) {
        ended = true;
        out.destroy(wrap(err));
        return;
      }
      answers.set(pos, { data: buf.subarray(0, bytesRead), asked: len });
      flush();
      pump();
    });
  };
  const pump = () => {
    while (!ended && wanting && inFlight < IN_ORDER.requests && next < size) {
      const len = Math.min(IN_ORDER.bytes, size - next);
      ask(next, len);
      next += len;
    }
    if (!ended && emitted >= size && inFlight === 0) {
      ended = true;
      out.push(null);
    }
  };
  const flush = () => {
    for (let a = answers.get(emitted); a && !ended; a = answers.get(emitted)) {
      answers.delete(emitted);
      if (a.data.length === 0) {
        // EOF before the announced size: what came is all there is.
        ended = true;
        out.push(null);
        return;
      }
      emitted += a.data.length;
      progress(emitted);
      if (a.data.length < a.asked) ask(emitted, a.asked - a.data.length);
      if (!out.push(a.data)) wanting = false;
    }
  };
  return out;
}

class SftpSource implements FileSource {
  readonly label: string;
  constructor(
    readonly hostName: string,
    private readonly where: string,
    private readonly client: SftpClient,
    private readonly idle: Limit,
    private readonly warn: Warn,
  ) {
    this.label = `${hostName} (${where})`;
  }
  private bounded(file: string, bound: ReadBound): BoundedReadOptions {
    return { host: this.hostName, what: `${this.label}: ${file}`, bound, idleSeconds: this.idle.seconds };
  }
  private wrap(op: string, file: string, err: unknown): TransferError {
    const msg = err instanceof Error ? err.message.replace(/^\w+: /, '') : String(err);
    return new TransferError(this.hostName, `${this.label}: ${op} ${file}: ${brokenConnection(msg) ?? msg}`, {
      cause: err,
    });
  }
  async list(dir: string, budget?: ListingBudget): Promise<RemoteEntry[]> {
    const own = budget ?? new ListingBudget({ subject: this.hostName, what: this.label, window: this.idle });
    try {
      const sftp = (this.client as unknown as { sftp?: SFTPWrapper }).sftp;
      // Wrapped by the catch below into a TransferError naming the host.
      if (!sftp) throw new Error('No SFTP connection');
      const entries = await readDirBounded(sftp, dir, own, () => void this.client.end().catch(() => undefined));
      const items = plainEntries(
        entries.map((e) => ({ ...e, name: e.filename })),
        `${this.label}: ${dir}`,
        this.warn,
      );
      const mtimeMs = (e: Entry) => (e.attrs.mtime ?? 0) * 1000;
      return items.map((e) => ({ name: e.name, size: e.attrs.size ?? 0, mtimeMs: mtimeMs(e), isFile: isRegular(e) }));
    } catch (err) {
      if (err instanceof TransferError) throw err;
      throw this.wrap('list', dir, err);
    } finally {
      if (!budget) own.end();
    }
  }
  /** lstat, like the listing and the local source: a symlink is no file, whatever it points to. */
  async stat(file: string): Promise<RemoteEntry> {
    try {
      const st = await this.answered<SftpAttrs>(file, (sftp, cb) => sftp.lstat(file, cb));
      const isFile = (st.mode & S_IFMT) === S_IFREG;
      return { name: path.posix.basename(file), size: st.size, mtimeMs: st.mtime * 1000, isFile };
    } catch (err) {
      if (err instanceof TransferError) throw err;
      throw this.wrap('stat', file, err);
    }
  }
  private sftp(): SFTPWrapper {
    const sftp = (this.client as unknown as { sftp?: SFTPWrapper }).sftp;
    // Wrapped by the callers' catch into a TransferError naming the host.
    if (!sftp) throw new Error('No SFTP connection');
    return sftp;
  }
  /** One SFTP call within the idle window; a server that does not answer loses the connection. */
  private answered<T>(
    file: string,
    fn: (sftp: SFTPWrapper, cb: (err: Error | null | undefined, value: T) => void) => void,
  ): Promise<T> {
    const sftp = this.sftp();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new TransferError(
            this.hostName,
            `${this.label}: ${file}: no answer within ${this.idle.seconds} s (${this.idle.setting}): abandoned`,
          ),
        );
        void this.client.end().catch(() => undefined);
      }, this.idle.seconds * 1000);
      fn(sftp, (err, value) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value);
      });
    });
  }
  /**
   * Open a DATA_PATH's file to read as root may (like the local source's O_NOFOLLOW): never through a
   * symlink (its owner could point changelog.0.mfs at /etc/shadow, or at a huge file), never a FIFO or
   * device. SFTP's open follows links and has no O_NOFOLLOW, so the name is lstat-ed, then opened,
   * and the handle's fstat must show the same file (sameFile); every read then goes through the handle.
   */
  private async openChecked(file: string): Promise<{ handle: Buffer; size: number }> {
    const refuse = (why: string) => new TransferError(this.hostName, `${this.label}: ${file}: ${why}: refused`);
    const named = await this.answered<SftpAttrs>(file, (sftp, cb) => sftp.lstat(file, cb));
    if ((named.mode & S_IFMT) === S_IFLNK)
      throw refuse('is a symbolic link (links in a source directory are never followed)');
    if ((named.mode & S_IFMT) !== S_IFREG) throw refuse('not a regular file');
    // An open that never answers (a FIFO swapped in after the lstat) ends the connection.
    const handle = await this.answered<Buffer>(file, (sftp, cb) => sftp.open(file, 'r', cb));
    try {
      const opened = await this.answered<SftpAttrs>(file, (sftp, cb) => sftp.fstat(handle, cb));
      // A ReadBoundError: a fresh image renamed into place in between is a changed source, which backup retries.
      if (!sameFile(named, opened))
        throw new ReadBoundError(
          this.hostName,
          `${this.label}: ${file}: changed between its lstat and its open (replaced, or a link swapped in): refused`,
        );
      return { handle, size: opened.size };
    } catch (err) {
      this.sftp().close(handle, () => undefined);
      throw err;
    }
  }
  /**
   * fastGet with the file size fixed to what the server announces at open, once that is checked
   * against the bound: fastGet then requests exactly those bytes and no more, whatever the reads
   * would deliver. A stall ends the connection (the only way to settle a pending ssh2 call).
   */
  async download(remote: string, local: string, options: DownloadOptions): Promise<void> {
    const { signal, bound } = options;
    const o = this.bounded(remote, bound);
    const abortError = () => new TransferError(this.hostName, `${this.label}: transfer of ${remote} aborted`);
    if (signal?.aborted) throw abortError();
    let stalled: TransferError | undefined;
    const stall = new AbortController();
    const watchdog = new ReadWatchdog(o, (err) => {
      stalled = err;
      stall.abort(err);
    });
    const either = signal ? AbortSignal.any([signal, stall.signal]) : stall.signal;
    const failure = () => stalled ?? abortError();
    const end = () => void this.client.end().catch(() => undefined);
    try {
      const { handle, size: announced } = await unlessAborted(this.openChecked(remote), either, end, failure);
      if (announced > limitOf(bound) || announced === 0) {
        this.sftp().close(handle, () => undefined);
        if (announced === 0) return await fs.writeFile(local, '', { mode: 0o600 });
        throw new ReadBoundError(
          this.hostName,
          `${o.what}: the server announces ${announced} bytes at open, more than ${describeBound(bound)}: refused, nothing copied`,
        );
      }
      const get = fastGetFromHandle(this.client, this.sftp(), handle, local, {
        ...FAST_GET,
        fileSize: announced,
        step: (done: number, _chunk: number, total: number) => {
          watchdog.progress(done);
          options.onProgress?.(done, total);
        },
      });
      await unlessAborted(get, either, end, failure);
    } catch (err) {
      await fs.rm(local, { force: true });
      if (err instanceof TransferError) throw err;
      if (stalled) throw stalled;
      if (signal?.aborted) throw abortError();
      throw this.wrap('download', remote, err);
    } finally {
      watchdog.stop();
    }
  }
  /**
   * The file's bytes as announced by its handle at open (like `download`: exactly those, no more), read
   * with IN_ORDER.requests parallel reads of IN_ORDER.bytes on the checked handle and emitted in order
   * (inOrderReads). A stall or `signal` ends the connection (the only way to settle a pending ssh2 call).
   */
  async readWhole(file: string, bound: ReadBound, signal?: AbortSignal): Promise<Readable> {
    const o = this.bounded(file, bound);
    const abortError = () => new TransferError(this.hostName, `${this.label}: transfer of ${file} aborted`);
    if (signal?.aborted) throw abortError();
    const end = () => void this.client.end().catch(() => undefined);
    let opened: { handle: Buffer; size: number };
    try {
      opened = await unlessAborted(this.openChecked(file), signal, end, abortError);
    } catch (err) {
      if (err instanceof TransferError) throw err;
      throw this.wrap('read', file, err);
    }
    const { handle, size: announced } = opened;
    if (announced > limitOf(bound)) {
      this.sftp().close(handle, () => undefined);
      throw new ReadBoundError(
        this.hostName,
        `${o.what}: the server announces ${announced} bytes at open, more than ${describeBound(bound)}: refused, nothing copied`,
      );
    }
    const wrap = (err: unknown) => this.wrap('read', file, err);
    const out = inOrderReads(this.sftp(), handle, announced, wrap, (done) => watchdog.progress(done));
    const fail = (err: Error) => {
      if (!out.destroyed) out.destroy(err);
      end();
    };
    const watchdog = new ReadWatchdog(o, fail, () => out.readableLength >= out.readableHighWaterMark);
    // An abort or stall may come before the caller reads (it opens its output first): the error stays on the
    // stream (`errored`) for the reader to get, and must not be an unhandled 'error' event meanwhile.
    out.on('error', () => undefined);
    const onAbort = () => fail(abortError());
    signal?.addEventListener('abort', onAbort, { once: true });
    out.once('close', () => {
      watchdog.stop();
      signal?.removeEventListener('abort', onAbort);
    });
    return out;
  }
  async readStream(file: string, bound: ReadBound): Promise<Readable> {
    return this.boundedRange(file, 0, limitOf(bound), bound);
  }
  async readRange(file: string, start: number, length: number): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0);
    const stream = await this.boundedRange(file, start, start + length - 1, { size: length });
    const parts: Buffer[] = [];
    try {
      for await (const c of stream) parts.push(c as Buffer);
    } catch (err) {
      if (err instanceof TransferError) throw err;
      throw this.wrap('read', file, err);
    }
    return Buffer.concat(parts);
  }
  /** Bytes [start, end] (end inclusive: one past the bound, so a longer file shows as an overflow). */
  private async boundedRange(file: string, start: number, end: number, bound: ReadBound): Promise<Readable> {
    let raw: Readable;
    try {
      const { handle } = await this.openChecked(file);
      raw = quietAfterEnd(this.sftp().createReadStream(file, { handle, start, end, highWaterMark: 1 << 18 }));
    } catch (err) {
      if (err instanceof TransferError) throw err;
      throw this.wrap('read', file, err);
    }
    // ssh2's own errors (a vanished file, a dropped link) in the same words as the other calls.
    return boundedStream(raw, { ...this.bounded(file, bound), mapError: (err) => this.wrap('read', file, err) });
  }
  async remove(file: string): Promise<void> {
    try {
      await this.client.delete(file);
    } catch (err) {
      throw this.wrap('delete', file, err);
    }
  }
  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

async function readKey(file: string, key: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new ConfigError(
      key,
      `cannot read SSH private key ${file} (${key}): ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/** Why a connection failed, in words an operator acts on. */
function connectProblem(err: unknown, verdict: HostKeyVerdict | undefined): string {
  if (verdict && !verdict.ok) return verdict.message;
  const msg = err instanceof Error ? err.message : String(err);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(msg)) return 'connection refused (is sshd running on that port?)';
  if (/Timed out while waiting for handshake|ETIMEDOUT|timed out/i.test(msg))
    return 'timed out connecting (host unreachable?)';
  if (/EHOSTUNREACH|ENETUNREACH/.test(msg)) return 'host unreachable';
  if (/All configured authentication methods failed/.test(msg))
    return 'authentication failed (is the public key in authorized_keys?)';
  return msg.replace(/^connect: (getConnection: )?/, '');
}

/** Where and how to reach an SFTP server: a host's SSH settings, or an off-site copy's. */
export interface SftpTarget {
  /** For messages: the host's (or copy's) name. */
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  knownHosts: string;
  connectTimeoutSeconds: number;
  readIdleSeconds: number;
  acceptUnknownHostKeys: boolean;
  /** The config keys that set the key file, known_hosts and readIdleSeconds, for messages. */
  keys: { privateKey: string; knownHosts: string; readIdle?: string };
}

/** Open a host's DATA_PATH: locally when `local: true`, else over SFTP with a verified host key. */
export async function openSource(
  config: Config,
  host: DataPathHost,
  signal?: AbortSignal,
  warn: Warn = warnOnStderr,
): Promise<FileSource> {
  if (host.local) return new LocalSource(host.name, warn);
  const ssh = requireSsh(config, host);
  const list = hostList(host);
  const target: SftpTarget = {
    name: host.name,
    host: host.host,
    ...ssh,
    keys: { privateKey: `${list}.ssh.privateKey`, knownHosts: `${list}.ssh.knownHosts` },
  };
  return (await connectSftp(target, signal, warn)).source;
}

/**
 * An SFTP session with the server's host key verified against known_hosts (OpenSSH's rules), as a
 * FileSource for bounded reads and as the raw client for the few writers (off-site copies).
 */
export async function connectSftp(
  t: SftpTarget,
  signal?: AbortSignal,
  warn: Warn = warnOnStderr,
): Promise<{ source: FileSource; client: SftpClient }> {
  const privateKey = await readKey(t.privateKey, t.keys.privateKey);
  const knownHostsKey = t.keys.knownHosts;
  const entries = await loadKnownHosts(t.knownHosts, knownHostsKey, { missingIsEmpty: t.acceptUnknownHostKeys });
  const where = `${t.host}:${t.port}`;
  let verdict: HostKeyVerdict | undefined;
  // ssh2 is loaded on the first SFTP connection, not at start-up: commands that never use SFTP
  // (list-jobs, local sources, the ucarp hook's checks) start faster (npm run bench, case 5).
  const { default: Client } = await import('ssh2-sftp-client');
  // ssh2-sftp-client's default listeners console.log a connection that closes or fails while no call
  // is pending: on stdout, where the Nagios line (or --json) must be the only thing. The pending call's
  // own error reports a broken connection; these events need no printing of their own.
  const client = new Client(t.name, { error: () => undefined, end: () => undefined, close: () => undefined });
  const connecting = client.connect({
    host: t.host,
    port: t.port,
    username: t.user,
    privateKey,
    readyTimeout: t.connectTimeoutSeconds * 1000,
    keepaliveInterval: KEEPALIVE_MS,
    keepaliveCountMax: KEEPALIVE_COUNT,
    algorithms: { cipher: CIPHERS as never },
    // With a callback ssh2 waits for it: an accepted new key is on disk before the session goes on.
    hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
      verdict = checkHostKey(entries, t.host, t.port, key, t.knownHosts);
      if (verdict.ok || verdict.reason !== 'unknown' || !t.acceptUnknownHostKeys) {
        verify(verdict.ok);
        return undefined;
      }
      void acceptNewHostKey(t.knownHosts, knownHostsKey, t.host, t.port, key).then(
        (pin) => {
          verdict = pin.ok ? { ok: true } : pin;
          verify(pin.ok);
        },
        (err: unknown) => {
          verdict = { ok: false, reason: 'unknown', message: (err as Error).message };
          verify(false);
        },
      );
      return undefined;
    },
  });
  try {
    await unlessAborted(
      connecting,
      signal,
      () => void client.end().catch(() => undefined),
      () => new TransferError(t.name, `${t.name} (${where}): connecting aborted`),
    );
  } catch (err) {
    await client.end().catch(() => undefined);
    if (err instanceof TransferError) throw err;
    throw new TransferError(t.name, `${t.name} (${where}): cannot connect over SSH: ${connectProblem(err, verdict)}`, {
      cause: err,
    });
  }
  const idle = { seconds: t.readIdleSeconds, setting: t.keys.readIdle ?? 'ssh.readIdleSeconds' };
  return { source: new SftpSource(t.name, where, client, idle, warn), client };
}
