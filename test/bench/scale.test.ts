import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compare, warmedUp, type BenchContext } from '../../bench/bench-case.js';
import { parseScale } from '../../bench/scale.js';
import { masterPeakRssMb, stopAndWipe } from '../../bench/scratch.js';
import { runningMasterPid, startMaster } from '../../lib/moosefs/mfsmaster.js';
import { LabMaster } from '../lab/moosefs.js';

describe('bench --scale (issue 28)', () => {
  test('file counts: 30m, 10m,30m, plain numbers; sorted, no repeats', () => {
    expect(parseScale(undefined)).toEqual([]);
    expect(parseScale('30m')).toEqual([30_000_000]);
    expect(parseScale('30m,1M, 10m,30000000')).toEqual([1_000_000, 10_000_000, 30_000_000]);
    expect(parseScale('500k')).toEqual([500_000]);
  });

  test('anything else is one clear line naming the option', () => {
    expect(() => parseScale('30g')).toThrow('--scale: expected file counts such as 30m or 10m,30m, not "30g"');
    expect(() => parseScale('10m,')).toThrow('--scale');
    expect(() => parseScale('0m')).toThrow('--scale');
  });
});

describe('bench --no-warmup', () => {
  const ctx = (warmup?: boolean) => ({ reps: 2, warmup, log: () => undefined }) as unknown as BenchContext;

  test('no warm-up round when the run says so, whatever the case wants', async () => {
    expect(warmedUp(ctx(), true)).toBe(true);
    expect(warmedUp(ctx(false), true)).toBe(false);
    expect(warmedUp(ctx(), false)).toBe(false);
    for (const [warmup, runs] of [
      [undefined, 3],
      [false, 2],
    ] as const) {
      let n = 0;
      const side = { label: 'true', command: { cmd: 'true', args: [] }, rss: false, prepare: async () => void n++ };
      const [m] = await compare(ctx(warmup), [side]);
      expect([n, m!.seconds.length]).toEqual([runs, 2]);
    }
  });
});

describe('bench scratch master, a real mfsmaster', () => {
  let dir: string;
  let master: LabMaster | undefined;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-bench-scale-'));
  });
  afterAll(async () => {
    const pid = master && (await runningMasterPid(master.dataPath));
    if (pid) process.kill(pid, 'SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('stopAndWipe kills it by PID (no 2 GB image written at 30M files) and leaves DATA_PATH empty', async () => {
    master = await LabMaster.create(path.join(dir, 'm')); // a scratch master with the empty image
    const res = await startMaster({ configFile: master.configFile, autoRestore: false });
    expect(res.code).toBe(0);
    const pid = await runningMasterPid(master.dataPath);
    expect(pid).toBeGreaterThan(0);
    // VmHWM of the live master: what the scale cases report as its RAM.
    expect(await masterPeakRssMb(master)).toBeGreaterThan(0);
    await stopAndWipe(master);
    await expect(fs.stat(`/proc/${pid}`)).rejects.toThrow();
    expect(await fs.readdir(master.dataPath)).toEqual([]);
    expect(await masterPeakRssMb(master)).toBeUndefined();
  });
});
