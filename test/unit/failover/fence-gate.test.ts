import { collectSources, type SourceSpec } from '../../../lib/failover/collect.js';
import { afterFenceAnswer } from '../../../lib/failover/promotion.js';
import type { FileSource } from '../../../lib/transport/remote.js';

/**
 * Issue 24: an old master's DATA_PATH over SSH is opened only once its fence has answered. Opening it beside
 * the fence loaded the SSH stack and parsed the key on the one thread that also times the fence's ARP window,
 * so a dead host was proven dead ≈ 0.2 s later under load, and every promotion waited for that.
 */
describe('an old master reached over SSH waits for its fence answer', () => {
  const files = { close: async () => undefined } as unknown as FileSource;
  const spec = (kind: 'master' | 'metalogger', local: boolean, opened: string[]): SourceSpec => ({
    ref: { name: 'old', kind, local },
    dir: '/var/lib/mfs',
    open: async () => (opened.push('old'), files),
  });
  const settle = () => new Promise((r) => setTimeout(r, 20));

  test('host up (connection refused): opened right after the answer, not before', async () => {
    const opened: string[] = [];
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const gated = afterFenceAnswer(spec('master', false, opened), { answered: () => answered });
    const opening = gated.open(new AbortController().signal);
    await settle();
    expect(opened).toEqual([]);
    answer();
    expect(await opening).toBe(files);
    expect(opened).toEqual(['old']);
  });

  test('host down: the fence aborts it, and the SSH source is never opened', async () => {
    const opened: string[] = [];
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const down = new AbortController();
    const gated = afterFenceAnswer(spec('master', false, opened), { answered: () => answered });
    const collecting = collectSources([gated], {
      timeoutMs: 5_000,
      signal: new AbortController().signal,
      abortFor: () => down.signal,
    });
    await settle();
    // What startFence does with an unreachable answer: abort the host's source, then settle the answer.
    down.abort(new Error('old: host unreachable (host down)'));
    answer();
    const [c] = await collecting;
    await settle();
    expect(opened).toEqual([]);
    expect(c!.inventory.error).toBe('old: host unreachable (host down)');
  });

  test('a local DATA_PATH, another kind of source, or a master fenced by another address: not held back', async () => {
    const never = () => new Promise<void>(() => undefined);
    for (const s of [spec('master', true, []), spec('metalogger', false, [])]) {
      expect(afterFenceAnswer(s, { answered: never })).toBe(s);
    }
    const opened: string[] = [];
    const s = spec('master', false, opened);
    expect(afterFenceAnswer(s, { answered: () => undefined })).toBe(s);
  });
});
