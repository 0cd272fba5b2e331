import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig, jobOptionsSchema } from '../../../lib/core/config.js';
import { ConfigError } from '../../../lib/core/errors.js';
import { defineJob } from '../../../lib/core/job.js';
import { acquireLock } from '../../../lib/core/lock.js';
import { silentLogger } from '../../../lib/core/logger.js';
import { runJob } from '../../../lib/core/runner.js';
import { checkStrictModes } from '../../../lib/core/strict-modes.js';

/** Real directories and files with real modes and owners (uid 65534 is 'nobody'); we run as root. */
describe('strict modes: paths other users may write are refused before a job takes its lock', () => {
  let dir: string;
  let state: string;
  let store: string;
  let key: string;
  let knownHosts: string;
  let configFile: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-strict-'));
    state = path.join(dir, 'state');
    store = path.join(dir, 'store');
    await fs.mkdir(state, { mode: 0o700 });
    await fs.mkdir(store, { mode: 0o700 });
    key = path.join(dir, 'id_ed25519');
    knownHosts = path.join(dir, 'known_hosts');
    configFile = path.join(dir, 'config.yaml');
    await fs.writeFile(key, 'key\n', { mode: 0o600 });
    await fs.writeFile(knownHosts, '', { mode: 0o600 });
    await fs.writeFile(configFile, '{}\n', { mode: 0o600 });
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const config = (extra: Record<string, unknown> = {}) =>
    parseConfig(
      {
        stateDir: state,
        snapshotStore: { path: store },
        ssh: { privateKey: key, knownHosts },
        masters: [{ name: 'm1', host: 'mfsmaster' }],
        ...extra,
      },
      configFile,
    );

  async function refusal(extra: Record<string, unknown> = {}): Promise<ConfigError> {
    const err = await checkStrictModes(config(extra)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain('\n');
    return err as ConfigError;
  }

  test('private paths owned by root pass, and a lock directory not there yet is fine', async () => {
    await expect(checkStrictModes(config())).resolves.toBeUndefined();
  });

  test('a world-writable lock directory (even sticky, like /tmp) is refused, naming the key', async () => {
    const locks = path.join(dir, 'locks');
    await fs.mkdir(locks);
    await fs.chmod(locks, 0o1777);
    const err = await refusal({ lockDir: locks });
    expect(err.subject).toBe('lockDir');
    expect(err.message).toBe(
      `lockDir ${locks} is world-writable (mode 1777): any user could block every job with a fake lock`,
    );
  });

  test('a lock directory under a world-writable parent without the sticky bit is refused, even before it exists', async () => {
    const open = path.join(dir, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const err = await refusal({ lockDir: path.join(open, 'locks') });
    expect(err.subject).toBe('lockDir');
    expect(err.message).toBe(
      `lockDir ${path.join(open, 'locks')}: ${open} is world-writable (mode 0777): any user who may write there could replace it and could block every job with a fake lock`,
    );
    // The sticky bit (like /tmp) makes the parent safe: others cannot replace what root created there.
    await fs.chmod(open, 0o1777);
    await expect(checkStrictModes(config({ lockDir: path.join(open, 'locks') }))).resolves.toBeUndefined();
  });

  test('a group-writable state directory and a snapshot store owned by another user are refused', async () => {
    await fs.chmod(state, 0o770);
    let err = await refusal();
    expect(err.subject).toBe('stateDir');
    expect(err.message).toMatch(/^stateDir .* is group-writable \(mode 0770\)/);
    // The default lockDir is <stateDir>/locks: the state dir is checked first.
    await fs.chmod(state, 0o700);
    await fs.chown(store, 65534, 65534);
    err = await refusal();
    expect(err.subject).toBe('snapshotStore.path');
    expect(err.message).toBe(
      `snapshotStore.path ${store} is owned by uid 65534, not root: that user could replace the snapshots a failover restores`,
    );
  });

  test('a config file, private key or known_hosts others may write, or another user owns, is refused', async () => {
    await fs.chmod(configFile, 0o666);
    expect((await refusal()).message).toMatch(/^config file .*config\.yaml is world-writable \(mode 0666\)/);
    await fs.chmod(configFile, 0o644);
    await fs.chmod(key, 0o620);
    let err = await refusal();
    expect(err.subject).toBe('ssh.privateKey');
    expect(err.message).toMatch(/is group-writable \(mode 0620\)/);
    await fs.chmod(key, 0o600);
    await fs.chown(knownHosts, 65534, 0);
    err = await refusal();
    expect(err.subject).toBe('ssh.knownHosts');
    expect(err.message).toMatch(/^ssh\.knownHosts .*known_hosts is owned by uid 65534, not root/);
  });

  test("each file is named by the key that set it: the global ssh: section, or the host's own", async () => {
    await fs.chmod(key, 0o620);
    expect((await refusal()).subject).toBe('ssh.privateKey');
    const own = path.join(dir, 'own_key');
    await fs.writeFile(own, 'key\n');
    await fs.chmod(own, 0o660);
    const err = await refusal({ masters: [{ name: 'm1', host: 'mfsmaster', ssh: { privateKey: own } }] });
    expect(err.subject).toBe('masters.0.ssh.privateKey');
    expect(err.message).toMatch(/^masters\.0\.ssh\.privateKey .*own_key is group-writable/);
  });

  test('a store key, S3 credentials or private key another user owns, or others may read (even 0640), is refused, naming the key', async () => {
    const storeKey = path.join(dir, 'store.key');
    await fs.writeFile(storeKey, 'k\n', { mode: 0o600 });
    await fs.chown(storeKey, 65534, 65534);
    const sealed = { snapshotStore: { path: store, encryption: { keyFile: storeKey } } };
    let err = await refusal(sealed);
    expect(err.subject).toBe('snapshotStore.encryption.keyFile');
    expect(err.message).toBe(
      `snapshotStore.encryption.keyFile ${storeKey} is owned by uid 65534, not root: that user could swap the key snapshots are sealed with`,
    );
    await fs.chown(storeKey, 0, 0);
    await expect(checkStrictModes(config(sealed))).resolves.toBeUndefined();
    await fs.chmod(storeKey, 0o640);
    expect((await refusal(sealed)).message).toBe(
      `snapshotStore.encryption.keyFile ${storeKey} is group-readable (mode 0640): any user of group 0 can read it; chmod 600 it`,
    );

    const credentials = path.join(dir, 's3.json');
    await fs.writeFile(credentials, '{}\n', { mode: 0o604 });
    const s3 = {
      snapshotStore: { path: store, copies: [{ name: 'o', type: 's3', bucket: 'bkt', credentialsFile: credentials }] },
    };
    err = await refusal(s3);
    expect(err.subject).toBe('snapshotStore.copies.0.credentialsFile');
    expect(err.message).toBe(
      `snapshotStore.copies.0.credentialsFile ${credentials} is world-readable (mode 0604): any user can read it; chmod 600 it`,
    );

    // A group-readable SSH private key: ssh itself would refuse it, and so does mfs-jobs now.
    await fs.chmod(key, 0o640);
    err = await refusal();
    expect(err.subject).toBe('ssh.privateKey');
    expect(err.message).toBe(
      `ssh.privateKey ${key} is group-readable (mode 0640): any user of group 0 can read it; chmod 600 it`,
    );
  });

  test("each off-site SFTP copy's identityFile and knownHosts are checked like the hosts' own", async () => {
    const id = path.join(dir, 'copy_id');
    const kh = path.join(dir, 'copy_known_hosts');
    await fs.writeFile(id, 'k\n', { mode: 0o600 });
    await fs.writeFile(kh, '', { mode: 0o600 });
    const sftp = (over: Record<string, unknown> = {}) => ({
      snapshotStore: {
        path: store,
        copies: [
          { name: 'a', type: 'sftp', host: 'h', user: 'u', identityFile: key, knownHosts, path: '/x' },
          { name: 'b', type: 'sftp', host: 'h', user: 'u', identityFile: id, knownHosts: kh, path: '/x', ...over },
        ],
      },
    });
    await expect(checkStrictModes(config(sftp()))).resolves.toBeUndefined();
    await fs.chmod(kh, 0o666);
    let err = await refusal(sftp());
    expect(err.subject).toBe('snapshotStore.copies.1.knownHosts');
    expect(err.message).toBe(
      `snapshotStore.copies.1.knownHosts ${kh} is world-writable (mode 0666): any user could add a host key and let a man-in-the-middle serve forged metadata`,
    );
    await fs.chmod(kh, 0o600);
    await fs.chown(id, 65534, 65534);
    err = await refusal(sftp());
    expect(err.subject).toBe('snapshotStore.copies.1.identityFile');
    expect(err.message).toMatch(
      /^snapshotStore\.copies\.1\.identityFile .*copy_id is owned by uid 65534, not root: that user could swap the key mfs-jobs logs in with$/,
    );
  });

  test("a file in a directory another user owns is refused though the file is root's 0600: that user could rename it away", async () => {
    const theirs = path.join(dir, 'theirs');
    await fs.mkdir(theirs, { mode: 0o755 });
    const storeKey = path.join(theirs, 'store.key');
    await fs.writeFile(storeKey, 'k\n', { mode: 0o600 });
    await fs.chown(theirs, 65534, 65534);
    const err = await refusal({ snapshotStore: { path: store, encryption: { keyFile: storeKey } } });
    expect(err.message).toBe(
      `snapshotStore.encryption.keyFile ${storeKey}: ${theirs} is owned by uid 65534: any user who may write there could replace it and could swap the key snapshots are sealed with`,
    );
  });

  test("daemon.socket's directory: refused when others may write into it (even sticky, like /tmp); the default one is stateDir", async () => {
    const shared = path.join(dir, 'shared');
    await fs.mkdir(shared);
    await fs.chmod(shared, 0o1777);
    const err = await refusal({ daemon: { socket: path.join(shared, 'mfs-jobs.sock') } });
    expect(err.subject).toBe('daemon.socket');
    expect(err.message).toBe(
      `daemon.socket ${shared} is world-writable (mode 1777): any user could stand in for the daemon and answer a failover hook`,
    );
    await fs.chmod(shared, 0o700);
    await expect(
      checkStrictModes(config({ daemon: { socket: path.join(shared, 'mfs-jobs.sock') } })),
    ).resolves.toBeUndefined();
  });

  test('the runner refuses before the lock: the job does not run and no lock file appears', async () => {
    const locks = path.join(dir, 'locks');
    await fs.mkdir(locks, { mode: 0o700 });
    await fs.chmod(locks, 0o777);
    let ran = false;
    const job = defineJob({
      name: 'strict',
      description: 'records that it ran',
      options: jobOptionsSchema({}),
      run: async () => {
        ran = true;
        return { status: 'OK', summary: 'ran' };
      },
    });
    const { report } = await runJob(job, { config: config({ lockDir: locks }), log: silentLogger(), dryRun: true });
    expect(report.status).toBe('UNKNOWN');
    expect(report.summary).toMatch(/^lockDir .* is world-writable \(mode 0777\)/);
    expect(ran).toBe(false);
    expect(await fs.readdir(locks)).toEqual([]);
  });

  test('directories mfs-jobs creates are 0700, whatever the umask', async () => {
    const old = process.umask(0);
    try {
      const lock = await acquireLock(path.join(dir, 'new', 'locks'), 'backup');
      await lock.release();
    } finally {
      process.umask(old);
    }
    expect((await fs.stat(path.join(dir, 'new'))).mode & 0o7777).toBe(0o700);
    expect((await fs.stat(path.join(dir, 'new', 'locks'))).mode & 0o7777).toBe(0o700);
    await expect(checkStrictModes(config({ lockDir: path.join(dir, 'new', 'locks') }))).resolves.toBeUndefined();
  });
});
