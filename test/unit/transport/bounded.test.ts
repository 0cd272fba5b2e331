import { Readable } from 'node:stream';
import { TransferError } from '../../../lib/core/errors.js';
import { boundedStream, ReadBoundError } from '../../../lib/transport/bounded.js';

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
