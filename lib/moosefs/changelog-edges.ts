import type { FileSource } from '../transport/remote.js';
import { MAX_LINE, parseChangelogBytes, type ChangelogEntry } from './changelog.js';

/**
 * The first and last whole line of a changelog, read from its edges only (never the whole file): what
 * promote, the warm standby's mirror, backup and a 1.x master's version read before deciding to fetch.
 * A line is what the scanner accepts (changelog.ts); a last line without its newline is still being
 * written (or was cut) and does not count. Undefined edge: that line is not a changelog line.
 */
export interface ChangelogEdges {
  first?: ChangelogEntry;
  last?: ChangelogEntry;
}

/**
 * The one window policy: 4 KiB first (a changelog line is about 100 bytes, and promote reads the edges of
 * every file of every source), then MAX_LINE when the window holds no whole line (a longer one is damage).
 */
export const EDGE_WINDOWS: readonly number[] = [4096, MAX_LINE];

const NL = 0x0a;

/** An edge read from a window: `whole` false when the window holds no whole line to judge. */
export interface EdgeLine {
  line?: ChangelogEntry;
  whole: boolean;
}

/** The first line in `head`, the first bytes of a file. */
export function firstLineIn(head: Buffer): EdgeLine {
  const nl = head.indexOf(NL);
  if (nl === -1) return { whole: false };
  return { line: parseChangelogBytes(head, 0, nl), whole: true };
}

/** The last whole line in `tail`, the last bytes of a file (`fromStart`: they are the whole file). */
export function lastLineIn(tail: Buffer, fromStart: boolean): EdgeLine {
  const end = tail.lastIndexOf(NL);
  if (end === -1) return { whole: false };
  const prev = end === 0 ? -1 : tail.lastIndexOf(NL, end - 1);
  // Without a newline before it, the line may begin before the window.
  if (prev === -1 && !fromStart) return { whole: false };
  return { line: parseChangelogBytes(tail, prev + 1, end), whole: true };
}

/** Read a changelog's edges (`which`: only the head, or only the tail) through the window policy. */
export async function readChangelogEdges(
  files: Pick<FileSource, 'readRange'>,
  file: string,
  size: number,
  which: { head: boolean; tail: boolean } = { head: true, tail: true },
): Promise<ChangelogEdges> {
  const edges: ChangelogEdges = {};
  if (size === 0) return edges;
  let whole: Buffer | undefined;
  const read = async (start: number, length: number) => {
    if (length === size) return (whole ??= await files.readRange(file, 0, size));
    return files.readRange(file, start, length);
  };
  for (const window of EDGE_WINDOWS) {
    const length = Math.min(size, window);
    const lastWindow = length === size || window === EDGE_WINDOWS[EDGE_WINDOWS.length - 1];
    if (which.head && !('first' in edges)) {
      const found = firstLineIn(await read(0, length));
      if (found.whole || lastWindow) edges.first = found.line;
    }
    if (which.tail && !('last' in edges)) {
      const found = lastLineIn(await read(size - length, length), length === size);
      if (found.whole || lastWindow) edges.last = found.line;
    }
    if (lastWindow) break;
  }
  return edges;
}

/** The metaid a `SETMETAID(n)` line sets (the start of a filesystem's history), as mfscli prints it (hex). */
export function metaidSetBy(line: ChangelogEntry): string | undefined {
  if (line.op !== 'SETMETAID' || !/^\d+$/.test(line.args)) return undefined;
  return BigInt(line.args).toString(16).toUpperCase().padStart(16, '0');
}
