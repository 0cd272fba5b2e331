import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { raiseNextChunkId, readChunkSection } from '../../../lib/moosefs/generations/mfsm-1.5-chunks.js';

/**
 * `MFSM 1.5` images as 1.6.4's fs_store + chunk_store write them (mfsmaster/filesystem.c, chunks.c), record by
 * record; the lab test (test/failover/vip-failover-generations.test.ts) runs the walk on what the real
 * mfsmetarestore wrote and starts the real mfsmaster from the raised image.
 */
const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const common = (id: number) =>
  Buffer.concat([u32(id), u8(1), u16(0o755), u32(0), u32(0), u32(1), u32(2), u32(3), u32(86400)]);
const node = {
  dir: (id: number) => Buffer.concat([Buffer.from('d'), common(id)]),
  fifo: (id: number) => Buffer.concat([Buffer.from('q'), common(id)]),
  dev: (id: number) => Buffer.concat([Buffer.from('b'), common(id), u32(0x0801)]),
  link: (id: number, to: string) => Buffer.concat([Buffer.from('l'), common(id), u32(to.length), Buffer.from(to)]),
  file: (id: number, type: 'f' | 't' | 'r', chunks: bigint[], sessions: number[]) =>
    Buffer.concat([
      Buffer.from(type),
      common(id),
      u64(123456n),
      u32(chunks.length),
      u16(sessions.length),
      ...chunks.map(u64),
      ...sessions.map(u32),
    ]),
};
const edge = (parent: number, child: number, name: string) =>
  Buffer.concat([u32(parent), u32(child), u16(name.length), Buffer.from(name)]);
const chunk = (id: bigint, version: number, lockedto: number) => Buffer.concat([u64(id), u32(version), u32(lockedto)]);

function image(o: { nextChunkId: bigint; chunks: Buffer[]; free?: number }): { bytes: Buffer; nextChunkIdAt: number } {
  const head = Buffer.concat([
    Buffer.from('MFSM 1.5'),
    u32(9),
    u64(1234n),
    u32(7),
    node.dir(1),
    node.file(2, 'f', [5n, 0n, 7n], [3, 4]),
    node.link(3, 'some/where'),
    node.dev(4),
    node.fifo(5),
    node.file(6, 't', [], []),
    node.file(8, 'r', [9n], [11]),
    u8(0),
    edge(1, 2, 'file'),
    edge(1, 3, 'link'),
    edge(1, 4, 'sda1'),
    edge(1, 5, 'fifo'),
    edge(0, 6, 'deleted'),
    edge(0, 8, 'reserved'),
    Buffer.alloc(10),
    u32(o.free ?? 1),
    ...Array.from({ length: o.free ?? 1 }, (_, i) => Buffer.concat([u32(20 + i), u32(100)])),
  ]);
  return {
    bytes: Buffer.concat([head, u64(o.nextChunkId), ...o.chunks, Buffer.alloc(16)]),
    nextChunkIdAt: head.length,
  };
}

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfsm15-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function withImage<T>(bytes: Buffer, use: (handle: fs.FileHandle, file: string) => Promise<T>): Promise<T> {
  const file = path.join(dir, `metadata-${Math.random().toString(16).slice(2)}.mfs`);
  await fs.writeFile(file, bytes);
  const handle = await fs.open(file, 'r+');
  try {
    return await use(handle, file);
  } finally {
    await handle.close();
  }
}

describe('MFSM 1.5 chunk section', () => {
  const now = 1_800_000_000;
  const chunks = [chunk(5n, 1, 0), chunk(9n, 2, now + 60), chunk(7n, 1, now - 1)];

  test('the walk finds nextchunkid past nodes of every type, edges and free inodes, and counts the chunks', async () => {
    const { bytes, nextChunkIdAt } = image({ nextChunkId: 10n, chunks, free: 1500 });
    const section = await withImage(bytes, (h, f) => readChunkSection(h, f, now));
    expect(section).toEqual({
      nextChunkIdAt,
      nextChunkId: 10n,
      chunks: 3,
      maxChunkId: 9n,
      locked: 1,
      lockedUntil: now + 60,
    });
  });

  test('raising rewrites only the 8 bytes of nextchunkid', async () => {
    const { bytes, nextChunkIdAt } = image({ nextChunkId: 10n, chunks });
    await withImage(bytes, async (h, f) => {
      expect((await raiseNextChunkId(h, f, 1n << 32n, now)).nextChunkId).toBe(10n + (1n << 32n));
      const after = await fs.readFile(f);
      expect(after.length).toBe(bytes.length);
      expect(after.readBigUInt64BE(nextChunkIdAt)).toBe(10n + (1n << 32n));
      after.writeBigUInt64BE(10n, nextChunkIdAt);
      expect(after.equals(bytes)).toBe(true);
    });
  });

  test('an empty filesystem: no chunks, nextchunkid 1', async () => {
    const bytes = Buffer.concat([
      Buffer.from('MFSM 1.5'),
      u32(1),
      u64(1n),
      u32(1),
      node.dir(1),
      u8(0),
      Buffer.alloc(10),
      u32(0),
      u64(1n),
      Buffer.alloc(16),
    ]);
    expect(await withImage(bytes, (h, f) => readChunkSection(h, f, now))).toMatchObject({
      nextChunkIdAt: 71,
      nextChunkId: 1n,
      chunks: 0,
    });
  });

  test.each([
    ['cut inside the chunk records', (b: Buffer) => b.subarray(0, b.length - 20), /not whole 16-byte records/],
    ['cut inside the nodes', (b: Buffer) => b.subarray(0, 60), /ends inside a node/],
    ['no end record', (b: Buffer) => b.subarray(0, b.length - 16), /no end record/],
    ['bytes after the end record', (b: Buffer) => Buffer.concat([b, chunk(11n, 1, 0)]), /end record before the end/],
    [
      'an unknown node type',
      (b: Buffer) => Buffer.concat([b.subarray(0, 24), Buffer.from('x'), b.subarray(25)]),
      /unknown node type 0x78 at byte 24/,
    ],
    ['another magic', (b: Buffer) => Buffer.concat([Buffer.from('MFSM 2.0'), b.subarray(8)]), /not an MFSM 1\.5 image/],
  ])('refused, nothing written: %s', async (_what, damage, message) => {
    const bytes = damage(image({ nextChunkId: 10n, chunks }).bytes);
    await withImage(bytes, async (h, f) => {
      await expect(raiseNextChunkId(h, f, 1n << 32n, now)).rejects.toThrow(message);
      expect((await fs.readFile(f)).equals(bytes)).toBe(true);
    });
  });

  test('refused: a next chunk id not past the chunks the image holds (not an image this walk understands)', async () => {
    const { bytes } = image({ nextChunkId: 9n, chunks });
    await withImage(bytes, (h, f) =>
      expect(readChunkSection(h, f, now)).rejects.toThrow(/next chunk id 9 is not past the image's own chunk 9/),
    );
  });

  test('refused: a raise past 64 bits', async () => {
    const { bytes } = image({ nextChunkId: (1n << 64n) - 5n, chunks });
    await withImage(bytes, (h, f) => expect(raiseNextChunkId(h, f, 10n, now)).rejects.toThrow(/out of bounds/));
  });
});
