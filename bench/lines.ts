/**
 * Changelog text for benchmark metadata, in MooseFS 3.0's own line format (seen on a real master:
 * `3: 1795647011|CREATE(1,d,2,511,18,0,0,0):2`). Pure functions: the same parameters always give the
 * same bytes, so generated data can be cached and checked.
 *
 * The namespace is a fixed tree: TOP_DIRS under the root, DIRS_PER_TOP leaf directories in each,
 * FILES_PER_DIR files in each leaf. A brand-new master hands out inodes 2, 3, 4 … in CREATE order,
 * which is what lets a generated changelog replay (mfsmaster checks every `:inode` result).
 */
export const FILES_PER_DIR = 1000;
export const DIRS_PER_TOP = 100;
const ROOT = 1;
const FILE_MODE = 438; // 0666, umask 022 → 0644, as `touch` sends it
const DIR_MODE = 511;
const UMASK = 18;

export interface Layout {
  files: number;
  leafDirs: number;
  topDirs: number;
  /** Lines (= versions) the namespace takes, SETMETAID included. */
  lines: number;
}

export function layout(files: number): Layout {
  const leafDirs = Math.ceil(files / FILES_PER_DIR);
  const topDirs = Math.ceil(leafDirs / DIRS_PER_TOP);
  return { files, leafDirs, topDirs, lines: 1 + topDirs + leafDirs + files };
}

const INODES_PER_LEAF = 1 + FILES_PER_DIR;
const INODES_PER_TOP = 1 + DIRS_PER_TOP * INODES_PER_LEAF;

/** Inode of top directory `top` (0-based), given the CREATE order top, leaf, its files, next leaf … */
export function topInode(top: number): number {
  return 2 + top * INODES_PER_TOP;
}

export function leafInode(leaf: number): number {
  return topInode(Math.floor(leaf / DIRS_PER_TOP)) + 1 + (leaf % DIRS_PER_TOP) * INODES_PER_LEAF;
}

export function fileInode(file: number): number {
  return leafInode(Math.floor(file / FILES_PER_DIR)) + 1 + (file % FILES_PER_DIR);
}

export const fileName = (file: number): string => `file${file % FILES_PER_DIR}.dat`;

/** Versions advance this many lines per second of changelog time: a busy but plausible master. */
export const LINES_PER_SECOND = 2000;

/** A chunk-wise writer of numbered lines: `VERSION: TIME|TEXT`. */
export class LineNumberer {
  private version: number;
  constructor(
    firstVersion: number,
    private readonly startTime: number,
  ) {
    this.version = firstVersion;
  }
  get next(): number {
    return this.version;
  }
  /** Unix time of the next line. */
  get time(): number {
    return this.startTime + Math.floor(this.version / LINES_PER_SECOND);
  }
  line(text: string): string {
    const time = this.time;
    return `${this.version++}: ${time}|${text}\n`;
  }
}

/**
 * The namespace as changelog text, in chunks of about `chunkLines` lines (a generator, so 10M files
 * never sit in memory at once). Version 1 is SETMETAID, as on a fresh master.
 */
export function* namespaceChunks(
  files: number,
  metaid: bigint,
  startTime: number,
  chunkLines = 50_000,
): Generator<string> {
  const n = new LineNumberer(1, startTime);
  let chunk = n.line(`SETMETAID(${metaid})`);
  let count = 1;
  const flush = function* () {
    if (count >= chunkLines) {
      yield chunk;
      chunk = '';
      count = 0;
    }
  };
  const { leafDirs } = layout(files);
  for (let leaf = 0; leaf < leafDirs; leaf++) {
    const top = Math.floor(leaf / DIRS_PER_TOP);
    if (leaf % DIRS_PER_TOP === 0) {
      chunk += n.line(`CREATE(${ROOT},top${top},2,${DIR_MODE},${UMASK},0,0,0):${topInode(top)}`);
      count++;
    }
    const dir = leafInode(leaf);
    chunk += n.line(`CREATE(${topInode(top)},dir${leaf % DIRS_PER_TOP},2,${DIR_MODE},${UMASK},0,0,0):${dir}`);
    count++;
    const last = Math.min(files, (leaf + 1) * FILES_PER_DIR);
    for (let f = leaf * FILES_PER_DIR; f < last; f++) {
      chunk += n.line(`CREATE(${dir},${fileName(f)},1,${FILE_MODE},${UMASK},0,0,0):${dir + 1 + (f % FILES_PER_DIR)}`);
      count++;
      yield* flush();
    }
  }
  if (chunk) yield chunk;
}

/**
 * Everyday churn on an existing namespace — touch (ATTR), truncate/extend (LENGTH), rename there and
 * back (MOVE) — lines that replay on the namespace above without growing it, so a master can hold
 * the result of a gigabyte of changelog. Deterministic (xorshift picks the files).
 */
export class ChurnWriter {
  private readonly renamed: Uint8Array;
  private state = 2463534242;
  private readonly n: LineNumberer;

  constructor(
    private readonly files: number,
    firstVersion: number,
    startTime: number,
  ) {
    this.renamed = new Uint8Array(files);
    this.n = new LineNumberer(firstVersion, startTime);
  }

  get nextVersion(): number {
    return this.n.next;
  }

  /** xorshift32: cheap, and unlike a plain LCG its low bits are usable for `% files`. */
  private random(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  line(): string {
    const r = this.random();
    const f = r % this.files;
    const ino = fileInode(f);
    const time = this.n.time;
    switch ((r >>> 24) % 4) {
      case 0:
      case 1:
        return this.n.line(`ATTR(${ino},420,0,0,${time},${time},0,0)`);
      case 2:
        return this.n.line(`LENGTH(${ino},${(r >>> 8) % 65536},1)`);
      default: {
        const parent = leafInode(Math.floor(f / FILES_PER_DIR));
        const plain = fileName(f);
        const moved = `${plain}.part`;
        const [from, to] = this.renamed[f] ? [moved, plain] : [plain, moved];
        this.renamed[f]! ^= 1;
        return this.n.line(`MOVE(${parent},${from},${parent},${to}):${ino}`);
      }
    }
  }

  /** About `bytes` of lines (whole lines, at least one). */
  chunk(bytes: number): string {
    let out = '';
    while (out.length < bytes) out += this.line();
    return out;
  }
}
