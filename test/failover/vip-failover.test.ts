import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { execCapture } from '../../lib/exec.js';
import { processAlive } from '../../lib/lock.js';
import { runningMasterPid } from '../../lib/mfsmaster.js';
import { MFS_JOBS_BIN, REPO_ROOT } from '../helpers/cli.js';
import { LabMetalogger, LabMount } from '../lab/moosefs.js';
import { NetLab, NsChunkserver, NsMaster, Ucarp, type Machine } from '../lab/netns.js';
import { sleep, waitFor } from '../lab/proc.js';
import { LabSshd } from '../lab/sshd.js';

/**
 * The redundant-master recipe, for real: machines A (master + ucarp) and B (standby + ucarp) share a
 * virtual IP; C runs a metalogger, a chunkserver and a client mount, all through the VIP. A dies
 * (kill -9 of mfsmaster and ucarp, link down); B's ucarp runs the shipped up-script, which runs
 * `bin/mfs-jobs run promote`. The client must carry on and lose nothing it was told was written.
 */

const VIP = '10.77.0.100';
const UP = path.join(REPO_ROOT, 'examples', 'ucarp', 'vip-up.sh');
const DOWN = path.join(REPO_ROOT, 'examples', 'ucarp', 'vip-down.sh');

async function writeDurably(file: string, data: Buffer): Promise<void> {
  const h = await fs.open(file, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A FUSE mount whose master may be gone: detach lazily, then end the mfsmount process by PID. */
async function dropMount(mount: LabMount | undefined): Promise<void> {
  if (!mount) return;
  await execCapture('umount', ['-l', mount.dir], { timeoutMs: 10_000 }).catch(() => undefined);
  await mount.daemon.kill9().catch(() => undefined);
}

/** Stop a daemonised mfsmaster (promote's, outliving mfs-jobs) by the PID in its lock file. */
async function killMasterOf(dataPath: string): Promise<void> {
  const pid = await runningMasterPid(dataPath);
  if (pid === undefined) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(`mfsmaster ${pid} to exit`, async () => !processAlive(pid), 10_000).catch(() => undefined);
}

/** A hook's promote/demote still running (ucarp started it in the background): end it by the PID in its lock. */
async function killHookRun(stateDir: string): Promise<void> {
  const text = await fs.readFile(path.join(stateDir, 'locks', 'failover.lock'), 'utf8').catch(() => '');
  const pid = text ? (JSON.parse(text) as { pid: number }).pid : undefined;
  if (pid && processAlive(pid)) process.kill(pid, 'SIGKILL');
}

interface PromoteState {
  status: string;
  summary: string;
  startedAt: string;
  details?: { rtoSeconds?: number; plan?: { reached: number }; sourcesUsed?: string[]; timings?: Record<string, number> };
}

async function readPromoteState(stateDir: string): Promise<PromoteState | undefined> {
  const text = await fs.readFile(path.join(stateDir, 'state', 'promote.json'), 'utf8').catch(() => undefined);
  return text ? (JSON.parse(text) as PromoteState) : undefined;
}

describe('virtual-IP failover with ucarp in network namespaces', () => {
  let dir: string;
  let net: NetLab;
  let A: Machine, B: Machine, C: Machine;
  let masterA: NsMaster;
  let standbyB: NsMaster;
  let sshd: LabSshd;
  let ucarpA: Ucarp | undefined;
  let ucarpB: Ucarp | undefined;
  let metalogger: LabMetalogger;
  let chunkserver: NsChunkserver | undefined;
  let mount: LabMount | undefined;
  let freshMount: LabMount | undefined;
  const stateDir = (m: string) => path.join(dir, m, 'mfs-jobs-state');

  /** mfs-jobs config of one machine: its own master as `standby`, the other machine's as `masters`. */
  async function writeConfig(self: Machine, selfMaster: NsMaster, other: Machine, otherDataPath: string): Promise<string> {
    const doc = {
      stateDir: stateDir(self.name),
      prometheus: { textfileDir: path.join(dir, self.name, 'textfile') },
      ssh: { port: 22, user: 'root', privateKey: sshd.clientKey, knownHosts: sshd.knownHosts, connectTimeoutSeconds: 5 },
      masters: [{ name: `master-${other === A ? 'a' : 'b'}`, host: other.ip, dataPath: otherDataPath, cliPort: 9421 }],
      metaloggers: [{ name: 'ml-c', host: C.ip, dataPath: metalogger.dataPath }],
      standby: { dataPath: selfMaster.dataPath, masterConfig: selfMaster.configFile, cliHost: '127.0.0.1', cliPort: 9421, vip: VIP },
      jobs: { promote: { fenceTimeoutSeconds: 1 } },
    };
    const file = path.join(dir, self.name, 'mfs-jobs.yaml');
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return file;
  }

  function startUcarp(m: Machine, skew: number, config: string): Ucarp {
    return Ucarp.start(m, {
      dir,
      vip: VIP,
      vhid: 42,
      password: `mfs-${process.pid}`,
      skew,
      upScript: UP,
      downScript: DOWN,
      env: { MFS_JOBS: MFS_JOBS_BIN, MFS_JOBS_CONFIG: config, MFS_JOBS_HOOK_LOG: path.join(dir, m.name, 'hook.log') },
    });
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-failover-'));
    net = await NetLab.create(['A', 'B', 'C']);
    [A, B, C] = [net.machine('A'), net.machine('B'), net.machine('C')];
    masterA = await NsMaster.create(A, path.join(dir, A.name), { bootstrap: true });
    standbyB = await NsMaster.create(B, path.join(dir, B.name), { bootstrap: false });
    await masterA.start();
    sshd = await LabSshd.start(path.join(dir, 'ssh-c'), { host: C.ip, port: 22, wrap: C.wrap });
    metalogger = await LabMetalogger.create(path.join(dir, 'ml-c'), { host: VIP, port: NsMaster.PORTS.ml });
    const configA = await writeConfig(A, masterA, B, standbyB.dataPath);
    const configB = await writeConfig(B, standbyB, A, masterA.dataPath);

    // A takes the VIP first; its promote finds its own master serving and changes nothing.
    ucarpA = startUcarp(A, 0, configA);
    await waitFor('VIP on A', async () => (await A.addresses()).includes(VIP), 20_000);
    // B starts second: it may flap to MASTER for a moment (fencing refuses, demote does nothing).
    ucarpB = startUcarp(B, 50, configB);
    await sleep(4_000);
    await waitFor('VIP on A only', async () => (await A.addresses()).includes(VIP) && !(await B.addresses()).includes(VIP), 20_000);

    await metalogger.start({ wrap: C.wrap });
    chunkserver = await NsChunkserver.start(C, path.join(dir, 'cs-c'), VIP);
    await waitFor('chunkserver registered with A', async () => /chunk servers:/.test((await execCapture(masterA.mfscli, ['-H', '127.0.0.1', '-P', '9421', '-SCS', '-p'])).stdout), 20_000);
    mount = await LabMount.mount(path.join(dir, 'mnt'), { host: VIP, port: NsMaster.PORTS.cl }, path.join(dir, 'mfsmount.log'), { wrap: C.wrap });
  }, 120_000);

  afterAll(async () => {
    await dropMount(freshMount);
    await dropMount(mount);
    await ucarpA?.kill9().catch(() => undefined);
    await ucarpB?.kill9().catch(() => undefined);
    for (const m of [A, B]) if (m) await killHookRun(stateDir(m.name));
    await metalogger?.kill9().catch(() => undefined);
    await chunkserver?.daemon.kill9().catch(() => undefined);
    await sshd?.stop().catch(() => undefined);
    await masterA?.kill9().catch(() => undefined);
    if (masterA) await killMasterOf(masterA.dataPath);
    if (standbyB) await killMasterOf(standbyB.dataPath);
    if (net) {
      await net.destroy();
      expect(await net.leftovers()).toEqual([]);
    }
    if (dir && !process.env.MFS_JOBS_KEEP_TEST_DIR) await fs.rm(dir, { recursive: true, force: true });
  }, 120_000);

  test('kill -9 of A (master and ucarp, link down): B promotes via ucarp, the client carries on, nothing acknowledged is lost', async () => {
    // Files with content, each fsynced: acknowledged by MooseFS.
    const written = new Map<string, string>();
    await fs.mkdir(path.join(mount!.dir, 'before'));
    for (let i = 0; i < 60; i++) {
      const data = randomBytes(1024 + ((i * 7919) % 65536));
      await writeDurably(path.join(mount!.dir, 'before', `file-${i}`), data);
      written.set(`before/file-${i}`, sha(data));
    }
    const target = (await masterA.info()).metadataVersion - 1;
    await waitFor(`metalogger to reach version ${target}`, async () => ((await metalogger.lastVersion()) ?? 0) >= target, 20_000);
    const lastPromoteBefore = await readPromoteState(stateDir(B.name));

    // A dies like a machine: master and ucarp killed, link down.
    const killedAt = Date.now();
    await masterA.kill9();
    await ucarpA!.kill9();
    await A.linkDown();

    await waitFor('VIP on B', async () => (await B.addresses()).includes(VIP), 30_000, 50);
    const vipAt = Date.now();
    const info = await waitFor('master on B to serve', async () => standbyB.info().catch(() => undefined), 60_000, 50);
    const servingAt = Date.now();
    const state = await waitFor(
      "B's promote to finish",
      async () => {
        const s = await readPromoteState(stateDir(B.name));
        return s && s.startedAt !== lastPromoteBefore?.startedAt && Date.parse(s.startedAt) >= killedAt - 1000 ? s : undefined;
      },
      60_000,
    );
    expect(state.status).toBe('OK');
    expect(state.summary).toMatch(/^promoted: serving metadata version \d+ in [\d.]+ s from ml-c; RPO 0 versions$/);
    expect(state.details?.plan?.reached).toBeGreaterThanOrEqual(target + 1);
    expect(info.metadataVersion).toBeGreaterThanOrEqual(target + 1);

    // The client mount carries on: its first write through the VIP after the crash.
    const after = randomBytes(4096);
    await waitFor('a write through the old mount', async () => {
      await writeDurably(path.join(mount!.dir, 'after-failover'), after);
      return true;
    }, 60_000, 200);
    const writeAt = Date.now();
    written.set('after-failover', sha(after));
    const s = (ms: number) => (ms / 1000).toFixed(2);
    console.log(
      `RTO (kill -9 of A at t=0): VIP on B ${s(vipAt - killedAt)} s, master on B serving ${s(servingAt - killedAt)} s, ` +
        `first client write ${s(writeAt - killedAt)} s; promote's own RTO ${state.details?.rtoSeconds} s (hook call to serving; ms: ${JSON.stringify(state.details?.timings)})`,
    );

    // Every acknowledged file, read from a freshly started second mount (no page cache of the first).
    freshMount = await LabMount.mount(path.join(dir, 'mnt-fresh'), { host: VIP, port: NsMaster.PORTS.cl }, path.join(dir, 'mfsmount-fresh.log'), { wrap: C.wrap });
    for (const [name, digest] of written) expect(sha(await fs.readFile(path.join(freshMount.dir, name)))).toBe(digest);

    // New writes succeed, and the fresh mount sees them.
    const more = randomBytes(100_000);
    await writeDurably(path.join(mount!.dir, 'new-after-failover'), more);
    expect(sha(await fs.readFile(path.join(freshMount.dir, 'new-after-failover')))).toBe(sha(more));
  }, 180_000);
});
