import { ChainError } from '../core/errors.js';
import { ChangelogScanner, MAX_LINE, type ChangelogScan } from '../moosefs/changelog.js';
import {
  checkImageEnding,
  endingBytes,
  HEADER_BYTES,
  parseImageHeader,
  type ImageHeader,
} from '../moosefs/metadata.js';
import { TAIL_BYTES } from '../store/manifest.js';
import { lastBytes } from '../store/stored-file.js';

/**
 * The checks backup makes on a source file's bytes as they arrive (issue 28: read once, stored as it is
 * read, no plain copy to check afterwards). Each is a pass over the stream that may look at every byte,
 * hold some back, or fail the stream, which leaves nothing stored (storeStream). The parsing is
 * lib/moosefs's: these only say where in the stream its parsers look.
 */
export type Check = (input: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>;

/**
 * Only whole lines pass: the bytes after the last newline (the line MooseFS was writing when the read
 * began) are held back and left out at the end (`cut.bytes`), as trimCutLastLine cuts a copy. A "line"
 * longer than MAX_LINE passes (the scanner refuses it).
 */
export function wholeLines(cut: { bytes: number }): Check {
  return async function* (input) {
    let held: Buffer[] = [];
    let heldBytes = 0;
    for await (const chunk of input) {
      const nl = chunk.lastIndexOf(0x0a);
      // Held bytes are copies: a chunk may be a reused buffer's view (RingReader), rewritten a few chunks on.
      if (nl === -1) {
        held.push(Buffer.from(chunk));
        heldBytes += chunk.length;
        if (heldBytes > MAX_LINE) {
          yield* held;
          held = [];
          heldBytes = 0;
        }
        continue;
      }
      yield* held;
      yield chunk.subarray(0, nl + 1);
      held = nl + 1 < chunk.length ? [Buffer.from(chunk.subarray(nl + 1))] : [];
      heldBytes = chunk.length - nl - 1;
    }
    cut.bytes = heldBytes;
  };
}

export interface ImageExpectation {
  /** The source path (the error's subject). */
  path: string;
  /** For messages: `host:DATA_PATH/name`. */
  label: string;
  /** The header the listing read: another version in the stream is a rewritten image. */
  header: ImageHeader;
  /** The error for a rewritten image (backup retries it once). */
  changed: (message: string) => Error;
}

/**
 * An image's header from its first bytes and its ending from its last, as they pass: a magic no
 * generation writes, or another version than the listing's header, fails the read at once; a missing
 * ending (cut off, still being written) fails it at the end.
 */
export function imageChecks(want: ImageExpectation): Check {
  const { label } = want;
  const rejected = (err: unknown) =>
    new ChainError(want.path, `${label}: copy rejected: ${(err as Error).message.replace(`${label}: `, '')}`);
  const compare = (header: ImageHeader) => {
    if (header.version !== want.header.version || header.empty !== want.header.empty)
      throw want.changed(
        `${label}: header changed during the copy (version ${want.header.version} → ${header.version})`,
      );
  };
  const parse = (head: Buffer) => {
    try {
      return parseImageHeader(head, label);
    } catch (err) {
      throw rejected(err);
    }
  };
  return async function* (input) {
    let head: Buffer = Buffer.alloc(0);
    let header: ImageHeader | undefined;
    let tail: Buffer = Buffer.alloc(0);
    let size = 0;
    for await (const chunk of input) {
      if (head.length < HEADER_BYTES) {
        head = Buffer.concat([head, chunk.subarray(0, HEADER_BYTES - head.length)]);
        if (head.length === HEADER_BYTES) compare((header = parse(head)));
      }
      tail = lastBytes(tail, chunk, TAIL_BYTES);
      size += chunk.length;
      yield chunk;
    }
    if (size < 8) throw rejected(new Error(`metadata image truncated (${size} bytes)`));
    if (!header) compare((header = parse(head)));
    if (header.empty) return;
    try {
      checkImageEnding(header, tail.subarray(Math.max(0, tail.length - endingBytes(header))), size, label);
    } catch (err) {
      throw rejected(err);
    }
  };
}

/** Every line of a changelog scanned as it passes (`out.scan` once it has ended); `refuse` may fail it then. */
export function changelogCheck(
  name: string,
  out: { scan?: ChangelogScan },
  refuse: (scan: ChangelogScan) => void,
): Check {
  return async function* (input) {
    const scanner = new ChangelogScanner(name);
    for await (const chunk of input) {
      scanner.push(chunk);
      yield chunk;
    }
    out.scan = scanner.finish();
    refuse(out.scan);
  };
}
