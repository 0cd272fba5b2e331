import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DirHandle } from '../../../lib/core/dirhandle.js';
import { moveAside, placeFiles } from '../../../lib/failover/standby.js';

/**
 * Working inside a DATA_PATH another user owns (uid 420 here, Debian's `mfs`): what that user can do
 * there, done for real on this machine's filesystem, between the steps mfs-jobs takes. The races
 * themselves, with a real unprivileged process and real jobs, are in test/faults/datapath-attacker.test.ts.
 */
const MFS_UID = 420;

describe('a DATA_PATH another user owns, worked in through directory descriptors', () => {
  let root: string;
  let dataPath: string;
  let victim: string;
  let data: DirHandle;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-dirhandle-'));
    dataPath = path.join(root, 'data');
    victim = path.join(root, 'victim');
    await fs.mkdir(dataPath, { mode: 0o700 });
    await fs.chown(dataPath, MFS_UID, MFS_UID);
    await fs.mkdir(victim, { mode: 0o700 });
    await fs.writeFile(path.join(victim, 'secret'), 'root only\n', { mode: 0o600 });
    data = await DirHandle.open(dataPath, 'DATA_PATH');
  });
  afterEach(async () => {
    await data.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  test('a name planted beforehand (symlink, or a directory of the MooseFS user) is refused, naming it', async () => {
    await fs.symlink(victim, path.join(dataPath, '.mfs-jobs-staging-a'));
    const planted = path.join(dataPath, '.mfs-jobs-staging-a');
    await expect(data.makePrivateDir('.mfs-jobs-staging-a', 'staging directory')).rejects.toThrow(
      `${planted}: staging directory already exists (a symbolic link): not made by this run, refusing to use it`,
    );
    await fs.mkdir(path.join(dataPath, '.mfs-jobs-staging-b'), { mode: 0o777 });
    await fs.chown(path.join(dataPath, '.mfs-jobs-staging-b'), MFS_UID, MFS_UID);
    const theirs = /staging directory already exists \(a directory owned by uid 420, mode 07\d\d\)/;
    await expect(data.makePrivateDir('.mfs-jobs-staging-b', 'staging directory')).rejects.toThrow(theirs);
    expect(await fs.readdir(victim)).toEqual(['secret']);
  });

  test('swapped for a symlink after it was made: every write still lands in our directory, never the victim', async () => {
    const dir = await data.makePrivateDir('.mfs-jobs-staging-c', 'staging directory');
    expect((await fs.stat(dir.path)).mode & 0o777).toBe(0o700);
    // What the MooseFS user can do in its own DATA_PATH: rename our directory away, plant a link in its place.
    await fs.rename(dir.path, path.join(dataPath, 'stolen'));
    await fs.symlink(victim, dir.path);
    await fs.writeFile(path.join(dir.at, 'ml1--changelog_ml.1.mfs'), '1: 1|A(1)\n');
    expect(await fs.readdir(victim)).toEqual(['secret']);
    expect(await fs.readdir(path.join(dataPath, 'stolen'))).toEqual(['ml1--changelog_ml.1.mfs']);
    // Discarding cleans our directory through the descriptor, and leaves the planted link and the victim alone.
    await dir.discard();
    expect(await fs.readdir(path.join(dataPath, 'stolen'))).toEqual([]);
    expect((await fs.lstat(dir.path)).isSymbolicLink()).toBe(true);
    expect(await fs.readdir(victim)).toEqual(['secret']);
  });

  test('placing never chowns through a link: a staged symlink is refused, the victim keeps its owner', async () => {
    const dir = await data.makePrivateDir('.mfs-jobs-staging-d', 'staging directory');
    await fs.writeFile(path.join(dir.at, 'image'), 'MFSM NEW');
    await fs.symlink(path.join(victim, 'secret'), path.join(dir.at, 'evil'));
    await expect(placeFiles(data, [{ from: path.join(dir.at, 'evil'), name: 'changelog.1.mfs' }])).rejects.toThrow(
      /ELOOP/,
    );
    expect((await fs.stat(path.join(victim, 'secret'))).uid).toBe(0);
    await placeFiles(data, [{ from: path.join(dir.at, 'image'), name: 'metadata.mfs.back' }]);
    const placed = await fs.lstat(path.join(dataPath, 'metadata.mfs.back'));
    expect([placed.isFile(), placed.uid, placed.mode & 0o777]).toEqual([true, MFS_UID, 0o600]);
    await dir.discard();
  });

  test('a placed name planted as a symlink is replaced, not followed; DATA_PATH swapped after opening changes nothing', async () => {
    const staged = path.join(root, 'staged');
    await fs.writeFile(staged, 'MFSM NEW');
    await fs.symlink(path.join(victim, 'secret'), path.join(dataPath, 'metadata.mfs.back'));
    await data.place(staged, 'metadata.mfs.back', { uid: MFS_UID, gid: MFS_UID });
    expect((await fs.lstat(path.join(dataPath, 'metadata.mfs.back'))).isFile()).toBe(true);
    // DATA_PATH itself renamed away and replaced by a link to the victim: the held descriptor still means the old directory.
    await fs.rename(dataPath, path.join(root, 'moved'));
    await fs.symlink(victim, dataPath);
    await fs.writeFile(staged, 'MFSM NEW');
    await data.place(staged, 'changelog.1.mfs', { uid: MFS_UID, gid: MFS_UID });
    expect((await fs.readdir(path.join(root, 'moved'))).sort()).toEqual(['changelog.1.mfs', 'metadata.mfs.back']);
    const secret = await fs.stat(path.join(victim, 'secret'));
    expect([await fs.readdir(victim), secret.uid, secret.mode & 0o777]).toEqual([['secret'], 0, 0o600]);
  });

  test('moveAside: the aside directory swapped for a link after it was made moves nothing to its target', async () => {
    await fs.writeFile(path.join(dataPath, 'passwd'), 'nobody\n');
    await fs.chown(path.join(dataPath, 'passwd'), MFS_UID, MFS_UID);
    await fs.symlink('/etc/shadow', path.join(dataPath, 'changelog.0.mfs'));
    // The swap lands between the aside directory's mkdir-and-open and the first rename, every time.
    const makePrivateDir = data.makePrivateDir.bind(data);
    data.makePrivateDir = async (name, what) => {
      const made = await makePrivateDir(name, what);
      await fs.rename(made.path, path.join(dataPath, 'stolen'));
      await fs.symlink(victim, made.path);
      return made;
    };
    const aside = await moveAside(data, new Date('2026-12-07T09:00:00Z'), []);
    expect(aside.moved).toEqual(['changelog.0.mfs', 'passwd']);
    expect(await fs.readdir(victim)).toEqual(['secret']);
    // Moved into the directory made, wherever its name went; the planted link moved as a link.
    expect((await fs.readdir(path.join(dataPath, 'stolen'))).sort()).toEqual(['changelog.0.mfs', 'passwd']);
    expect((await fs.lstat(path.join(dataPath, 'stolen', 'changelog.0.mfs'))).isSymbolicLink()).toBe(true);
    expect((await fs.stat('/etc/shadow')).uid).toBe(0);
  });

  test('moveAside: the (empty) aside directory removed by the owner before the moves: refused, nothing left half-moved silently', async () => {
    await fs.writeFile(path.join(dataPath, 'changelog.1.mfs'), '1: 1|A(1)\n');
    const makePrivateDir = data.makePrivateDir.bind(data);
    data.makePrivateDir = async (name, what) => {
      const made = await makePrivateDir(name, what);
      await fs.rmdir(made.path);
      return made;
    };
    await expect(moveAside(data, new Date('2026-12-07T09:00:00Z'), [])).rejects.toThrow(
      /aside directory removed while .* refusing to go on$/,
    );
    expect(await fs.readdir(dataPath)).toEqual(['changelog.1.mfs']);
  });

  test('an entry is one component of the directory, never a path', () => {
    for (const bad of ['', '.', '..', 'a/b', '../victim'])
      expect(() => data.entry(bad)).toThrow(/is not one entry of it/);
    expect(data.entry('a\\b')).toBe(`${data.at}/a\\b`);
  });
});
