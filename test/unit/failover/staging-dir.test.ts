import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPrivateDir } from '../../../lib/failover/staging-dir.js';
import { placeFiles } from '../../../lib/failover/standby.js';

/**
 * Promote's staging directory lives in the standby DATA_PATH, which the MooseFS user owns (uid 420 here,
 * Debian's `mfs`): what that user can do there, done for real on this machine's filesystem.
 */
const MFS_UID = 420;

describe('staging inside a DATA_PATH another user owns', () => {
  let root: string;
  let dataPath: string;
  let victim: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-staging-'));
    dataPath = path.join(root, 'data');
    victim = path.join(root, 'victim');
    await fs.mkdir(dataPath, { mode: 0o700 });
    await fs.chown(dataPath, MFS_UID, MFS_UID);
    await fs.mkdir(victim, { mode: 0o755 });
    await fs.writeFile(path.join(victim, 'secret'), 'root only\n', { mode: 0o600 });
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  test('a name planted beforehand (symlink, or a directory of the MooseFS user) is refused, naming it', async () => {
    await fs.symlink(victim, path.join(dataPath, '.mfs-jobs-staging-a'));
    await expect(createPrivateDir(dataPath, '.mfs-jobs-staging-a')).rejects.toThrow(`${path.join(dataPath, '.mfs-jobs-staging-a')}: staging directory already exists (a symbolic link): not made by this run, refusing to use it`);
    await fs.mkdir(path.join(dataPath, '.mfs-jobs-staging-b'), { mode: 0o777 });
    await fs.chown(path.join(dataPath, '.mfs-jobs-staging-b'), MFS_UID, MFS_UID);
    await expect(createPrivateDir(dataPath, '.mfs-jobs-staging-b')).rejects.toThrow(/staging directory already exists \(a directory owned by uid 420, mode 07\d\d\)/);
    expect(await fs.readdir(victim)).toEqual(['secret']);
  });

  test('swapped for a symlink after it was made: every write still lands in our directory, never the victim', async () => {
    const dir = await createPrivateDir(dataPath, '.mfs-jobs-staging-c');
    expect((await fs.stat(dir.path)).mode & 0o777).toBe(0o700);
    // What the MooseFS user can do in its own DATA_PATH: rename our directory away, plant a link in its place.
    await fs.rename(dir.path, path.join(dataPath, 'stolen'));
    await fs.symlink(victim, dir.path);
    await fs.writeFile(path.join(dir.at, 'ml1--changelog_ml.1.mfs'), '1: 1|A(1)\n');
    expect(await fs.readdir(victim)).toEqual(['secret']);
    expect(await fs.readdir(path.join(dataPath, 'stolen'))).toEqual(['ml1--changelog_ml.1.mfs']);
    // Removing cleans our directory through the descriptor, and leaves the planted link and the victim alone.
    await dir.remove();
    expect(await fs.readdir(path.join(dataPath, 'stolen'))).toEqual([]);
    expect((await fs.lstat(dir.path)).isSymbolicLink()).toBe(true);
    expect(await fs.readdir(victim)).toEqual(['secret']);
  });

  test('placing never chowns through a link: a staged name that is a symlink is refused, the victim keeps its owner', async () => {
    const dir = await createPrivateDir(dataPath, '.mfs-jobs-staging-d');
    await fs.writeFile(path.join(dir.at, 'image'), 'MFSM NEW');
    await fs.symlink(path.join(victim, 'secret'), path.join(dir.at, 'evil'));
    await expect(placeFiles(dataPath, [{ from: path.join(dir.at, 'evil'), name: 'changelog.1.mfs' }])).rejects.toThrow(/ELOOP/);
    expect((await fs.stat(path.join(victim, 'secret'))).uid).toBe(0);
    await placeFiles(dataPath, [{ from: path.join(dir.at, 'image'), name: 'metadata.mfs.back' }]);
    const placed = await fs.lstat(path.join(dataPath, 'metadata.mfs.back'));
    expect([placed.isFile(), placed.uid, placed.mode & 0o777]).toEqual([true, MFS_UID, 0o600]);
    await dir.remove();
  });
});
