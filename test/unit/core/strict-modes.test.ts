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
    expect(err.message).toBe(`lockDir ${locks} is world-writable (mode 1777): any user could block every job with a fake lock`);
  });

  test('a lock directory under a world-writable parent without the sticky bit is refused, even before it exists', async () => {
    const open = path.join(dir, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const err = await refusal({ lockDir: path.join(open, 'locks') });
    expect(err.subject).toBe('lockDir');
    expect(err.message).toMatch(/its parent .*\/open is world-writable without the sticky bit \(mode 0777\)/);
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
    expect(err.message).toBe(`snapshotStore.path ${store} is owned by uid 65534, not root: that user could replace the snapshots a failover restores`);
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

  test('each file is named by the key that set it: the global ssh: section, or the host\'s own', async () => {
    await fs.chmod(key, 0o620);
    expect((await refusal()).subject).toBe('ssh.privateKey');
    const own = path.join(dir, 'own_key');
    await fs.writeFile(own, 'key\n');
    await fs.chmod(own, 0o660);
    const err = await refusal({ masters: [{ name: 'm1', host: 'mfsmaster', ssh: { privateKey: own } }] });
    expect(err.subject).toBe('masters.0.ssh.privateKey');
    expect(err.message).toMatch(/^masters\.0\.ssh\.privateKey .*own_key is group-writable/);
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
