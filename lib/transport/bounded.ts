import { Transform, type Readable } from 'node:stream';
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
