import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../lib/core/config.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { freePort } from '../lab/proc.js';
import { keygen } from '../lab/sshd.js';
import { execCapture } from '../../lib/core/exec.js';
import { MFS_JOBS_BIN, runCli } from '../helpers/cli.js';
import { NetLab, NsChunkserver } from '../lab/netns.js';
import { pathExists } from '../../lib/core/atomic.js';

/**
 * `mfs-jobs init` against a real master, metalogger and sshd: the config it writes is the one the jobs
 * then run with, unchanged; a second run is a no-op; --dry-run writes nothing; a dead master is one line.
 */
describe.each<LabVersion>(['3.0.117', '4.59.2', '1.6.27'])('mfs-jobs init on MooseFS %s', (version) => {
  let lab: Lab;
  let etc: string;
  let config: string;
  let knownHosts: string;
  let flags: string[];

  beforeAll(async () => {
    lab = await Lab.start({ lab: labGeneration(version) });
    await lab.makeChanges('init', 10);
    await lab.saveImage();
    await lab.makeChanges('init-after-image', 5);
    etc = path.join(lab.dir, 'etc');
    config = path.join(etc, 'config.yaml');
    knownHosts = path.join(etc, 'known_hosts');
    const sshd = lab.sshd!;
    flags = [
      '--master',
      `127.0.0.1:${lab.master.ports.cl}`,
      '--master-data-path',
      lab.master.dataPath,
      '--metalogger-data-path',
      lab.metalogger!.dataPath,
      '--state-dir',
      path.join(lab.dir, 'state'),
      '--ssh-port',
      String(sshd.port),
      '--ssh-key',
      sshd.clientKey,
      '--known-hosts',
      knownHosts,
      '--no-local',
      ...(lab.generation.prefix ? ['--moosefs-prefix', lab.generation.prefix] : []),
    ];
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  });

  test('writes a 0600 config that check-master, backup and verify use unchanged, pinning the host key', async () => {
    const init = await runCli(['init', '--config', config, ...flags], { timeoutMs: 180_000 });
    expect({ code: init.code, out: init.stdout }).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^MFS INIT OK - wrote /),
    });
    expect(init.stdout).toContain(`MooseFS ${version}`);
    expect(init.stdout).toMatch(/schedule: /);
    const noMetaid = lab.generation.generation.imageMagic === 'MFSM 1.5';
    expect(init.stdout).toMatch(noMetaid ? /metaid: none/ : /metaid [0-9A-F]{16}/);
    expect((await fs.stat(config)).mode & 0o777).toBe(0o600);
    // Pinned on first contact (accept-new), into the file the config names, owner-only.
    expect((await fs.stat(knownHosts)).mode & 0o777).toBe(0o600);
    const pinned = await fs.readFile(knownHosts, 'utf8');
    const hostKey = (await fs.readFile(`${lab.sshd!.hostKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    expect(pinned).toBe(`[127.0.0.1]:${lab.sshd!.port} ${hostKey}\n`);
    const loaded = await loadConfig(config);
    expect(loaded.masters[0]!.ssh!.acceptUnknownHostKeys).toBe(false);
    expect(loaded.metaloggers.map((m) => m.dataPath)).toEqual([lab.metalogger!.dataPath]);

    const text = await fs.readFile(config, 'utf8');
    for (const job of ['check-master', 'backup', 'verify']) {
      const run = await runCli(['run', job, '--config', config]);
      expect({ job, code: run.code, out: run.stdout }).toMatchObject({ job, code: 0 });
    }
    expect(await fs.readFile(config, 'utf8')).toBe(text);
  }, 300_000);

  test('a second run with the same answers changes nothing and says so', async () => {
    const before = await fs.stat(config);
    const pinned = await fs.readFile(knownHosts, 'utf8');
    const again = await runCli(['init', '--config', config, ...flags, '--json']);
    const report = JSON.parse(again.stdout);
    expect(report).toMatchObject({ job: 'init', status: 'OK', details: { changed: false } });
    expect(report.summary).toMatch(/nothing changed/);
    expect(again.code).toBe(0);
    expect((await fs.stat(config)).mtimeMs).toBe(before.mtimeMs);
    expect(await fs.readFile(knownHosts, 'utf8')).toBe(pinned);
  });

  test('another answer is not written over the existing config without --force, and says what differs', async () => {
    const text = await fs.readFile(config, 'utf8');
    const other = await runCli(['init', '--config', config, ...flags, '--store', path.join(lab.dir, 'other-store')]);
    expect(other.stdout).toMatch(/^MFS INIT UNKNOWN - .*exists and differs \(snapshotStore\.path\).*--force/);
    expect(other.code).toBe(3);
    expect(await fs.readFile(config, 'utf8')).toBe(text);
  });

  test('a host key that differs from the one in knownHosts is refused: nothing written, nothing pinned', async () => {
    const dir = path.join(lab.dir, 'mitm');
    await fs.mkdir(dir, { mode: 0o700 });
    const other = path.join(dir, 'other_host_key');
    await keygen(other, 'not-the-lab-host');
    const otherKey = (await fs.readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const wrong = `[127.0.0.1]:${lab.sshd!.port} ${otherKey}\n`;
    const kh = path.join(dir, 'known_hosts');
    await fs.writeFile(kh, wrong, { mode: 0o600 });
    const res = await runCli([
      'init',
      '--config',
      path.join(dir, 'config.yaml'),
      ...flags.map((f) => (f === knownHosts ? kh : f)),
    ]);
    expect(res.stdout).toMatch(/^MFS INIT CRITICAL - cannot read every DATA_PATH/);
    expect(res.stdout).toContain(`host key of [127.0.0.1]:${lab.sshd!.port} does not match ${kh}`);
    expect(res.code).toBe(2);
    expect(await fs.readFile(kh, 'utf8')).toBe(wrong);
    await expect(fs.stat(path.join(dir, 'config.yaml'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('--dry-run prints the config and writes nothing', async () => {
    const dry = path.join(lab.dir, 'dry', 'config.yaml');
    const res = await runCli([
      'init',
      '--config',
      dry,
      ...flags.map((f) => (f === knownHosts ? path.join(lab.dir, 'dry', 'kh') : f)),
      '--dry-run',
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^MFS INIT OK - dry run/);
    expect(res.stdout).toContain(`dataPath: "${lab.master.dataPath}"`);
    await expect(fs.stat(path.join(lab.dir, 'dry'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

/**
 * Before 1.6.5 there is no metalogger: the chunkservers' changelog_csback.N.mfs are the changelogs. init
 * lists them through the master (CLTOMA_CSERV_LIST) and writes them under chunkservers:.
 */
describe('mfs-jobs init on MooseFS 1.6.4 (no metalogger)', () => {
  const CS_IP = '10.87.0.1';
  let lab: Lab;
  let cs: NsChunkserver | undefined;
  let net: NetLab | undefined;

  beforeAll(async () => {
    // A 1.6.4 master refuses a chunkserver that registers from 127.0.0.0/8 ("you cannot use localhost"): it
    // listens on an address of this machine on a bridge of the test's own, with no port (nothing beyond it).
    net = await NetLab.create([], '10.87.0', 'mfsi');
    await net.joinFromHost(CS_IP);
    lab = await Lab.start({ lab: labGeneration('1.6.4') });
    cs = await NsChunkserver.start({}, path.join(lab.dir, 'cs'), '127.0.0.1', lab.generation, {
      MASTER_PORT: String(lab.master.ports.cs),
      CSSERV_LISTEN_HOST: CS_IP,
      CSSERV_LISTEN_PORT: String(await freePort()),
    });
    // Listed by the master (its registration in the log comes before the master has it); again after the
    // restart that saves an image: the chunkserver reconnects after MASTER_RECONNECTION_DELAY.
    const listed = () => NsChunkserver.waitListed(lab.master.ports.cl);
    await listed();
    await lab.makeChanges('init-cs', 10);
    await lab.saveImage();
    await listed();
    await lab.makeChanges('init-cs-after-image', 5);
    expect(await pathExists(path.join(cs.dataPath, 'changelog_csback.0.mfs'))).toBe(true);
  }, 120_000);
  afterAll(async () => {
    await cs?.stop().catch(() => undefined);
    await lab?.stop();
    await net?.destroy();
  });

  test('writes the chunkserver the master lists under chunkservers:, and backup and verify use it', async () => {
    const etc = path.join(lab.dir, 'etc');
    const config = path.join(etc, 'config.yaml');
    const sshd = lab.sshd!;
    const init = await runCli(
      [
        'init',
        '--config',
        config,
        '--master',
        `127.0.0.1:${lab.master.ports.cl}`,
        '--master-data-path',
        lab.master.dataPath,
        '--chunkserver-data-path',
        cs!.dataPath,
        '--state-dir',
        path.join(lab.dir, 'state'),
        '--ssh-port',
        String(sshd.port),
        '--ssh-key',
        sshd.clientKey,
        '--known-hosts',
        path.join(etc, 'known_hosts'),
        '--moosefs-prefix',
        lab.generation.prefix!,
      ],
      { timeoutMs: 180_000 },
    );
    expect({ code: init.code, out: init.stdout }).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^MFS INIT OK/),
    });
    expect(init.stdout).toContain(`chunkservers (their changelog_csback.N.mfs): ${CS_IP}`);
    const loaded = await loadConfig(config);
    expect(loaded.metaloggers).toEqual([]);
    // An address of this machine: read locally, as init does for metaloggers (SFTP is the other cases').
    expect(loaded.chunkservers.map((c) => [c.host, c.dataPath, c.local])).toEqual([[CS_IP, cs!.dataPath, true]]);
    for (const job of ['backup', 'verify']) {
      const run = await runCli(['run', job, '--config', config]);
      expect({ job, code: run.code, out: run.stdout }).toMatchObject({ job, code: 0 });
    }
  }, 300_000);
});

describe('mfs-jobs init with a master that does not answer', () => {
  test('one line naming the host, CRITICAL, nothing written', async () => {
    const port = await freePort();
    const dir = await fs.mkdtemp('/tmp/mfs-jobs-init-dead-');
    try {
      const config = path.join(dir, 'config.yaml');
      const res = await runCli(['init', '--config', config, '--master', `127.0.0.1:${port}`, '--state-dir', dir]);
      expect(res.stdout).toBe(`MFS INIT CRITICAL - master 127.0.0.1:${port} does not answer (connection refused)\n`);
      expect(res.code).toBe(2);
      expect(await fs.readdir(dir)).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  test('on a terminal a missing --master is asked for; without one it is a usage error (UNKNOWN)', async () => {
    const port = await freePort();
    const dir = await fs.mkdtemp('/tmp/mfs-jobs-init-ask-');
    try {
      const config = path.join(dir, 'config.yaml');
      // script(1) gives init a terminal; what is typed there answers the question.
      const init = `${process.execPath} ${MFS_JOBS_BIN} init --config ${config}`;
      const cmd = `printf '127.0.0.1:${port}\\n' | script -qec '${init}' /dev/null`;
      const asked = await execCapture('bash', ['-c', cmd], { timeoutMs: 60_000 });
      expect(asked.stdout).toContain("The master's address");
      expect(asked.stdout).toContain(
        `MFS INIT CRITICAL - master 127.0.0.1:${port} does not answer (connection refused)`,
      );
      expect(asked.code).toBe(2);
      const none = await runCli(['init', '--config', config]);
      expect(none.stdout).toBe(
        "MFS INIT UNKNOWN - --master HOST[:PORT] is needed (the master's client address; asked only on a terminal)\n",
      );
      expect(none.code).toBe(3);
      expect(await fs.readdir(dir)).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
