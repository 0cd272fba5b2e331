import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { changelogCheck, imageChecks, wholeLines, type Check } from '../../../lib/backup/stream-checks.js';
import { ChainError } from '../../../lib/core/errors.js';
import type { ChangelogScan } from '../../../lib/moosefs/changelog.js';
import { EOF_MARKER, IMAGE_MAGIC, parseImageHeader } from '../../../lib/moosefs/metadata.js';
import type { StoredSnapshot } from '../../../lib/store/manifest.js';
import { openSnapshotFile, storeStream } from '../../../lib/store/stored-file.js';
import { RING, RingReader } from '../../../lib/transport/bounded.js';

/**
 * Backup's one pass (issue 28): a source file's bytes checked as they stream into the store (real zstd, real
 * files). A check that refuses leaves nothing in the stage; a good file reads back byte for byte.
 */

const ZSTD = { compression: { type: 'zstd' as const, level: 3 } };
const SNAP = { id: '20260501T100000Z-v12', image: { metaid: 'AB' } };

function image(version: number, body = randomBytes(3 << 20)): Buffer {
  const head = Buffer.alloc(24);
  head.write(IMAGE_MAGIC, 0, 'latin1');
  head.writeBigUInt64BE(BigInt(version), 8);
  head.writeBigUInt64BE(0xabn, 16);
  return Buffer.concat([head, body, Buffer.from(EOF_MARKER, 'latin1')]);
}

function changelog(from: number, count: number): Buffer {
  const lines: string[] = [];
  for (let v = from; v < from + count; v++) lines.push(`${v}: 1700000000|ACCESS(${v})\n`);
  return Buffer.from(lines.join(''), 'latin1');
}

/** `bytes` in pieces of `piece` bytes (a stream's chunks, split anywhere). */
async function* chunks(bytes: Buffer, piece = 65536): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += piece) yield bytes.subarray(at, at + piece);
}

function through(bytes: Buffer, checks: Check[], piece?: number): AsyncIterable<Buffer> {
  let it: AsyncIterable<Buffer> = chunks(bytes, piece);
  for (const c of checks) it = c(it);
  return it;
}

const label = 'master:/var/lib/mfs/metadata.mfs.back';
const want = (version: number) => ({
  path: '/var/lib/mfs/metadata.mfs.back',
  label,
  header: parseImageHeader(image(version, Buffer.alloc(0)), 'x'),
  changed: (m: string) => new Error(`changed: ${m}`),
});
const entry = (name: string, role: 'image' | 'changelog') => ({
  name,
  role,
  sourcePath: `/var/lib/mfs/${name}`,
  sourceSize: 0,
  sourceMtimeMs: 0,
});

