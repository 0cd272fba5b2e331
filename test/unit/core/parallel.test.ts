import { mapLimit } from '../../../lib/core/parallel.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('mapLimit', () => {
  test('results in the items order, never more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([30, 10, 20, 5, 1], 2, async (ms, i) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return `${i}:${ms}`;
    });
    expect(out).toEqual(['0:30', '1:10', '2:20', '3:5', '4:1']);
    expect(most).toBe(2);
  });

  test('a failure rejects only once every started call has settled, and starts no new one', async () => {
    const settled: number[] = [];
    const started: number[] = [];
    const run = mapLimit([0, 1, 2, 3], 2, async (i) => {
      started.push(i);
      await tick();
      if (i === 0) throw new Error('first failed');
      await tick();
      settled.push(i);
    });
    await expect(run).rejects.toThrow('first failed');
    expect(settled).toEqual([1]);
    expect(started).toEqual([0, 1]);
  });

  test('no items: no call', async () => {
    expect(await mapLimit([], 2, () => Promise.reject(new Error('called')))).toEqual([]);
  });
});
