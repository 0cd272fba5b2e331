import type { FileHandle } from 'node:fs/promises';
import { ChainError } from '../../core/errors.js';

/**
 * The chunk section of an `MFSM 1.5` image (1.5.x and 1.6.x; mfsmaster/filesystem.c fs_store + chunks.c
 * chunk_store of 1.5.12 and 1.6.4, byte for byte the same): after the 8-byte magic come the header
 * (maxnodeid u32, version u64, nextsessionid u32), the nodes (each a type byte and its fields; a 0 byte
 * ends them), the edges (parent u32, child u32, name length u16, name; an all-zero 10 bytes ends them),
 * the free inodes (count u32, then id u32 + ftime u32 each), and last the chunks: nextchunkid u64, then
 * 16-byte records (chunkid u64, version u32, lockedto u32) ending in an all-zero record at the end of the
 * file. Everything big-endian. The only way to the chunk section is through every record before it.
 */
export interface ChunkSection {
  /** Byte offset of nextchunkid in the file. */
  nextChunkIdAt: number;
  nextChunkId: bigint;
  chunks: number;
  /** 0n when there are none. */
  maxChunkId: bigint;
  /** Chunks whose lockedto is at or after `lockedAt` (seconds): a master refuses writes to them until then. */
  locked: number;
  /** The latest lockedto among them (seconds), 0 when none. */
  lockedUntil: number;
}

const MAGIC = 'MFSM 1.5';
const HEADER = 8 + 4 + 8 + 4;
/** Bytes after the type byte: id, goal, mode, uid, gid, atime, mtime, ctime, trashtime. */
const NODE_COMMON = 4 + 1 + 2 + 4 * 6;
const CHUNK_RECORD = 16;

/**
 * Forward reads of a file through one buffer: the image may be far larger than memory wants to hold. `at(n)`
 * gives the offset in `buf` of the next `n` bytes; only a refill awaits, and no record allocates anything
 * (a million-file image walks in ~0.3 s).
 */
class Reader {
  buf = Buffer.alloc(1 << 20);
  private start = 0;
  private end = 0;
  pos: number;

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    private readonly file: string,
    from: number,
  ) {
    this.pos = from;
  }

  /** Offset in `buf` of the next `n` bytes, consumed; a Promise only when the buffer must be refilled. */
  at(n: number, what: string): number | Promise<number> {
    if (this.pos < this.start || this.pos + n > this.end) return this.fill(n, what);
    this.pos += n;
    return this.pos - n - this.start;
  }

  skip(n: number, what: string): void {
    if (this.pos + n > this.size) throw this.short(what);
    this.pos += n;
  }

  private async fill(n: number, what: string): Promise<number> {
    if (this.pos + n > this.size) throw this.short(what);
    if (n > this.buf.length) this.buf = Buffer.alloc(n);
    const { bytesRead } = await this.handle.read(
      this.buf,
      0,
      Math.min(this.buf.length, this.size - this.pos),
      this.pos,
    );
    this.start = this.pos;
    this.end = this.pos + bytesRead;
    if (this.end < this.pos + n) throw new ChainError(this.file, `${this.file}: short read at byte ${this.pos}`);
    this.pos += n;
    return 0;
  }

  private short(what: string): ChainError {
    return new ChainError(this.file, `${this.file}: MFSM 1.5 image ends inside ${what} at byte ${this.pos}`);
  }
}

const DIR_LIKE = new Set([0x64, 0x73, 0x71]); // d s q
const DEVICE = new Set([0x62, 0x63]); // b c
const SYMLINK = 0x6c; // l
const FILE_LIKE = new Set([0x66, 0x74, 0x72]); // f t r (file, trash, reserved)

