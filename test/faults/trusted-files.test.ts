import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listSnapshots } from '../../lib/store/manifest.js';
import { runCli } from '../helpers/cli.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import { waitFor } from '../lab/proc.js';
import { recordFaults, tearDownFaults, type Started } from './results.js';

const NOBODY = 65534;

/** A forged daemon: listens on `socket` and answers every hand-off "promoted", counting who asked. */
const FORGED_DAEMON = String.raw`
import net from 'node:net'; import fs from 'node:fs';
const [socket, log] = process.argv.slice(2);
net.createServer((s) => { fs.appendFileSync(log, 'asked\n');
  s.end(JSON.stringify({ v: 1, accepted: true, exitCode: 0, stdout: 'MFS PROMOTE OK - promoted: serving metadata version 999 (forged)\n' }) + '\n');
}).listen(socket, () => fs.appendFileSync(log, 'ready\n'));
`;

/** Every snapshot in `store`, usable or not (none is what a refused backup leaves). */
async function anySnapshots(store: string): Promise<string[]> {
  const l = await listSnapshots(store, {}).catch(() => ({ snapshots: [], broken: [] }));
  return [...l.snapshots.map((x) => x.id), ...l.broken.map((x) => x.id)];
}

/**
 * Files and sockets mfs-jobs trusts as root, made or swapped by another user (issue #23 cases 8, 9 and
 * a zstd earlier in PATH): each is refused in one line naming it, and nothing of that user's runs or
 * answers for root. The other user is a real process of user nobody; the jobs are the real executable
 * against a real MooseFS 3.0 lab.
 */
