import { Transform, type Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import { TransferError } from '../core/errors.js';

/**
 * The one bounded reader every remote read goes through. A server is trusted for nothing: a listing
 * that says 100 B while the reads deliver 200 MiB must not fill the snapshot store (its free-space
 * check used the listing), and a file that never ends, or drips a byte a second, must not hold a
 * job's lock for ever.
 */

/** A remote read is abandoned after a window this long without real progress (ssh.readIdleSeconds). */
export const READ_IDLE_SECONDS = 30;

/**
 * How far past its listed size a changelog may have grown by the time it is read: MooseFS appends to
 * changelog.0.mfs (changelog_ml.0.mfs) all the time, and a listed `.0` may have been rotated to `.1`
 * after a few more lines. Images and sessions files get no allowance: they are written aside and renamed.
 */
export const CHANGELOG_GROWTH = 64 * 1024 * 1024;

/** What a caller was told about a file, and how much growth it accepts. */
export interface ReadBound {
  /** The size the listing (or stat) announced. */
  size: number;
  /** Extra bytes accepted (a live changelog); 0 when the file must not change. */
  growth?: number;
}

export const limitOf = (bound: ReadBound): number => bound.size + (bound.growth ?? 0);

/** "announced 100 B" or "announced 100 B (+67108864 B allowed growth)": the limit in an operator's words. */
export function describeBound(bound: ReadBound): string {
  return bound.growth
    ? `${bound.size} bytes announced (+${bound.growth} allowed for growth)`
    : `${bound.size} bytes announced`;
}

export interface BoundedReadOptions {
  /** Host name: the error's subject. */
  host: string;
  /** `ml1 (10.0.0.5:22): /var/lib/mfs/changelog_ml.0.mfs` — who and what, for the one-line error. */
  what: string;
  bound: ReadBound;
  idleSeconds: number;
  /** How the input's own errors read (default: as they are). */
  mapError?: (err: unknown) => Error;
}

/**
 * The file is bigger than the caller was told: hostile, or replaced since the listing (a metalogger
 * renames a fresh image into place). Callers that retry on a changed source may retry on this.
 */
export class ReadBoundError extends TransferError {}

export function overflowError(o: BoundedReadOptions, got: number): TransferError {
  return new ReadBoundError(
    o.host,
    `${o.what}: the server sent more than ${describeBound(o.bound)} (${got}+ bytes): refused, nothing kept`,
  );
}

/**
 * Fewer bytes than this in one `idleSeconds` window is a stall: a server dripping a byte a second
 * never goes silent, yet would hold the lock for days. Any real link moves far more.
 */
export const READ_MIN_BYTES_PER_WINDOW = 64 * 1024;

export function stallError(o: BoundedReadOptions, inWindow: number, done: number): TransferError {
  const what = inWindow === 0 ? `no data for ${o.idleSeconds} s` : `only ${inWindow} bytes in ${o.idleSeconds} s`;
  return new TransferError(
    o.host,
    `${o.what}: ${what} after ${done} bytes (the file never ends, or the server drips or stalls): read abandoned`,
  );
}

/**
 * Calls `onStall` once when a window of `idleSeconds` passes with fewer than
 * READ_MIN_BYTES_PER_WINDOW bytes of progress. `progress(total)` reports bytes done so far.
 */
export class ReadWatchdog {
  private done = 0;
  private atWindowStart = 0;
  private readonly timer: NodeJS.Timeout;
  /** `consumerFull`: bytes wait for our own reader (backpressure): not the server's stall. */
  constructor(
    private readonly o: BoundedReadOptions,
    onStall: (err: TransferError) => void,
    consumerFull: () => boolean = () => false,
  ) {
    this.timer = setInterval(() => {
      const inWindow = this.done - this.atWindowStart;
      this.atWindowStart = this.done;
      if (inWindow < READ_MIN_BYTES_PER_WINDOW && !consumerFull()) {
        this.stop();
        onStall(stallError(this.o, inWindow, this.done));
      }
    }, o.idleSeconds * 1000);
    this.timer.unref();
  }
  progress(total: number): void {
    this.done = total;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Pass `input` through, failing with a one-line TransferError once more than the bound's limit has
 * arrived or the read stalls (ReadWatchdog). The input is destroyed on failure (its SFTP handle closes).
 */
export function boundedStream(input: Readable, o: BoundedReadOptions): Readable {
  const limit = limitOf(o.bound);
  let done = 0;
  const fail = (err: Error) => {
    watchdog.stop();
    out.destroy(err);
    input.destroy();
  };
  const watchdog = new ReadWatchdog(o, fail, () => out.readableLength >= out.readableHighWaterMark);
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      watchdog.progress(done);
      if (done > limit) {
        cb();
        fail(overflowError(o, done));
        return;
      }
      cb(null, chunk);
    },
    flush(cb) {
      watchdog.stop();
      cb();
    },
  });
  out.on('close', () => watchdog.stop());
  input.on('error', (err) => fail(o.mapError ? o.mapError(err) : err));
  input.pipe(out);
  return out;
}

/** What a RingReader cycles through: this many buffers of this many bytes. */
export const RING = { buffers: 4, bytes: 1 << 20 };

/**
 * A local file's bytes through the bounds of boundedStream (more than the limit fails with a ReadBoundError, a
 * stall with a TransferError), read by position on `handle` into a ring of RING.buffers reused buffers, one read
 * ahead. A fresh buffer per chunk (a file stream's way) is fresh memory the kernel faults in: ≈ 0.3 s of the Node
 * thread for a 73 MB image, more than its sha256 (issue 28, BENCHMARKS.md). The price is a contract: a chunk is a
 * view that is overwritten once the consumer has asked for 3 more, so it suits only a consumer that keeps no chunk
 * that long (backup's store pipeline: its checks copy what they keep, zstd's pipe is drained before the next
 * chunk). The handle is closed at the end, on failure, or by `destroy()`.
 */
export class RingReader implements AsyncIterable<Buffer> {
  private closed = false;
  constructor(
    private readonly handle: FileHandle,
    private readonly o: BoundedReadOptions,
  ) {}
  get destroyed(): boolean {
    return this.closed;
  }
  /** Closes the handle (a FileHandle closes once its pending read has settled). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    void this.handle.close().catch(() => undefined);
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const limit = limitOf(this.o.bound);
    const ring = Array.from({ length: RING.buffers }, () => Buffer.allocUnsafeSlow(RING.bytes));
    let waiting = false;
    let onStall: (err: Error) => void = () => undefined;
    const stalled = new Promise<never>((_, reject) => (onStall = reject));
    stalled.catch(() => undefined);
    // Waiting for our own consumer is not the file's stall.
    const watchdog = new ReadWatchdog(this.o, onStall, () => waiting);
    // At most limit + 1 bytes: one more than allowed is enough to refuse.
    const read = (k: number, at: number) =>
      this.handle.read(ring[k % ring.length]!, 0, Math.min(RING.bytes, limit + 1 - at), at);
    try {
      let at = 0;
      let next = read(0, 0);
      for (let k = 0; ; k++) {
        const { bytesRead } = await Promise.race([next, stalled]);
        if (bytesRead === 0) return;
        at += bytesRead;
        if (at > limit) throw overflowError(this.o, at);
        watchdog.progress(at);
        next = read(k + 1, at);
        next.catch(() => undefined);
        waiting = true;
        yield ring[k % ring.length]!.subarray(0, bytesRead);
        waiting = false;
      }
    } finally {
      watchdog.stop();
      this.destroy();
    }
  }
}