/** Walk an `MFSM 1.5` image to its chunk section and check that section is exactly what chunk_load accepts. */
export async function readChunkSection(handle: FileHandle, file: string, lockedAt: number): Promise<ChunkSection> {
  const { size } = await handle.stat();
  const r = new Reader(handle, size, file, 0);
  let o = await r.at(HEADER, 'the header');
  const magic = r.buf.toString('latin1', o, o + 8);
  if (magic !== MAGIC) throw new ChainError(file, `${file}: not an ${MAGIC} image (header "${magic}")`);
  for (;;) {
    const next = r.at(1, 'a node');
    o = typeof next === 'number' ? next : await next;
    const type = r.buf[o]!;
    if (type === 0) break;
    if (DIR_LIKE.has(type)) r.skip(NODE_COMMON, 'a node');
    else if (DEVICE.has(type)) r.skip(NODE_COMMON + 4, 'a node');
    else if (type === SYMLINK) {
      const next = r.at(NODE_COMMON + 4, 'a node');
      o = typeof next === 'number' ? next : await next;
      r.skip(r.buf.readUInt32BE(o + NODE_COMMON), 'a symlink path');
    } else if (FILE_LIKE.has(type)) {
      const next = r.at(NODE_COMMON + 8 + 4 + 2, 'a node');
      o = typeof next === 'number' ? next : await next;
      r.skip(8 * r.buf.readUInt32BE(o + NODE_COMMON + 8) + 4 * r.buf.readUInt16BE(o + NODE_COMMON + 12), 'a node');
    } else throw new ChainError(file, `${file}: unknown node type 0x${type.toString(16)} at byte ${r.pos - 1}`);
  }
  for (;;) {
    const next = r.at(10, 'an edge');
    o = typeof next === 'number' ? next : await next;
    if (r.buf.readUInt32BE(o) === 0 && r.buf.readUInt32BE(o + 4) === 0) break;
    r.skip(r.buf.readUInt16BE(o + 8), 'an edge name');
  }
  o = await r.at(4, 'the free inodes');
  r.skip(8 * r.buf.readUInt32BE(o), 'the free inodes');
  const nextChunkIdAt = r.pos;
  o = await r.at(8, 'the chunk section');
  const nextChunkId = r.buf.readBigUInt64BE(o);
  const records = size - r.pos;
  if (records < CHUNK_RECORD || records % CHUNK_RECORD !== 0) {
    const why = `${records} bytes, not whole 16-byte records ending the file`;
    throw new ChainError(file, `${file}: chunk section at byte ${nextChunkIdAt} is ${why}`);
  }
  // The largest id as two 32-bit halves: no BigInt per record.
  let maxHi = 0;
  let maxLo = 0;
  const section: ChunkSection = { nextChunkIdAt, nextChunkId, chunks: 0, maxChunkId: 0n, locked: 0, lockedUntil: 0 };
  for (let left = records / CHUNK_RECORD; left > 0; left--) {
    const next = r.at(CHUNK_RECORD, 'a chunk record');
    o = typeof next === 'number' ? next : await next;
    const hi = r.buf.readUInt32BE(o);
    const lo = r.buf.readUInt32BE(o + 4);
    const end = hi === 0 && lo === 0;
    if (end !== (left === 1)) {
      const why = end ? 'end record before the end' : 'no end record';
      throw new ChainError(file, `${file}: chunk record at byte ${r.pos - CHUNK_RECORD}: ${why}`);
    }
    if (end) break;
    section.chunks++;
    if (hi > maxHi || (hi === maxHi && lo > maxLo)) [maxHi, maxLo] = [hi, lo];
    const lockedto = r.buf.readUInt32BE(o + 12);
    if (lockedto >= lockedAt) {
      section.locked++;
      section.lockedUntil = Math.max(section.lockedUntil, lockedto);
    }
  }
  section.maxChunkId = (BigInt(maxHi) << 32n) | BigInt(maxLo);
  if (nextChunkId <= section.maxChunkId) {
    throw new ChainError(
      file,
      `${file}: next chunk id ${nextChunkId} is not past the image's own chunk ${section.maxChunkId}`,
    );
  }
  return section;
}

/**
 * Raise an `MFSM 1.5` image's nextchunkid by `by`: written in place over the 8 bytes the walk found, fsynced,
 * read back. Only for a file root alone can reach (the caller's private copy), never one in a DATA_PATH.
 */
export async function raiseNextChunkId(
  handle: FileHandle,
  file: string,
  by: bigint,
  lockedAt: number,
): Promise<ChunkSection> {
  const section = await readChunkSection(handle, file, lockedAt);
  const to = section.nextChunkId + by;
  if (by <= 0n || to >= 1n << 64n)
    throw new ChainError(file, `${file}: next chunk id ${section.nextChunkId} + ${by} out of bounds`);
  const { size } = await handle.stat();
  const field = Buffer.alloc(8);
  field.writeBigUInt64BE(to);
  const { bytesWritten } = await handle.write(field, 0, 8, section.nextChunkIdAt);
  if (bytesWritten !== 8) throw new ChainError(file, `${file}: short write of the next chunk id`);
  await handle.sync();
  const back = Buffer.alloc(8);
  await handle.read(back, 0, 8, section.nextChunkIdAt);
  if (!back.equals(field) || (await handle.stat()).size !== size) {
    throw new ChainError(file, `${file}: next chunk id did not read back as ${to}`);
  }
  return { ...section, nextChunkId: to };
}
