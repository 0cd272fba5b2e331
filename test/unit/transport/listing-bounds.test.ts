import { TransferError } from '../../../lib/core/errors.js';
import { LISTING_LIMITS, LISTING_WINDOWS, ListingBudget } from '../../../lib/transport/listing-bounds.js';

const o = {
  subject: 'offsite',
  what: 'copy offsite (s3 http://127.0.0.1:9000 bkt/)',
  window: { seconds: 0.2, setting: 'snapshotStore.copies.0.timeoutSeconds' },
};

/** The error `fn` throws (or rejects with). */
async function failure(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('ListingBudget', () => {
  test('a real listing passes: a few pages of names, a manifest held', () => {
    const budget = new ListingBudget(o);
    budget.page('snapshots/', ['2026-12-01T000000Z', '2026-12-02T000000Z']);
    budget.page('snapshots/2026-12-01T000000Z/', ['manifest.json', 'metadata.mfs.zst']);
    budget.hold('snapshots/2026-12-01T000000Z/manifest.json', 4096);
    budget.end();
  });

  test.each([
    [
      'entries',
      { entries: 3 },
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
      'more than 3 entries',
    ],
    ['answers', { pages: 2 }, [[], [], []], 'more than 2 answers'],
    ['bytes of names', { bytes: 10 }, [['aaaaaa'], ['bbbbbb']], 'more than 10 bytes of names'],
  ] as const)(
    'more %s than the limit: one line naming the copy and what is listed',
    async (_what, limits, pages, words) => {
      const budget = new ListingBudget({ ...o, limits });
      const err = await failure(() => pages.forEach((names) => budget.page('mfs/snapshots/', names)));
      budget.end();
      expect(err).toBeInstanceOf(TransferError);
      expect((err as TransferError).subject).toBe('offsite');
      expect(err.message).toBe(
        `copy offsite (s3 http://127.0.0.1:9000 bkt/): listing mfs/snapshots/: ${words} (a listing that never ends, or not ours): refused`,
      );
    },
  );

  test('manifests held count with the names', async () => {
    const budget = new ListingBudget({ ...o, limits: { bytes: 100 } });
    budget.page('snapshots/', ['x'.repeat(50)]);
    const err = await failure(() => budget.hold('snapshots/x/manifest.json', 51));
    expect(err.message).toMatch(/listing snapshots\/x\/manifest\.json: more than 100 bytes in all/);
    budget.end();
  });

  test('the limits are generous: 100k entries, 64 MiB', () => {
    expect(LISTING_LIMITS.entries).toBeGreaterThanOrEqual(100_000);
    expect(LISTING_LIMITS.bytes).toBeGreaterThanOrEqual(64 * 2 ** 20);
  });

  test('an answer that does not come within the window is abandoned (its connection ended), naming the setting', async () => {
    const budget = new ListingBudget(o);
    let abandoned = 0;
    const started = Date.now();
    const err = await failure(() =>
      budget.answer(
        'mfs/snapshots/',
        () => new Promise(() => undefined),
        () => void abandoned++,
      ),
    );
    budget.end();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(abandoned).toBe(1);
    expect(err.message).toBe(
      'copy offsite (s3 http://127.0.0.1:9000 bkt/): listing mfs/snapshots/: no answer within 0.2 s (snapshotStore.copies.0.timeoutSeconds): abandoned',
    );
  });

  test('the request is handed a signal that fires when the answer is given up; its own error is replaced by ours', async () => {
    const budget = new ListingBudget(o);
    let seen: AbortSignal | undefined;
    const err = await failure(() =>
      budget.answer('p/', (signal) => {
        seen = signal;
        return new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('AbortError: Request aborted'))),
        );
      }),
    );
    budget.end();
    expect(seen?.aborted).toBe(true);
    expect(err.message).toMatch(/listing p\/: no answer within 0\.2 s/);
  });

  test('answers each within the window still end at the deadline (LISTING_WINDOWS windows by default)', async () => {
    const budget = new ListingBudget({ ...o, window: { seconds: 0.3, setting: 'timeoutSeconds' } });
    const started = Date.now();
    const err = await failure(async () => {
      for (;;) {
        await budget.answer('slow/', () => new Promise((resolve) => setTimeout(resolve, 10)));
        budget.page('slow/', ['one']);
      }
    });
    const took = Date.now() - started;
    budget.end();
    expect(err.message).toBe(
      `copy offsite (s3 http://127.0.0.1:9000 bkt/): listing slow/ not done within 3 s (${LISTING_WINDOWS} × timeoutSeconds): abandoned`,
    );
    expect(took).toBeGreaterThanOrEqual(LISTING_WINDOWS * 300 - 20);
    expect(took).toBeLessThan(6000);
  });

  test("a deadline of its own (promote: sourceTimeoutSeconds) and the caller's abort", async () => {
    const budget = new ListingBudget({
      ...o,
      window: { seconds: 10, setting: 'timeoutSeconds' },
      deadline: { seconds: 0.1, setting: 'jobs.promote.sourceTimeoutSeconds' },
    });
    const err = await failure(() => budget.answer('x/', () => new Promise(() => undefined)));
    expect(err.message).toMatch(
      /listing x\/ not done within 0\.1 s \(jobs\.promote\.sourceTimeoutSeconds\): abandoned$/,
    );
    expect(() => budget.page('x/', [])).toThrow(/not done within/);
    budget.end();
    const job = new AbortController();
    const cancelled = new ListingBudget({ ...o, signal: job.signal });
    job.abort(new Error('job cancelled'));
    expect(await failure(() => cancelled.answer('y/', () => new Promise(() => undefined)))).toEqual(
      new Error('job cancelled'),
    );
    cancelled.end();
  });
});
