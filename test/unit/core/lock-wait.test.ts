import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LockBusyError } from '../../../lib/core/errors.js';
import { acquireLock } from '../../../lib/core/lock.js';

describe('a lock that waits (failover hooks queue behind each other)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-lock-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('without waiting, a held lock is busy at once', async () => {
    const held = await acquireLock(dir, 'failover');
    await expect(acquireLock(dir, 'failover')).rejects.toBeInstanceOf(LockBusyError);
    await held.release();
  });

  test('with waitMs, the second taker gets the lock once the first releases it', async () => {
    const held = await acquireLock(dir, 'failover');
    const started = Date.now();
    setTimeout(() => void held.release(), 300);
    const second = await acquireLock(dir, 'failover', { waitMs: 5_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await second.release();
  });

  test('gives up as busy when the wait runs out', async () => {
    const held = await acquireLock(dir, 'failover');
    await expect(acquireLock(dir, 'failover', { waitMs: 300 })).rejects.toBeInstanceOf(LockBusyError);
    await held.release();
  });
});
