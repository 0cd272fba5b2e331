import { collectSources, type SourceSpec } from '../../../lib/failover/collect.js';
import type { FileSource } from '../../../lib/transport/remote.js';

/**
 * Regression: the daemon's watch can fence a dead host before collecting even starts, so a source's
 * early-abort signal is already aborted when its open() begins. That open's late failure was left
 * unhandled and ended the whole daemon (seen in the VIP failover test); a late success leaked its connection.
 */
describe('collectSources with a source already fenced dead', () => {
  const later = <T>(ms: number, f: () => T) =>
    new Promise<T>((resolve, reject) =>
      setTimeout(() => {
        try {
          resolve(f());
        } catch (e) {
          reject(e);
        }
      }, ms),
    );

  test('neither opens the source nor leaves a rejection unhandled; the inventory says why', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      let opened = 0;
      const spec: SourceSpec = {
        ref: { name: 'master-a', kind: 'master', local: false },
        dir: '/var/lib/mfs',
        open: () => (
          opened++,
          later(30, () => {
            throw new Error('connecting aborted');
          })
        ),
      };
      const dead = new AbortController();
      dead.abort(new Error('master-a: host unreachable (host down)'));
      const [c] = await collectSources([spec], {
        timeoutMs: 5_000,
        signal: new AbortController().signal,
        abortFor: () => dead.signal,
      });
      await new Promise((r) => setTimeout(r, 80));
      expect(opened).toBe(0);
      expect(c!.inventory.error).toBe('master-a: host unreachable (host down)');
      expect(c!.files).toBeUndefined();
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('a source fenced dead while it opens: its late failure is swallowed, a late connection is closed', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      let closed = 0;
      const files = { close: async () => void closed++ } as unknown as FileSource;
      const failing: SourceSpec = {
        ref: { name: 'a', kind: 'master', local: false },
        dir: '/x',
        open: () =>
          later(40, () => {
            throw new Error('late failure');
          }),
      };
      const slow: SourceSpec = {
        ref: { name: 'b', kind: 'master', local: false },
        dir: '/x',
        open: () => later(40, () => files),
      };
      const dead = new AbortController();
      setTimeout(() => dead.abort(new Error('fenced: host down')), 10);
      const out = await collectSources([failing, slow], {
        timeoutMs: 5_000,
        signal: new AbortController().signal,
        abortFor: () => dead.signal,
      });
      await new Promise((r) => setTimeout(r, 80));
      expect(out.map((c) => c.inventory.error)).toEqual(['fenced: host down', 'fenced: host down']);
      expect(closed).toBe(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
