import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { acquireLock, processAlive } from '../../../lib/core/lock.js';
import { waitFor } from '../../lab/proc.js';
import { LockBusyError } from '../../../lib/core/errors.js';
import { REPO_ROOT } from '../../helpers/cli.js';

describe('job lock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-lock-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('a second holder is refused while the first lives, and may take it after release', async () => {
    const first = await acquireLock(dir, 'backup');
    await expect(acquireLock(dir, 'backup')).rejects.toBeInstanceOf(LockBusyError);
    await first.release();
    const second = await acquireLock(dir, 'backup');
    await second.release();
  });

  test('a lock of a dead PID is stale and taken over', async () => {
    await fs.writeFile(
      path.join(dir, 'prune.lock'),
      JSON.stringify({ pid: 2 ** 22 + 1, startedAt: 'x', job: 'prune' }),
    );
    const lock = await acquireLock(dir, 'prune');
    expect(JSON.parse(await fs.readFile(lock.file, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  test('a lock held by a zombie (exited, not yet reaped by its parent) is stale and taken over', async () => {
    // `sleep 0.05` exits at once; its parent (exec'd into `sleep 30`) never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(
        await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))),
      );
      await waitFor('the child to become a zombie', async () =>
        (await fs.readFile(`/proc/${zombie}/stat`, 'utf8')).includes(') Z '),
      );
      expect(processAlive(zombie)).toBe(false);
      await fs.writeFile(
        path.join(dir, 'promote.lock'),
        JSON.stringify({ pid: zombie, startedAt: 'x', job: 'promote' }),
      );
      const lock = await acquireLock(dir, 'promote');
      await lock.release();
    } finally {
      parent.kill('SIGKILL');
    }
  });

  test('a lock file with garbage that is not fresh is stale', async () => {
    const file = path.join(dir, 'drill.lock');
    await fs.writeFile(file, '');
    const old = new Date(Date.now() - 60_000);
    await fs.utimes(file, old, old);
    const lock = await acquireLock(dir, 'drill');
    await lock.release();
  });

  test("an empty lock file is stale at once, and a killed run's pending lock file is swept, never counted", async () => {
    await fs.writeFile(path.join(dir, 'drill.lock'), '');
    const leftover = path.join(dir, `drill.lock.${2 ** 22 + 1}.0badf00d`);
    await fs.writeFile(leftover, JSON.stringify({ pid: 2 ** 22 + 1, startedAt: 'x', job: 'drill' }));
    const lock = await acquireLock(dir, 'drill');
    expect(JSON.parse(await fs.readFile(lock.file, 'utf8')).pid).toBe(process.pid);
    expect((await fs.readdir(dir)).sort()).toEqual(['drill.lock']);
    await lock.release();
    expect(await fs.readdir(dir)).toEqual([]);
  });

  test('a run SIGKILLed while taking the lock, at any moment, never blocks the next run', async () => {
    const script = `import('${path.join(REPO_ROOT, 'dist', 'lib', 'core', 'lock.js')}').then((m) => m.acquireLock(process.argv[1], 'backup')).then(() => setInterval(() => {}, 1000))`;
    // Node starts in about 50 ms here: the kills land before, while and after the lock is taken.
    for (let delay = 0; delay < 150; delay += 5) {
      const child = spawn(process.execPath, ['-e', script, dir], { stdio: 'ignore' });
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      const lock = await acquireLock(dir, 'backup');
      await lock.release();
    }
    expect(await fs.readdir(dir)).toEqual([]);
  });

  test('of many contenders at once exactly one wins', async () => {
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => acquireLock(dir, 'verify')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});
