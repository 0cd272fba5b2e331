import { Readable } from 'node:stream';
import { TransferError } from '../../../lib/core/errors.js';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { boundedStream, ReadBoundError, RING, RingReader } from '../../../lib/transport/bounded.js';

const o = { host: 'ml1', what: 'ml1 (10.0.0.5:22): /var/lib/mfs/changelog_ml.0.mfs', idleSeconds: 0.2 };

async function drain(stream: Readable): Promise<{ bytes: number; err?: unknown }> {
  let bytes = 0;
  try {
    for await (const c of stream) bytes += (c as Buffer).length;
    return { bytes };
  } catch (err) {
    return { bytes, err };
  }
}

describe('boundedStream', () => {
  test('passes a file of its announced size through', async () => {
    expect(
      await drain(boundedStream(Readable.from([Buffer.alloc(60), Buffer.alloc(40)]), { ...o, bound: { size: 100 } })),
    ).toEqual({ bytes: 100 });
  });
  test('admits the growth it was given, and no byte more', async () => {
    expect(
      (await drain(boundedStream(Readable.from([Buffer.alloc(150)]), { ...o, bound: { size: 100, growth: 50 } }))).err,
    ).toBeUndefined();
    const { err } = await drain(
      boundedStream(Readable.from([Buffer.alloc(100), Buffer.alloc(51)]), { ...o, bound: { size: 100, growth: 50 } }),
    );
    expect(err).toBeInstanceOf(ReadBoundError);
    expect((err as Error).message).toBe(
      'ml1 (10.0.0.5:22): /var/lib/mfs/changelog_ml.0.mfs: the server sent more than 100 bytes announced (+50 allowed for growth) (151+ bytes): refused, nothing kept',
    );
  });
  test('a source that goes silent fails after the idle window, and is destroyed', async () => {
    const silent = new Readable({ read() {} });
    const started = Date.now();
    const { err } = await drain(boundedStream(silent, { ...o, bound: { size: 100 } }));
    expect(err).toBeInstanceOf(TransferError);
    expect((err as Error).message).toMatch(/: no data for 0\.2 s after 0 bytes/);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(silent.destroyed).toBe(true);
  });
  test("a source error comes out in the caller's words", async () => {
    const broken = new Readable({
      read() {
        this.destroy(new Error('No such file'));
      },
    });
    const { err } = await drain(
      boundedStream(broken, {
        ...o,
        bound: { size: 100 },
        mapError: (e) => new TransferError('ml1', `ml1: read x: ${(e as Error).message}`),
      }),
    );
    expect((err as Error).message).toBe('ml1: read x: No such file');
  });
});

describe('RingReader (a local file into reused buffers, issue 28)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-ring-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  const file = async (bytes: Buffer) => {
    const f = path.join(dir, `f-${bytes.length}`);
    await fs.writeFile(f, bytes);
    return f;
  };

  test('every byte in order; a chunk stays intact until the consumer has asked for 3 more', async () => {
    const bytes = randomBytes(RING.buffers * RING.bytes * 2 + 777);
    const handle = await fs.open(await file(bytes));
    const seen: { chunk: Buffer; at: number }[] = [];
    let at = 0;
    for await (const chunk of new RingReader(handle, { ...o, bound: { size: bytes.length } })) {
      seen.push({ chunk, at });
      at += chunk.length;
      // The chunk just read and the two before it still show their bytes.
      for (const s of seen.slice(-3)) expect(s.chunk.equals(bytes.subarray(s.at, s.at + s.chunk.length))).toBe(true);
    }
    expect(at).toBe(bytes.length);
    // The handle is closed at the end.
    expect(handle.fd).toBe(-1);
  });

  test('more bytes than the bound: a ReadBoundError naming the file, the handle closed', async () => {
    const bytes = randomBytes(RING.bytes + 10);
    const handle = await fs.open(await file(bytes));
    const { err } = await drain(
      Readable.from(new RingReader(handle, { ...o, bound: { size: RING.bytes + 9 } }), { objectMode: false }),
    );
    expect(err).toBeInstanceOf(ReadBoundError);
    expect((err as Error).message).toMatch(/changelog_ml\.0\.mfs: the server sent more than 1048585 bytes announced/);
    expect(handle.fd).toBe(-1);
  });

  test('destroyed before anything reads it: the handle is closed', async () => {
    const handle = await fs.open(await file(Buffer.alloc(10)));
    const reader = new RingReader(handle, { ...o, bound: { size: 10 } });
    reader.destroy();
    expect(reader.destroyed).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(handle.fd).toBe(-1);
  });
});