describe('files, sockets and programs another user could have put there', () => {
  let lab: Lab;
  /** Where nobody may go: a 0755 directory outside the lab's private one. */
  let open: string;
  let forged: ChildProcess | undefined;
  const started: Started[] = [];
  /** The lab's config, the master read from its local DATA_PATH (no sshd here). */
  const write = (extra: Record<string, unknown>, name: string) =>
    lab.writeConfig({ masters: [{ ...masterEntry('master', lab.master), local: true }], ...extra }, name);

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, sshd: false });
    started.push(lab);
    await lab.makeChanges('files', 3);
    await lab.saveImage();
    open = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-open-'));
    await fs.chmod(open, 0o755);
  }, 120_000);

  afterAll(async () => {
    if (forged?.exitCode === null) forged.kill('SIGKILL');
    await tearDownFaults([...started.reverse(), () => fs.rm(open, { recursive: true, force: true })]);
  });

  test('the hook never asks a daemon socket another user made (a 1777 directory): one line, and the job runs itself', async () => {
    const shared = path.join(open, 'shared');
    await fs.mkdir(shared);
    await fs.chmod(shared, 0o1777);
    const home = path.join(open, 'forger');
    await fs.mkdir(home, { mode: 0o755 });
    await fs.chown(home, NOBODY, NOBODY);
    const script = path.join(home, 'forged-daemon.mjs');
    const log = path.join(home, 'log');
    await fs.writeFile(script, FORGED_DAEMON, { mode: 0o644 });
    const socket = path.join(shared, 'mfs-jobs.sock');
    forged = spawn(
      'setpriv',
      [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, script, socket, log],
      { stdio: 'ignore' },
    );
    await waitFor(
      'the forged daemon to listen',
      async () => (await fs.readFile(log, 'utf8').catch(() => '')).includes('ready'),
      10_000,
    );
    expect((await fs.lstat(socket)).uid).toBe(NOBODY);
    const config = await write({ daemon: { socket } }, 'forged-socket.yaml');
    const runDir = path.join(lab.dir, 'run');
    const res = await runCli(['run', 'promote', '--config', config], { env: { MFS_JOBS_RUN_DIR: runDir } });
    expect(res.stdout).not.toContain('forged');
    expect(res.stderr.split('\n')[0]).toBe(
      `mfs-jobs: promote not handed off: the daemon socket cannot be trusted (${socket} is owned by uid ${NOBODY}); running it here`,
    );
    // Run here, the job's strict modes name the directory anyone may put a socket in.
    expect(res.stdout.split('\n')[0]).toBe(
      `MFS PROMOTE UNKNOWN - daemon.socket ${shared} is world-writable (mode 1777): any user could stand in for the daemon and answer a failover hook`,
    );
    expect(res.code).toBe(3);
    expect(await fs.readFile(log, 'utf8')).toBe('ready\n');
    // A daemon of ours does not listen there either: anyone could put a socket in its place while it is down.
    const daemon = await runCli(['daemon', '--config', config], {
      env: { MFS_JOBS_RUN_DIR: runDir },
      timeoutMs: 20_000,
    });
    expect(daemon.code).toBe(3);
    const why = `${shared} is world-writable (mode 1777)`;
    expect(daemon.stdout + daemon.stderr).toContain(
      `cannot listen on daemon.socket: daemon.socket ${socket}: its directory cannot be trusted (${why})`,
    );
    expect((await fs.lstat(socket)).uid).toBe(NOBODY);
    recordFaults({
      area: 'local attacker',
      fault: 'forged daemon socket answers the failover hook',
      injected: 1,
      survived: 1,
      dataLost: 0,
      lostRestorePoints: 0,
      note: 'never asked; the job ran itself and refused the directory',
    });
  }, 60_000);

  test('a store key swapped for one another user owns (0600): backup refuses, naming the key, and takes no snapshot; root-owned again, it backs up', async () => {
    const store = path.join(lab.dir, 'sealed-store');
    const key = path.join(lab.dir, 'store.key');
    await fs.writeFile(key, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    await fs.chown(key, NOBODY, NOBODY);
    const config = await write(
      { snapshotStore: { path: store, compression: { type: 'none' }, encryption: { keyFile: key } } },
      'sealed.yaml',
    );
    const res = await runCli(['run', 'backup', '--config', config]);
    expect(res.stdout.split('\n')[0]).toBe(
      `MFS BACKUP UNKNOWN - snapshotStore.encryption.keyFile ${key} is owned by uid ${NOBODY}, not root: that user could swap the key snapshots are sealed with`,
    );
    expect(res.code).toBe(3);
    expect(await anySnapshots(store)).toEqual([]);
    await fs.chown(key, 0, 0);
    const again = await runCli(['run', 'backup', '--config', config]);
    expect(again.stdout).toMatch(/^MFS BACKUP OK/);
    recordFaults({
      area: 'local attacker',
      fault: 'store key file owned by another user',
      injected: 1,
      survived: 1,
      dataLost: 0,
      lostRestorePoints: 0,
      note: 'backup UNKNOWN naming the key',
    });
  }, 60_000);

  test("an off-site copy's known_hosts anyone may write (0666), its identity file group-readable: backup refuses, naming each", async () => {
    const knownHosts = path.join(lab.dir, 'copy_known_hosts');
    const identity = path.join(lab.dir, 'copy_id');
    await fs.writeFile(knownHosts, '[127.0.0.1]:2222 ssh-ed25519 AAAA\n');
    await fs.chmod(knownHosts, 0o666);
    await fs.writeFile(identity, 'key\n', { mode: 0o640 });
    const copy = {
      name: 'offsite',
      type: 'sftp',
      host: '127.0.0.1',
      port: 2222,
      user: 'root',
      identityFile: identity,
      knownHosts,
      path: '/copies',
    };
    const store = path.join(lab.dir, 'copied-store');
    const config = await write(
      { snapshotStore: { path: store, compression: { type: 'none' }, copies: [copy] } },
      'copy.yaml',
    );
    let res = await runCli(['run', 'backup', '--config', config]);
    expect(res.stdout.split('\n')[0]).toBe(
      `MFS BACKUP UNKNOWN - snapshotStore.copies.0.identityFile ${identity} is group-readable (mode 0640): any user of group 0 can read it; chmod 600 it`,
    );
    await fs.chmod(identity, 0o600);
    res = await runCli(['run', 'backup', '--config', config]);
    expect(res.stdout.split('\n')[0]).toBe(
      `MFS BACKUP UNKNOWN - snapshotStore.copies.0.knownHosts ${knownHosts} is world-writable (mode 0666): any user could add a host key and let a man-in-the-middle serve forged metadata`,
    );
    expect(res.code).toBe(3);
    expect(await anySnapshots(store)).toEqual([]);
    recordFaults({
      area: 'local attacker',
      fault: "off-site copy's known_hosts world-writable, identity group-readable",
      injected: 2,
      survived: 2,
      dataLost: 0,
      lostRestorePoints: 0,
      note: 'backup UNKNOWN naming each',
    });
  }, 60_000);

  test('a zstd earlier in PATH, in a directory another user owns, is never run as root: backup fails naming it, takes no snapshot', async () => {
    const bin = path.join(open, 'bin');
    await fs.mkdir(bin, { mode: 0o755 });
    await fs.chown(bin, NOBODY, NOBODY);
    const ran = path.join(open, 'planted-zstd-ran');
    await fs.writeFile(path.join(bin, 'zstd'), `#!/bin/sh\ntouch ${ran}\nexec /usr/bin/zstd "$@"\n`, { mode: 0o755 });
    await fs.chown(path.join(bin, 'zstd'), NOBODY, NOBODY);
    const store = path.join(lab.dir, 'zstd-store');
    const config = await write({ snapshotStore: { path: store, compression: { type: 'zstd' } } }, 'zstd.yaml');
    const res = await runCli(['run', 'backup', '--config', config], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(res.stdout.split('\n')[0]).toMatch(
      new RegExp(
        `^MFS BACKUP CRITICAL - master: zstd not run: ${bin}/zstd: ${bin} is owned by uid ${NOBODY}, so another user could have put it there or changed it \\|`,
      ),
    );
    await expect(fs.access(ran)).rejects.toThrow(/ENOENT/);
    expect(await anySnapshots(store)).toEqual([]);
    // The zstd root's own PATH finds (/usr/bin's) is used as before.
    const ok = await runCli(['run', 'backup', '--config', config]);
    expect(ok.stdout).toMatch(/^MFS BACKUP OK/);
    recordFaults({
      area: 'local attacker',
      fault: 'zstd planted earlier in PATH',
      injected: 1,
      survived: 1,
      dataLost: 0,
      lostRestorePoints: 0,
      note: 'refused, never run',
    });
  }, 60_000);
});
