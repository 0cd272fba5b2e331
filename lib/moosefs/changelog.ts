import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * A changelog line is `VERSION: UNIXTIME|OP(args)[:result]`, versions +1 per line.
 * Scanning is one pass over raw bytes with constant memory: a changelog of millions of lines
 * costs what reading it costs.
 */
export interface ChangelogLine {
  version: number;
  timestamp: number;
  op: string;
}

export function parseChangelogLine(line: string): ChangelogLine | undefined {
  const m = /^(\d+): (\d+)\|([A-Z_]+)\(/.exec(line);
  if (!m) return undefined;
  return { version: Number(m[1]), timestamp: Number(m[2]), op: m[3]! };
}

/** A run of consecutive versions inside one file. */
export interface Segment {
  first: number;
  last: number;
}

export interface ChangelogProblem {
  /** 1-based line number in the file. */
  line: number;
  reason: string;
}

export interface ChangelogScan {
  file: string;
  bytes: number;
  lines: number;
  /** Consecutive runs of versions, in file order; more than one means a hole or disorder inside the file. */
  segments: Segment[];
  first?: number;
  last?: number;
  /** Unix time of the newest line. */
  lastTimestamp?: number;
  /** Unparsable lines, versions going backwards or repeating. */
  problems: ChangelogProblem[];
  /** The file does not end with a newline: the last line was cut (or is being written). */
  truncatedLastLine: boolean;
}

const NL = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const PIPE = 0x7c;
const MAX_LINE = 1 << 20;
const MAX_PROBLEMS = 100;

const OPEN = 0x28;
const CLOSE = 0x29;

/**
 * `OP(args)` or `OP(args):result`, nothing else. MooseFS escapes "(", ")" and "," inside names
 * (%28 %29 %2C), so a line cut in the middle has no closing parenthesis, or a bare ":" after it.
 * Measured here: mfsmaster -a reads such a line as a missing version ("hole in change files") and
 * refuses the whole restore; a line that only passed the version check must not count as present.
 */
function wellFormedOperation(buf: Buffer, from: number, to: number): boolean {
  let i = from;
  while (i < to && ((buf[i]! >= 0x41 && buf[i]! <= 0x5a) || buf[i] === 0x5f)) i++;
  if (i === from || buf[i] !== OPEN) return false;
  const close = buf.lastIndexOf(CLOSE, to - 1);
  if (close <= i) return false;
  if (close === to - 1) return true;
  if (buf[close + 1] !== COLON || close + 2 >= to) return false;
  // A loop, not subarray().indexOf(): a Buffer view per line was a fifth of verify's time in GC.
  for (let j = close + 2; j < to; j++) if (buf[j] === OPEN) return false;
  return true;
}

/** Incremental scanner: feed chunks, then finish(). Exposed for streams that are not files (SFTP). */
export class ChangelogScanner {
  private readonly scan: ChangelogScan;
  private carry: Buffer | undefined;
  private expected: number | undefined;

  constructor(file: string) {
    this.scan = { file, bytes: 0, lines: 0, segments: [], problems: [], truncatedLastLine: false };
  }

  /** The scan so far, as if the file ended here (the scanner itself goes on). */
  snapshot(file = this.scan.file): ChangelogScan {
    const copy = new ChangelogScanner(file);
    Object.assign(copy.scan, { ...this.scan, file, segments: this.scan.segments.map((x) => ({ ...x })), problems: [...this.scan.problems] });
    copy.carry = this.carry && Buffer.from(this.carry);
    copy.expected = this.expected;
    return copy.finish();
  }

  /** Bytes pushed so far. */
  get bytes(): number {
    return this.scan.bytes;
  }

  push(chunk: Buffer): void {
    this.scan.bytes += chunk.length;
    let start = 0;
    if (this.carry) {
      // Complete the carried line on its own: joining it to the whole chunk would copy every byte once more.
      const nl = chunk.indexOf(NL);
      if (nl === -1) {
        this.keepRest(Buffer.concat([this.carry, chunk]));
        return;
      }
      const line = Buffer.concat([this.carry, chunk.subarray(0, nl)]);
      this.carry = undefined;
      this.line(line, 0, line.length);
      start = nl + 1;
    }
    for (let nl = chunk.indexOf(NL, start); nl !== -1; nl = chunk.indexOf(NL, start)) {
      this.line(chunk, start, nl);
      start = nl + 1;
    }
    if (start < chunk.length) this.keepRest(chunk.subarray(start));
  }

  /** The start of a line whose end is in a later chunk. */
  private keepRest(rest: Buffer): void {
    if (rest.length > MAX_LINE) {
      this.problem(this.scan.lines + 1, `line longer than ${MAX_LINE} bytes`);
      this.carry = undefined;
    } else {
      this.carry = Buffer.from(rest);
    }
  }

  finish(): ChangelogScan {
    if (this.carry && this.carry.length > 0) {
      this.scan.truncatedLastLine = true;
      this.scan.lines += 1;
      this.problem(this.scan.lines, 'last line is cut off (no newline at end of file)');
    }
    this.carry = undefined;
    return this.scan;
  }

  private problem(line: number, reason: string): void {
    if (this.scan.problems.length < MAX_PROBLEMS) this.scan.problems.push({ line, reason });
  }

  private line(buf: Buffer, from: number, to: number): void {
    const lineNo = ++this.scan.lines;
    // VERSION ':' ' ' TIMESTAMP '|' OP — parsed by hand: this loop is the hot path of verify.
    let i = from;
    let version = 0;
    while (i < to && buf[i]! >= 0x30 && buf[i]! <= 0x39) version = version * 10 + (buf[i++]! - 0x30);
    if (i === from || i + 1 >= to || buf[i] !== COLON || buf[i + 1] !== SPACE) {
      this.problem(lineNo, 'unparsable line');
      return;
    }
    i += 2;
    const tsStart = i;
    let timestamp = 0;
    while (i < to && buf[i]! >= 0x30 && buf[i]! <= 0x39) timestamp = timestamp * 10 + (buf[i++]! - 0x30);
    if (i === tsStart || buf[i] !== PIPE || i + 1 >= to) {
      this.problem(lineNo, 'unparsable line');
      return;
    }
    if (!wellFormedOperation(buf, i + 1, to)) {
      // Never quote the line: a changelog holds file names, and a message goes to logs and terminals.
      this.problem(lineNo, `unparsable line (cut off or damaged) at version ${version}`);
      return;
    }
    this.accept(lineNo, version, timestamp);
  }

  private accept(lineNo: number, version: number, timestamp: number): void {
    const s = this.scan;
    if (this.expected !== undefined && version !== this.expected) {
      if (version < this.expected) {
        this.problem(lineNo, version === this.expected - 1 ? `version ${version} repeated` : `version ${version} goes backwards (after ${this.expected - 1})`);
        return;
      }
      s.segments.push({ first: version, last: version });
    } else if (this.expected === undefined) {
      s.segments.push({ first: version, last: version });
      s.first = version;
    } else {
      s.segments[s.segments.length - 1]!.last = version;
    }
    s.last = version;
    s.lastTimestamp = timestamp;
    this.expected = version + 1;
  }
}

export async function scanChangelogStream(stream: Readable, file: string): Promise<ChangelogScan> {
  const scanner = new ChangelogScanner(file);
  for await (const chunk of stream) scanner.push(chunk as Buffer);
  return scanner.finish();
}

export async function scanChangelogFile(file: string): Promise<ChangelogScan> {
  return scanChangelogStream(createReadStream(file, { highWaterMark: 1 << 20 }), file);
}
