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

/** Forward reads of a file through one buffer: the image may be far larger than memory wants to hold. */
class Reader {
  private buf = Buffer.alloc(1 << 20);
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

  /** The next `n` bytes (valid until the next call), or an error naming where the image ends too soon. */
  async take(n: number, what: string): Promise<Buffer> {
    if (this.pos + n > this.size)
      throw new ChainError(this.file, `${this.file}: MFSM 1.5 image ends inside ${what} at byte ${this.pos}`);
    if (this.pos < this.start || this.pos + n > this.end) {
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
    }
    const out = this.buf.subarray(this.pos - this.start, this.pos - this.start + n);
    this.pos += n;
    return out;
  }

  async skip(n: number, what: string): Promise<void> {
    if (this.pos + n > this.size)
      throw new ChainError(this.file, `${this.file}: MFSM 1.5 image ends inside ${what} at byte ${this.pos}`);
    this.pos += n;
  }
}

/** Walk an `MFSM 1.5` image to its chunk section and check that section is exactly what chunk_load accepts. */
export async function readChunkSection(handle: FileHandle, file: string, lockedAt: number): Promise<ChunkSection> {
  const { size } = await handle.stat();
  const r = new Reader(handle, size, file, 0);
  const magic = (await r.take(HEADER, 'the header')).subarray(0, 8).toString('latin1');
  if (magic !== MAGIC) throw new ChainError(file, `${file}: not an ${MAGIC} image (header "${magic}")`);
  for (;;) {
    const type = String.fromCharCode((await r.take(1, 'a node'))[0]!);
    if (type === '\0') break;
    if ('dsq'.includes(type)) await r.skip(NODE_COMMON, 'a node');
    else if ('bc'.includes(type)) await r.skip(NODE_COMMON + 4, 'a node');
    else if (type === 'l')
      await r.skip((await r.take(NODE_COMMON + 4, 'a node')).readUInt32BE(NODE_COMMON), 'a symlink path');
    else if ('ftr'.includes(type)) {
      const node = await r.take(NODE_COMMON + 8 + 4 + 2, 'a node');
      await r.skip(8 * node.readUInt32BE(NODE_COMMON + 8) + 4 * node.readUInt16BE(NODE_COMMON + 12), 'a node');
    } else
      throw new ChainError(
        file,
        `${file}: unknown node type 0x${type.charCodeAt(0).toString(16)} at byte ${r.pos - 1}`,
      );
  }
  for (;;) {
    const edge = await r.take(10, 'an edge');
    if (edge.readUInt32BE(0) === 0 && edge.readUInt32BE(4) === 0) break;
    await r.skip(edge.readUInt16BE(8), 'an edge name');
  }
  await r.skip(8 * (await r.take(4, 'the free inodes')).readUInt32BE(0), 'the free inodes');
  const nextChunkIdAt = r.pos;
  const nextChunkId = (await r.take(8, 'the chunk section')).readBigUInt64BE(0);
  const records = size - r.pos;
  if (records < CHUNK_RECORD || records % CHUNK_RECORD !== 0) {
    throw new ChainError(
      file,
      `${file}: chunk section at byte ${nextChunkIdAt} is ${records} bytes, not whole 16-byte records ending the file`,
    );
  }
  const section: ChunkSection = { nextChunkIdAt, nextChunkId, chunks: 0, maxChunkId: 0n, locked: 0, lockedUntil: 0 };
  for (let left = records / CHUNK_RECORD; left > 0; left--) {
    const rec = await r.take(CHUNK_RECORD, 'a chunk record');
    const id = rec.readBigUInt64BE(0);
    if ((id === 0n) !== (left === 1)) {
      throw new ChainError(
        file,
        `${file}: chunk record at byte ${r.pos - CHUNK_RECORD}: ${id === 0n ? 'end record before the end' : 'no end record'}`,
      );
    }
    if (id === 0n) break;
    section.chunks++;
    if (id > section.maxChunkId) section.maxChunkId = id;
    const lockedto = rec.readUInt32BE(12);
    if (lockedto >= lockedAt) {
      section.locked++;
      section.lockedUntil = Math.max(section.lockedUntil, lockedto);
    }
  }
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