describe('backup stream checks: a file checked and stored as it arrives', () => {
  let stage: string;
  beforeEach(async () => {
    stage = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-onepass-'));
  });
  afterEach(async () => {
    await fs.rm(stage, { recursive: true, force: true });
  });

  test('a good image: stored as .zst, its sha256 of the plain bytes, read back byte for byte', async () => {
    const bytes = image(1234);
    const f = await storeStream(
      stage,
      entry('metadata.mfs.back', 'image'),
      through(bytes, [imageChecks(want(1234))]),
      ZSTD,
      SNAP,
    );
    expect(await fs.readdir(stage)).toEqual(['metadata.mfs.back.zst']);
    expect(f.size).toBe(bytes.length);
    expect(f.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(Buffer.from(f.stored!.tail!, 'base64').equals(bytes.subarray(-4096))).toBe(true);
    const parts: Buffer[] = [];
    const snap = { id: SNAP.id, dir: stage, manifest: { id: SNAP.id, image: SNAP.image } } as unknown as StoredSnapshot;
    for await (const c of openSnapshotFile(snap, f)) parts.push(c as Buffer);
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
  });

  test('an image without its ending (cut off): refused naming the ending, nothing left in the stage', async () => {
    const bytes = image(1234).subarray(0, 2 << 20);
    const p = storeStream(
      stage,
      entry('metadata.mfs.back', 'image'),
      through(bytes, [imageChecks(want(1234))]),
      ZSTD,
      SNAP,
    );
    await expect(p).rejects.toThrow(ChainError);
    await expect(p).rejects.toThrow(`${label}: copy rejected: metadata image has no "[MFS EOF MARKER]" ending`);
    expect(await fs.readdir(stage)).toEqual([]);
  });

  test('a bad header: refused from the first bytes (the rest is not read), nothing left', async () => {
    const bytes = Buffer.concat([Buffer.from('GARBAGE!'), image(1234).subarray(8)]);
    let read = 0;
    const counting: Check = async function* (input) {
      for await (const c of input) {
        read += c.length;
        yield c;
      }
    };
    const p = storeStream(
      stage,
      entry('metadata.mfs.back', 'image'),
      through(bytes, [counting, imageChecks(want(1234))]),
      ZSTD,
      SNAP,
    );
    await expect(p).rejects.toThrow(`${label}: copy rejected: not a MooseFS metadata image (header "GARBAGE!"`);
    expect(read).toBeLessThanOrEqual(65536);
    expect(await fs.readdir(stage)).toEqual([]);
  });

  test('another version than the listing read: the source changed (its own error), nothing left', async () => {
    const p = storeStream(
      stage,
      entry('metadata.mfs.back', 'image'),
      through(image(1300), [imageChecks(want(1234))]),
      ZSTD,
      SNAP,
    );
    await expect(p).rejects.toThrow(
      'changed: master:/var/lib/mfs/metadata.mfs.back: header changed during the copy (version 1234 → 1300)',
    );
    expect(await fs.readdir(stage)).toEqual([]);
  });

  test('a changelog with a line cut in the middle (truncated, then appended to): refused, nothing left', async () => {
    const good = changelog(100, 50000);
    const cutAt = good.indexOf('\n', 500000) - 7;
    const bytes = Buffer.concat([good.subarray(0, cutAt), good.subarray(good.indexOf('\n', cutAt) + 1)]);
    const out: { scan?: ChangelogScan } = {};
    const refuse = (scan: ChangelogScan) => {
      if (scan.problems[0])
        throw new ChainError('x', `changelog.1.mfs:${scan.problems[0].line}: ${scan.problems[0].reason}`);
    };
    const cut = { bytes: 0 };
    const p = storeStream(
      stage,
      entry('changelog.1.mfs', 'changelog'),
      through(bytes, [wholeLines(cut), changelogCheck('changelog.1.mfs', out, refuse)], 100000),
      ZSTD,
      SNAP,
    );
    await expect(p).rejects.toThrow(
      /^changelog\.1\.mfs:\d+: unparsable line \(cut off or damaged\)|^changelog\.1\.mfs:\d+: unparsable line/,
    );
    expect(await fs.readdir(stage)).toEqual([]);
  });

  test("a changelog's cut last line (being written) is held back and left out; the rest is stored whole", async () => {
    const good = changelog(100, 30000);
    const bytes = Buffer.concat([good, Buffer.from('30100: 17000000')]);
    const out: { scan?: ChangelogScan } = {};
    const cut = { bytes: 0 };
    const f = await storeStream(
      stage,
      entry('changelog.0.mfs', 'changelog'),
      through(bytes, [wholeLines(cut), changelogCheck('changelog.0.mfs', out, () => undefined)], 7777),
      ZSTD,
      SNAP,
    );
    expect(cut.bytes).toBe(15);
    expect(f.size).toBe(good.length);
    expect(f.sha256).toBe(createHash('sha256').update(good).digest('hex'));
    expect(out.scan).toMatchObject({ first: 100, last: 30099, problems: [] });
  });

  // Issue 28: a local source is read into reused buffers (RingReader), each chunk a view rewritten a few chunks
  // later. Files many rings long, and a changelog whose cut parts (held by wholeLines) span chunks: every byte
  // stored must still be the file's.
  test('read through a RingReader (reused buffers): an image and a changelog stored byte for byte', async () => {
    const src = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-ring-'));
    try {
      const snap = {
        id: SNAP.id,
        dir: stage,
        manifest: { id: SNAP.id, image: SNAP.image },
      } as unknown as StoredSnapshot;
      const readBack = async (f: Awaited<ReturnType<typeof storeStream>>) => {
        const parts: Buffer[] = [];
        for await (const c of openSnapshotFile(snap, f)) parts.push(c as Buffer);
        return Buffer.concat(parts);
      };
      const ring = async (name: string, bytes: Buffer) => {
        await fs.writeFile(path.join(src, name), bytes);
        const limits = { host: 'm', what: name, bound: { size: bytes.length }, idleSeconds: 30 };
        return new RingReader(await fs.open(path.join(src, name)), limits);
      };
      const img = image(77, randomBytes(RING.buffers * RING.bytes * 2 + 12345));
      const fi = await storeStream(
        stage,
        entry('metadata.mfs.back', 'image'),
        imageChecks(want(77))(await ring('metadata.mfs.back', img)),
        ZSTD,
        SNAP,
      );
      expect(fi.sha256).toBe(createHash('sha256').update(img).digest('hex'));
      expect((await readBack(fi)).equals(img)).toBe(true);
      // Lines of many lengths up to 2.5 MiB: some chunks hold no newline at all, so wholeLines holds them.
      const lines: Buffer[] = [];
      for (let v = 1; v <= 16; v++) {
        const filler = 'x'.repeat(v % 5 === 0 ? (5 << 19) - v * 1000 : 150000 + v);
        lines.push(Buffer.from(`${v}: 1700000000|ACCESS(${v}) ${filler}\n`, 'latin1'));
      }
      const good = Buffer.concat(lines);
      const cut = { bytes: 0 };
      const fc = await storeStream(
        stage,
        entry('changelog.0.mfs', 'changelog'),
        wholeLines(cut)(await ring('changelog.0.mfs', Buffer.concat([good, Buffer.from('17: 17000')]))),
        ZSTD,
        SNAP,
      );
      expect(cut.bytes).toBe(9);
      expect(fc.sha256).toBe(createHash('sha256').update(good).digest('hex'));
      expect((await readBack(fc)).equals(good)).toBe(true);
    } finally {
      await fs.rm(src, { recursive: true, force: true });
    }
  });
});
