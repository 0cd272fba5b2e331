import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { daemonLock, runningMasterPid } from '../../../lib/moosefs/mfsmaster.js';

/**
 * A DATA_PATH's lock belongs to its owner, who writes what it likes into it (#23 case 10). Real processes,
 * real /proc: a PID counts only for an installed program named mfsmaster working in that DATA_PATH.
 * (The race against a real promote is in test/faults/datapath-attacker.test.ts.)
 */
const NOBODY = 65534;

describe('daemonLock: the PID in a DATA_PATH lock, checked in /proc', () => {
  let root: string;
  let dataPath: string;
  const children: ChildProcess[] = [];

  /** `sleep` copied under the name mfsmaster (owned by `uid`), started with its working directory `cwd`. */
  async function fakeMaster(uid: number, cwd: string): Promise<number> {
    const dir = await fs.mkdtemp(path.join(root, 'bin-'));
    await fs.chmod(dir, 0o755);
    const bin = path.join(dir, 'mfsmaster');
    await fs.copyFile('/bin/sleep', bin);
    await fs.chown(bin, uid, uid);
    await fs.chmod(bin, 0o755);
    const child = spawn(bin, ['60'], { cwd, stdio: 'ignore' });
    children.push(child);
    await new Promise((resolve) => child.once('spawn', resolve));
    return child.pid!;
  }

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-daemon-lock-'));
    await fs.chmod(root, 0o755);
    dataPath = path.join(root, 'data');
    await fs.mkdir(dataPath, { mode: 0o755 });
    await fs.chown(dataPath, NOBODY, NOBODY);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    await fs.rm(root, { recursive: true, force: true });
  });

  const lock = () => path.join(dataPath, '.mfsmaster.lock');

  test('`echo 1 > .mfsmaster.lock`, or this very process: a live PID that is no mfsmaster is ignored, saying why', async () => {
    await fs.writeFile(lock(), '1\n');
    const why = new RegExp(`^${lock()}: pid 1 is not an mfsmaster of ${dataPath} \\(.+\\): ignored$`);
    expect(await daemonLock(dataPath)).toEqual({ ignored: expect.stringMatching(why) });
    await fs.writeFile(lock(), `${process.pid}\n`);
    const self = `pid ${process.pid} is not an mfsmaster of ${dataPath} (its program is ${process.execPath}`;
    expect((await daemonLock(dataPath)).ignored).toContain(self);
    expect(await runningMasterPid(dataPath)).toBeUndefined();
  });

  test('a program named mfsmaster counts only when installed (root-owned) and working in this DATA_PATH', async () => {
    const copied = await fakeMaster(NOBODY, dataPath);
    await fs.writeFile(lock(), `${copied}\n`);
    expect((await daemonLock(dataPath)).ignored).toMatch(
      /is not an installed binary \(owned by root, not writable by /,
    );
    const elsewhere = await fakeMaster(0, root);
    await fs.writeFile(lock(), `${elsewhere}\n`);
    expect((await daemonLock(dataPath)).ignored).toContain(`(it works in ${root})`);
    const here = await fakeMaster(0, dataPath);
    await fs.writeFile(lock(), `${here}\n`);
    expect(await daemonLock(dataPath)).toEqual({ pid: here });
  });

  test('a lock that is a symlink is not followed; a dead PID and garbage are no master', async () => {
    const here = await fakeMaster(0, dataPath);
    const elsewhere = path.join(root, 'other.lock');
    await fs.writeFile(elsewhere, `${here}\n`);
    await fs.symlink(elsewhere, lock());
    expect(await daemonLock(dataPath)).toEqual({});
    await fs.rm(lock());
    await fs.writeFile(lock(), '999999999\n');
    expect(await daemonLock(dataPath)).toEqual({});
    await fs.writeFile(lock(), 'garbage');
    expect(await daemonLock(dataPath)).toEqual({});
  });
});
