import { TransferError } from '../core/errors.js';

/**
 * The one bound every remote listing goes through (a DATA_PATH over SFTP, an off-site copy on SFTP or
 * S3): a server is trusted for nothing, so a listing that is always "truncated", a READDIR that never
 * says EOF, or answers that drip a byte every few seconds must end, in bounded memory and time, with
 * one line naming the source. The limits are far above any real store or DATA_PATH.
 */
export interface ListingLimits {
  /** Names in all: a DATA_PATH holds a few hundred, a copy a few dozen snapshots of a few dozen files. */
  entries: number;
  /** Answers (S3 pages, SFTP READDIR replies): a server that always says "more", with nothing in it. */
  pages: number;
  /** Bytes of the names, and of what the listing keeps beside them (a copy's manifests). */
  bytes: number;
}

export const LISTING_LIMITS: Readonly<ListingLimits> = { entries: 100_000, pages: 10_000, bytes: 64 * 2 ** 20 };

/**
 * One answer (an S3 page of XML) longer than this is refused before it is parsed: a real page of 1000
 * keys of 1 KiB is about 1.3 MiB, and the SDK holds a whole page in memory to parse it.
 */
export const LISTING_ANSWER_BYTES = 8 * 2 ** 20;

/** A whole listing gets this many of its source's timeout windows; each single answer gets one. */
export const LISTING_WINDOWS = 10;

/** A time limit and the setting it comes from, for messages (`jobs.promote.sourceTimeoutSeconds`). */
export interface Limit {
  seconds: number;
  setting: string;
}

const NEVER_ENDS = ' (a listing that never ends, or not ours): refused';

/** 4.998 (what is left of 5 s after connecting) as 5, 0.5 as 0.5. */
const shownSeconds = (s: number) => Math.round(s * 10) / 10;

export interface ListingBoundsOptions {
  /** The error's subject: the host's or the copy's name. */
  subject: string;
  /** `copy offsite (s3 http://… bucket/)`, `ml1 (10.0.0.5:22)`: who, for the one-line error. */
  what: string;
  /** Each answer (an S3 page, a READDIR reply) within this: the source's timeout window. */
  window: Limit;
  /** The whole listing within this (default: LISTING_WINDOWS windows). */
  deadline?: Limit;
  /** The caller's own abort (a job cancelled): its reason is the error. */
  signal?: AbortSignal;
  limits?: Partial<ListingLimits>;
}

/**
 * One listing's budget: entries, answers and bytes counted as they arrive (never after the server
 * is done: it may never be), each answer within a window, all of it before a deadline. A copy's
 * listing (its snapshot ids, each snapshot's files, the manifests) shares one budget.
 */
export class ListingBudget {
  /** Aborted at the deadline (or by the caller's signal); its reason is the error to throw. */
  readonly signal: AbortSignal;
  private readonly limits: ListingLimits;
  private readonly deadline: Limit;
  private readonly timer: NodeJS.Timeout;
  private entries = 0;
  private pages = 0;
  private bytes = 0;
  /** What is being listed now, for the deadline's message. */
  private where = '';

  constructor(private readonly o: ListingBoundsOptions) {
    this.limits = { ...LISTING_LIMITS, ...o.limits };
    const { seconds, setting } = o.window;
    this.deadline = o.deadline ?? { seconds: LISTING_WINDOWS * seconds, setting: `${LISTING_WINDOWS} × ${setting}` };
    const expiry = new AbortController();
    const expired = () => {
      const within = `${shownSeconds(this.deadline.seconds)} s (${this.deadline.setting})`;
      expiry.abort(this.fail(`listing ${this.where} not done within ${within}: abandoned`));
    };
    this.timer = setTimeout(expired, this.deadline.seconds * 1000);
    // Pending network I/O keeps the process alive; the timer alone must not.
    this.timer.unref();
    this.signal = o.signal ? AbortSignal.any([expiry.signal, o.signal]) : expiry.signal;
  }

  private fail(message: string): TransferError {
    return new TransferError(this.o.subject, `${this.o.what}: ${message}`);
  }

  /** Throws the deadline's (or the caller's) error once it has come. */
  check(where: string): void {
    this.where = where;
    if (!this.signal.aborted) return;
    throw this.signal.reason instanceof Error ? this.signal.reason : this.fail(`listing ${where} aborted`);
  }

  /** Counts one answer and its names; throws once a limit is passed (the names are not kept). */
  page(where: string, names: readonly string[]): void {
    this.check(where);
    this.pages++;
    this.entries += names.length;
    for (const n of names) this.bytes += Buffer.byteLength(n);
    const over =
      this.pages > this.limits.pages
        ? `more than ${this.limits.pages} answers`
        : this.entries > this.limits.entries
          ? `more than ${this.limits.entries} entries`
          : this.bytes > this.limits.bytes
            ? `more than ${this.limits.bytes} bytes of names`
            : undefined;
    if (over) throw this.fail(`listing ${where}: ${over}${NEVER_ENDS}`);
  }

  /** Counts bytes the listing keeps beside its names (a manifest); throws once past the limit. */
  hold(where: string, bytes: number): void {
    this.check(where);
    this.bytes += bytes;
    if (this.bytes <= this.limits.bytes) return;
    throw this.fail(`listing ${where}: more than ${this.limits.bytes} bytes in all${NEVER_ENDS}`);
  }

  /**
   * One remote call of the listing, settled within the window and before the deadline, whatever the
   * server does: `call` gets a signal to stop its request with; `abandon` (end an SSH connection: the
   * one way to settle a pending ssh2 call) runs when it is given up.
   */
  async answer<T>(where: string, call: (signal: AbortSignal) => Promise<T>, abandon?: () => void): Promise<T> {
    this.check(where);
    const window = new AbortController();
    const { seconds, setting } = this.o.window;
    const late = () =>
      window.abort(this.fail(`listing ${where}: no answer within ${seconds} s (${setting}): abandoned`));
    const timer = setTimeout(late, seconds * 1000);
    timer.unref();
    const signal = AbortSignal.any([this.signal, window.signal]);
    let onAbort = () => undefined as void;
    const abandoned = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(signal.reason);
        abandon?.();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    const work = call(signal);
    // Settled or not, once given up its outcome is nobody's business: never an unhandled rejection.
    work.catch(() => undefined);
    try {
      return await Promise.race([work, abandoned]);
    } catch (err) {
      // A request stopped by our signal fails with the library's own words: ours name the source.
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The listing is over: its deadline no longer runs. */
  end(): void {
    clearTimeout(this.timer);
  }
}
