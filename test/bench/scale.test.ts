import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
