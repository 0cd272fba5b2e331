import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * A changelog line is `VERSION: UNIXTIME|OP(args)[:result]`, versions +1 per line. This file is the one
 * parser of that line: the streaming scanner, the edge reader (changelog-edges.ts) and every copier of
 * lines (promote's chain segment, restore's cut, mfsmetarestore's input) ask it.
 * Scanning is one pass over raw bytes with constant memory: a changelog of millions of lines
 * costs what reading it costs.
 */
export interface ChangelogLine {
  version: number;
  timestamp: number;
  op: string;
}

/** A line with its operation's arguments (between the parentheses, as written: names stay escaped). */
export interface ChangelogEntry extends ChangelogLine {
  args: string;
}

/**
 * Where a well-formed line's parts lie. Filled in place by `readLine` (no allocation per line: the
 * scanner runs it over every line verify reads).
 */
interface LineFields {
  version: number;
  timestamp: number;
  /** Index of the operation's name, of its "(" and of its last ")". */
  op: number;
  open: number;
  close: number;
}

/** A run of consecutive versions inside one file. */
export interface Segment {
  first: number;
  last: number;
}

/**
 * What is wrong with a line, for decisions (a message's text is for people and may change):
 * `unparsable` no `VERSION: UNIXTIME|` start; `damaged` that start, but no whole `OP(args)[:result]`;
 * `too-long` a line past MAX_LINE; `repeated` / `backwards` a version not after the one before;
 * `cut-last-line` the file ends without a newline.
 */
export type ChangelogProblemKind = 'unparsable' | 'damaged' | 'too-long' | 'repeated' | 'backwards' | 'cut-last-line';

export interface ChangelogProblem {
  kind: ChangelogProblemKind;
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
  /** Where the lines lie (only when the scanner was asked: restore's cut copies byte ranges by them). */
  positions?: LinePositions;
}

/** A run of `segments` with the byte offsets of its first line, its last line and the byte after its newline. */
export interface RunPosition extends Segment {
  start: number;
  lastStart: number;
  end: number;
}

/**
 * Byte positions of a scanned file's lines, for a reader that copies whole runs without parsing them again
 * (restore's cut, lib/restore/cut-files.ts).
 */
export interface LinePositions {
  runs: RunPosition[];
  /** The version accepted last before each of `problems` (same order; undefined: before any). */
  problemsAfter: (number | undefined)[];
  /** The first line later than `passTime` (a time target's end): its version and offset. */
  passed?: { version: number; start: number };
  /** False when a line longer than MAX_LINE was dropped: offsets after it are unknown. */
  exact: boolean;
}

const NL = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const PIPE = 0x7c;
/** The longest line any reader takes: a longer one is damage (no MooseFS operation comes near it). */
export const MAX_LINE = 1 << 20;
const MAX_PROBLEMS = 100;

const OPEN = 0x28;
const CLOSE = 0x29;

/** `VERSION: ` at `from`: the index after it, or -1. Sets `out.version`. */
function versionPrefix(buf: Buffer, from: number, to: number, out: { version: number }): number {
  let i = from;
  let version = 0;
  let c: number;
  // One load per byte and `(c - 0x30) >>> 0 < 10` for a digit: this loop runs on every line verify reads (issue #28).
  while (i < to && (c = buf[i]! - 0x30) >>> 0 < 10) {
    version = version * 10 + c;
    i++;
  }
  if (i === from || i + 1 >= to || buf[i] !== COLON || buf[i + 1] !== SPACE) return -1;
  out.version = version;
  return i + 2;
}

const OK = 0;
const UNPARSABLE = 1;
const DAMAGED = 2;

/**
 * The one reading of a line `buf[from, to)` (without its newline), parsed by hand: the hot path of verify.
 * After `VERSION: UNIXTIME|` comes `OP(args)` or `OP(args):result`, nothing else. MooseFS escapes "(", ")"
 * and "," inside names (%28 %29 %2C), so a line cut in the middle has no closing parenthesis, or a bare ":"
 * after it. Measured here: mfsmaster -a reads such a line as a missing version ("hole in change files") and
 * refuses the whole restore; a line that only passed the version check must not count as present.
 * Returns OK, UNPARSABLE or DAMAGED (numbers, not strings: this runs 17M times a gigabyte).
 */
function readLine(buf: Buffer, from: number, to: number, out: LineFields): number {
  let i = versionPrefix(buf, from, to, out);
  if (i === -1) return UNPARSABLE;
  const tsStart = i;
  let timestamp = 0;
  let c: number;
  while (i < to && (c = buf[i]! - 0x30) >>> 0 < 10) {
    timestamp = timestamp * 10 + c;
    i++;
  }
  if (i === tsStart || i + 1 >= to || buf[i] !== PIPE) return UNPARSABLE;
  out.timestamp = timestamp;
  const op = ++i;
  // [A-Z_]: an upper-case letter is 0x41-0x5a.
  while (i < to && (((c = buf[i]!) - 0x41) >>> 0 < 26 || c === 0x5f)) i++;
  if (i === op || i >= to || buf[i] !== OPEN) return DAMAGED;
  out.op = op;
  out.open = i;
  // Backwards from the end by hand: the ")" is a few bytes before it (`):RESULT`), and Buffer#lastIndexOf, a call
  // into C++ per line, cost more than the rest of the line's parse (issue #28).
  let close = to - 1;
  while (close > i && buf[close] !== CLOSE) close--;
  if (close <= i) return DAMAGED;
  out.close = close;
  if (close === to - 1) return OK;
  if (close + 2 >= to || buf[close + 1] !== COLON) return DAMAGED;
  // A loop, not subarray().indexOf(): a Buffer view per line was a fifth of verify's time in GC.
  for (let j = close + 2; j < to; j++) if (buf[j] === OPEN) return DAMAGED;
  return OK;
}

const scratch: LineFields = { version: 0, timestamp: 0, op: 0, open: 0, close: 0 };

/** A whole, well-formed line `buf[from, to)` (no newline), with its arguments; undefined for anything else. */
export function parseChangelogBytes(buf: Buffer, from = 0, to = buf.length): ChangelogEntry | undefined {
  if (readLine(buf, from, to, scratch) !== OK) return undefined;
  const { version, timestamp, op, open, close } = scratch;
  return { version, timestamp, op: buf.toString('latin1', op, open), args: buf.toString('latin1', open + 1, close) };
}

/** A whole, well-formed line (no newline), as the scanner accepts it; undefined for anything else. */
export function parseChangelogLine(line: string): ChangelogLine | undefined {
  const entry = parseChangelogBytes(Buffer.from(line, 'latin1'));
  return entry && { version: entry.version, timestamp: entry.timestamp, op: entry.op };
}

/**
 * The fast variant: only the `VERSION: ` a line (or a file's first bytes) starts with, the rest unchecked.
 * For readers that recognise a file by its first version or keep lines by version, whatever they hold.
 */
export function lineVersion(text: Buffer | string, from = 0): number | undefined {
  // 20 digits exceed any version: a longer prefix is never needed.
  const buf = typeof text === 'string' ? Buffer.from(text.slice(from, from + 24), 'latin1') : text;
  const start = typeof text === 'string' ? 0 : from;
  const out = { version: 0 };
  return versionPrefix(buf, start, Math.min(buf.length, start + 24), out) === -1 ? undefined : out.version;
}

/**
 * Splits bytes into lines (without their newline) with constant memory: `onLine(buf, from, to)` for each
 * whole line; a line longer than MAX_LINE is dropped and reported to `onTooLong` (its bytes up to the next
 * newline then come as one more line). `end()` gives what follows the last newline: a cut last line.
 */
export class LineSplitter {
  private carry: Buffer | undefined;

  constructor(
    private readonly onLine: (buf: Buffer, from: number, to: number) => void,
    private readonly onTooLong: () => void = () => undefined,
  ) {}

  get carried(): Buffer | undefined {
    return this.carry;
  }

  set carried(rest: Buffer | undefined) {
    this.carry = rest && Buffer.from(rest);
  }

  push(chunk: Buffer): void {
    let start = this.begin(chunk);
    if (start === -1) return;
    for (let nl = chunk.indexOf(NL, start); nl !== -1; nl = chunk.indexOf(NL, start)) {
      this.onLine(chunk, start, nl);
      start = nl + 1;
    }
    this.keep(chunk, start);
  }

  /**
   * The first half of `push` for a caller with its own line loop (the scanner's, issue #28): completes the carried
   * line (through `onLine`) and returns where the chunk's own lines start; -1 when the whole chunk was carried.
   * The caller then hands every whole line from there on, and `keep(chunk, start)` the rest.
   */
  begin(chunk: Buffer): number {
    if (!this.carry) return 0;
    // Complete the carried line on its own: joining it to the whole chunk would copy every byte once more.
    const nl = chunk.indexOf(NL);
    if (nl === -1) {
      this.keepRest(Buffer.concat([this.carry, chunk]));
      return -1;
    }
    const line = Buffer.concat([this.carry, chunk.subarray(0, nl)]);
    this.carry = undefined;
    this.onLine(line, 0, line.length);
    return nl + 1;
  }

  /** The last half of `push`: `chunk[start…]`, after its last newline, is carried into the next chunk. */
  keep(chunk: Buffer, start: number): void {
    if (start < chunk.length) this.keepRest(chunk.subarray(start));
  }

  /** The start of a line whose end is in a later chunk. */
  private keepRest(rest: Buffer): void {
    if (rest.length > MAX_LINE) {
      this.onTooLong();
      this.carry = undefined;
    } else {
      this.carry = Buffer.from(rest);
    }
  }

  end(): Buffer | undefined {
    const rest = this.carry;
    this.carry = undefined;
    return rest && rest.length > 0 ? rest : undefined;
  }
}

/** Incremental scanner: feed chunks, then finish(). Exposed for streams that are not files (SFTP). */
export class ChangelogScanner {
  private readonly scan: ChangelogScan;
  private readonly lines: LineSplitter;
  private expected: number | undefined;
  private readonly fields: LineFields = { version: 0, timestamp: 0, op: 0, open: 0, close: 0 };
  private readonly positions: LinePositions | undefined;
  private readonly passTime: number | undefined;
  /** Offset of the line being read, and of the next one. */
  private lineStart = 0;
  private nextStart = 0;

  /** `positions`: also record where the runs lie (LinePositions), and the first line later than `passTime`. */
  constructor(file: string, o: { positions?: boolean; passTime?: number } = {}) {
    this.scan = { file, bytes: 0, lines: 0, segments: [], problems: [], truncatedLastLine: false };
    if (o.positions) this.positions = this.scan.positions = { runs: [], problemsAfter: [], exact: true };
    this.passTime = o.passTime;
    this.lines = new LineSplitter(
      (buf, from, to) => this.line(buf, from, to),
      () => {
        if (this.positions) this.positions.exact = false;
        this.problem(this.scan.lines + 1, 'too-long', `line longer than ${MAX_LINE} bytes`);
      },
    );
  }

  /** The scan so far, as if the file ended here (the scanner itself goes on). */
  snapshot(file = this.scan.file): ChangelogScan {
    const copy = new ChangelogScanner(file);
    Object.assign(copy.scan, {
      ...this.scan,
      file,
      segments: this.scan.segments.map((x) => ({ ...x })),
      problems: [...this.scan.problems],
    });
    copy.lines.carried = this.lines.carried;
    copy.expected = this.expected;
    return copy.finish();
  }

  /** Bytes pushed so far. */
  get bytes(): number {
    return this.scan.bytes;
  }

  push(chunk: Buffer): void {
    this.scan.bytes += chunk.length;
    let start = this.lines.begin(chunk);
    if (start === -1) return;
    const s = this.scan;
    const f = this.fields;
    // The scanner's own line loop (LineSplitter's, without a callback per line), and the common line inline: well
    // formed, the next version. Half of verify's time was calls per line (issue #28). Anything else, and every line
    // when positions are asked, goes the whole way (`line`).
    const fast = this.positions === undefined;
    for (let nl = chunk.indexOf(NL, start); nl !== -1; nl = chunk.indexOf(NL, start)) {
      if (fast && readLine(chunk, start, nl, f) === OK && f.version === this.expected) {
        s.lines++;
        s.segments[s.segments.length - 1]!.last = f.version;
        s.last = f.version;
        s.lastTimestamp = f.timestamp;
        this.expected = f.version + 1;
      } else this.line(chunk, start, nl);
      start = nl + 1;
    }
    this.lines.keep(chunk, start);
  }

  finish(): ChangelogScan {
    if (this.lines.end()) {
      this.scan.truncatedLastLine = true;
      this.scan.lines += 1;
      this.problem(this.scan.lines, 'cut-last-line', 'last line is cut off (no newline at end of file)');
    }
    return this.scan;
  }

  private problem(line: number, kind: ChangelogProblemKind, reason: string): void {
    if (this.scan.problems.length >= MAX_PROBLEMS) return;
    this.scan.problems.push({ kind, line, reason });
    this.positions?.problemsAfter.push(this.expected === undefined ? undefined : this.expected - 1);
  }

  private line(buf: Buffer, from: number, to: number): void {
    const lineNo = ++this.scan.lines;
    this.lineStart = this.nextStart;
    this.nextStart += to - from + 1;
    const verdict = readLine(buf, from, to, this.fields);
    if (verdict === UNPARSABLE) this.problem(lineNo, 'unparsable', 'unparsable line');
    // Never quote the line: a changelog holds file names, and a message goes to logs and terminals.
    else if (verdict === DAMAGED)
      this.problem(lineNo, 'damaged', `unparsable line (cut off or damaged) at version ${this.fields.version}`);
    else this.accept(lineNo, this.fields.version, this.fields.timestamp);
  }

  private accept(lineNo: number, version: number, timestamp: number): void {
    const s = this.scan;
    if (this.expected !== undefined && version !== this.expected) {
      if (version < this.expected) {
        if (version === this.expected - 1) this.problem(lineNo, 'repeated', `version ${version} repeated`);
        else this.problem(lineNo, 'backwards', `version ${version} goes backwards (after ${this.expected - 1})`);
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
    const p = this.positions;
    if (!p) return;
    const start = this.lineStart;
    if (s.segments.length > p.runs.length)
      p.runs.push({ first: version, last: version, start, lastStart: start, end: 0 });
    const current = p.runs[p.runs.length - 1]!;
    current.last = version;
    current.lastStart = start;
    current.end = this.nextStart;
    if (this.passTime !== undefined && !p.passed && timestamp > this.passTime) p.passed = { version, start };
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

/**
 * Reads a changelog file's lines in order, each parsed by the one parser: `onLine` gets the line's bytes
 * (without newline; valid until the call returns) and its parse (undefined: not a well-formed line), and
 * returns false to stop. `flush` runs after every chunk (a caller writes what it collected). The bytes
 * after the last newline (a cut last line) come last, flagged `cut`.
 */
export async function readChangelogLines(
  file: string,
  onLine: (raw: Buffer, line: ChangelogEntry | undefined, cut: boolean) => boolean,
  o: { flush?: () => Promise<void>; signal?: AbortSignal } = {},
): Promise<void> {
  let going = true;
  const splitter = new LineSplitter((buf, from, to) => {
    if (going) going = onLine(buf.subarray(from, to), parseChangelogBytes(buf, from, to), false);
  });
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of input) {
      if (o.signal?.aborted) throw o.signal.reason;
      splitter.push(chunk as Buffer);
      await o.flush?.();
      if (!going) return;
    }
    const rest = splitter.end();
    if (rest && going) onLine(rest, parseChangelogBytes(rest), true);
    await o.flush?.();
  } finally {
    input.destroy();
  }
}
