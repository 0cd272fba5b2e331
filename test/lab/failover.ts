import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { execCapture, type ExecResult } from '../../lib/core/exec.js';
import { processAlive } from '../../lib/core/lock.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { MFS_JOBS_BIN, REPO_ROOT } from '../helpers/cli.js';
import { generationConfig, labGeneration, type LabGeneration } from './generations.js';
import { LabMetalogger, LabMount } from './moosefs.js';
import { Keepalived, NetLab, NsChunkserver, NsMaster, Ucarp, type Machine } from './netns.js';
import { Daemon, sleep, waitFor } from './proc.js';
import { LabSshd } from './sshd.js';

/**
 * The redundant-master recipe, for real: machines A (master + ucarp) and B (standby + ucarp) share a
 * virtual IP; C runs a metalogger, a chunkserver and a client mount, all through the VIP. ucarp runs the
 * shipped hook scripts, which run `bin/mfs-jobs run promote` / `run demote` with each machine's config.
 * The lab runs one MooseFS generation (Debian's 3.0.117 unless told otherwise). Before 1.6.5 there is no
 * metalogger: that lab is the seed's recipe, an hourly `mfs-jobs run backup` of the other master into each
 * machine's snapshot store (over SFTP to an sshd on each master's machine) and the chunkserver's `changelog_csback.N.mfs`
 * (over SFTP to C). Everything is started and stopped by PID; `stop()` removes the namespaces and
 * reports leftovers.
 */

export const UP = path.join(REPO_ROOT, 'examples', 'ucarp', 'vip-up.sh');
/** The seed recipe's up-script (cp the metalogger's files, `mfsmaster -a`): promote's baseline. */
export const SEED_UP = path.join(REPO_ROOT, 'bench', 'baseline', 'vip-up-seed.sh');
/** The seed's hook form around mfs-jobs: the up-script runs `mfs-jobs run promote` and waits for it. */
export const SYNC_UP = path.join(REPO_ROOT, 'test', 'failover', 'vip-up-sync.sh');
const upScriptOf = (p: Promoter) => (p === 'seed script' ? SEED_UP : p === 'mfs-jobs sync' ? SYNC_UP : UP);
/** The rebooted machine's ucarp skew (a lower priority; without --preempt it stays BACKUP anyway). */
const ROUND_SKEW = 50;
const DOWN = path.join(REPO_ROOT, 'examples', 'ucarp', 'vip-down.sh');
/** keepalived's notify script (`<script> master|backup|fault`), installed into the lab as an operator would. */
export const KEEPALIVED_NOTIFY = path.join(REPO_ROOT, 'examples', 'keepalived', 'mfs-jobs-notify.sh');
/** The seed's up-script as keepalived's notify script (cp + `mfsmaster -a` on `master`): its keepalived baseline. */
export const SEED_NOTIFY = path.join(REPO_ROOT, 'bench', 'baseline', 'keepalived-notify-seed.sh');
/** keepalived's notify script for a round's up-script: the seed's in its notify form, else the shipped one. */
const notifyOf = (upScript: string) => (upScript === SEED_UP ? SEED_NOTIFY : KEEPALIVED_NOTIFY);
/** keepalived's priority for ucarp's skew 0 (a higher skew: a lower priority). */
const KEEPALIVED_PRIORITY = 150;
/** The CLI of the compiled tree this file runs from: the hooks run the same code as the test. */
const COMPILED_CLI = fileURLToPath(new URL('../../bin/cli.js', import.meta.url));

/** Write, fsync, close: when this returns, MooseFS has acknowledged the file. */
export async function writeDurably(file: string, data: Buffer): Promise<void> {
  const h = await fs.open(file, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `count` files of varied sizes under `dir` of a mount, each fsynced: acknowledged by MooseFS. Name → sha256. */
export async function writeFiles(
  mount: LabMount,
  dir: string,
  count: number,
  written: Map<string, string>,
): Promise<void> {
  await fs.mkdir(path.join(mount.dir, dir), { recursive: true });
  for (let i = 0; i < count; i++) {
    const data = randomBytes(1024 + ((i * 7919) % 65536));
    await writeDurably(path.join(mount.dir, dir, `file-${i}`), data);
    written.set(`${dir}/file-${i}`, sha256(data));
  }
}

/** A suite's failover lab: started before its tests, stopped after them with nothing left behind. */
/**
 * One failover lab per suite, started before its tests and torn down after (leftovers fail the suite);
 * the getters name its parts: A serves at the start, B stands by, the client's mount is on C.
 */
export function useFailoverLab(options: Parameters<typeof FailoverLab.start>[0]): {
  readonly lab: FailoverLab;
  readonly A: Machine;
  readonly B: Machine;
  readonly masterA: NsMaster;
  readonly standbyB: NsMaster;
  readonly mount: LabMount;
} {
  const holder: { lab?: FailoverLab } = {};
  beforeAll(async () => {
    holder.lab = await FailoverLab.start(options);
  }, 120_000);
  afterAll(async () => {
    if (holder.lab) expect(await holder.lab.stop()).toEqual([]);
  }, 120_000);
  const lab = () => holder.lab!;
  return {
    get lab() {
      return lab();
    },
    get A() {
      return lab().A;
    },
    get B() {
      return lab().B;
    },
    get masterA() {
      return lab().master(lab().A);
    },
    get standbyB() {
      return lab().master(lab().B);
    },
    get mount() {
      return lab().mount!;
    },
  };
}

/** A FUSE mount whose master may be gone: detach lazily, then end the mfsmount process by PID. */
export async function dropMount(mount: LabMount | undefined): Promise<void> {
  if (!mount) return;
  await execCapture('umount', ['-l', mount.dir], { timeoutMs: 10_000 }).catch(() => undefined);
  await mount.daemon.kill9().catch(() => undefined);
}

/** Stop a daemonised mfsmaster (promote's, outliving mfs-jobs) by the PID in its lock file. */
export async function killMasterOf(dataPath: string): Promise<void> {
  const pid = await runningMasterPid(dataPath);
  if (pid === undefined) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(`mfsmaster ${pid} to exit`, async () => !processAlive(pid), 10_000).catch(() => undefined);
}

export interface PromoteState {
  status: string;
  summary: string;
  startedAt: string;
  details?: {
    handedOff?: boolean;
    triggeredBy?: 'vip' | 'hook';
    clientsHeld?: boolean;
    rtoSeconds?: number;
    restoreSeconds?: number;
    metadataVersion?: number;
    restoreCommand?: string;
    chunkIds?: { from: string; to: string; chunks: number; locked: number } | { error: string } | null;
    moosefs?: string;
    plan?: { reached: number; newest?: number };
    rpo?: { versions: number; seconds?: number | null };
    sourcesUsed?: string[];
    timings?: Record<string, number>;
    clients?:
      | ({ mounts: number; chunkservers: number; firstMountMs?: number; firstChunkserverMs?: number } & {
          by?: string;
          pid?: number;
        })
      | null;
    keepalivedFault?: { since: string; trackFile: string; reason: string; watcher: number | null };
  };
}

/** `<stateDir>/state/promote-clients.json`: the clients-back watch's record of the last promotion. */
export interface ClientsState {
  status: string;
  summary: string;
  finishedAt: string;
  details?: {
    promotedAt: string;
    metadataVersion: number;
    clients: { mounts: number; chunkservers: number; firstMountMs?: number; firstChunkserverMs?: number };
  };
}

/**
 * Which up-script promotes in a round (`mfs-jobs sync`: promote in the foreground of the up-script, no daemon;
 * `mfs-jobs detached`: the shipped up-script, its promote detached, no daemon; `mfs-jobs`: the shipped
 * up-script joining the standby daemon's promotion).
 * In a keepalived lab the seed's script is bench/baseline/keepalived-notify-seed.sh and every mfs-jobs promoter
 * is examples/keepalived/mfs-jobs-notify.sh (its job detached); `mfs-jobs sync` there means: no daemon.
 */
export type Promoter = 'seed script' | 'mfs-jobs' | 'mfs-jobs sync' | 'mfs-jobs detached';

/** One measured failover: times from the kill -9 (s), and promote's own report for an mfs-jobs round. */
export interface FailoverRound {
  promoter: Promoter;
  standby: string;
  /** The machine that promoted. */
  promoted: Machine;
  vipSeconds: number;
  firstWriteSeconds: number;
  promote?: PromoteState;
}

export class FailoverLab {
  readonly masters = new Map<Machine, NsMaster>();
  readonly configs = new Map<Machine, string>();
  readonly ucarps = new Map<Machine, Ucarp>();
  /** With `vrrp: 'keepalived'`, instead of ucarp. */
  readonly keepaliveds = new Map<Machine, Keepalived>();
  private vrrp: 'ucarp' | 'keepalived' = 'ucarp';
  /** The notify script each machine's keepalived was started with (switchUpScript restarts it on a change). */
  private readonly notifyScripts = new Map<Machine, string>();
  /** `mfs-jobs daemon` on a machine: takes the hook's `run promote` over its socket. */
  readonly daemons = new Map<Machine, Daemon>();
  /** sshd on C (metalogger, chunkserver files). */
  sshd: LabSshd | undefined;
  /** sshd on A and B, where the other machine's backup job pulls the master's files from (no metalogger before 1.6.5). */
  readonly masterSshds = new Map<Machine, LabSshd>();
  /** Undefined before 1.6.5. */
  metalogger: LabMetalogger | undefined;
  chunkserver: NsChunkserver | undefined;
  /** The client's mount on C, through the VIP. */
  mount: LabMount | undefined;
  private readonly extraMounts: LabMount[] = [];
  private readonly chunkserversStarted: NsChunkserver[] = [];
  private registrationsAtCrash = 0;
  private metaloggerLocal = false;
  /** The chunkserver's tmpfs, unmounted by stop(). */
  private chunkDisk: string | undefined;
  private promoteOnVip = false;
  /** Extra mfschunkserver.cfg lines (the bench's fast-failover tuning: MASTER_RECONNECTION_DELAY = 1). */
  private chunkserverConfig: Record<string, string> = {};
  private extraConfig: ((self: Machine, lab: FailoverLab) => Record<string, unknown>) | undefined;
  /** The `mfs-jobs` the hooks and `runJobs` run. */
  private mfsJobs = MFS_JOBS_BIN;
  private initialUpScript = UP;

  private constructor(
    readonly dir: string,
    readonly net: NetLab,
    readonly vip: string,
    readonly lab: LabGeneration,
  ) {}

  get A(): Machine {
    return this.net.machine('A');
  }
  get B(): Machine {
    return this.net.machine('B');
  }
  get C(): Machine {
    return this.net.machine('C');
  }

  master(m: Machine): NsMaster {
    return this.masters.get(m)!;
  }

  stateDir(m: Machine): string {
    return path.join(this.dir, m.name, 'mfs-jobs-state');
  }

  /** A holds the VIP and serves; B stands by; C's metalogger, chunkserver and mount follow the VIP. */
  /**
   * `metaloggerLocal`: promote reads C's metalogger DATA_PATH as a local directory (the namespaces share
   * one filesystem) instead of over SFTP — the footing of the seed script's `cp`, for comparing the two.
   */
  /**
   * `tag`: the lab's link and namespace name prefix (NetLab.create); `extraConfig`: keys added to each
   * machine's mfs-jobs config (the quorum suite's `quorum:`), given the machine and the lab.
   */
  static async start(options: {
    prefix: string;
    vip: string;
    lab?: LabGeneration;
    metaloggerLocal?: boolean;
    promoteOnVip?: boolean;
    chunkserverConfig?: Record<string, string>;
    tag?: string;
    extraConfig?: (self: Machine, lab: FailoverLab) => Record<string, unknown>;
    /** Who moves the VIP: ucarp with examples/ucarp's scripts, or keepalived with examples/keepalived's. */
    vrrp?: 'ucarp' | 'keepalived';
    /** ucarp's up-script on both machines from the start (default: the shipped one; SYNC_UP: the seed's form). */
    upScript?: string;
  }): Promise<FailoverLab> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-failover-'));
    const net = await NetLab.create(['A', 'B', 'C'], options.prefix, options.tag);
    const lab = new FailoverLab(dir, net, options.vip, options.lab ?? labGeneration());
    lab.metaloggerLocal = options.metaloggerLocal ?? false;
    lab.promoteOnVip = options.promoteOnVip ?? false;
    lab.chunkserverConfig = options.chunkserverConfig ?? {};
    lab.extraConfig = options.extraConfig;
    lab.vrrp = options.vrrp ?? 'ucarp';
    lab.initialUpScript = options.upScript ?? UP;
    try {
      await lab.setUp();
      return lab;
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }

  get hasMetalogger(): boolean {
    return this.lab.generation.hasMetalogger;
  }

  get chunkserverDir(): string {
    return path.join(this.dir, 'cs-c');
  }

  private async setUp(): Promise<void> {
    const { A, B, C, lab } = this;
    if (COMPILED_CLI !== path.join(REPO_ROOT, 'dist', 'bin', 'cli.js')) this.mfsJobs = await this.launcher();
    this.masters.set(A, await NsMaster.create(A, path.join(this.dir, A.name), { bootstrap: true, lab }));
    this.masters.set(B, await NsMaster.create(B, path.join(this.dir, B.name), { bootstrap: false, lab }));
    await this.master(A).start();
    this.sshd = await LabSshd.start(path.join(this.dir, 'ssh-c'), { host: C.ip, port: 22, wrap: C.wrap });
    if (this.hasMetalogger) {
      this.metalogger = await LabMetalogger.create(
        path.join(this.dir, 'ml-c'),
        { host: this.vip, port: NsMaster.PORTS.ml },
        {},
        lab,
      );
    } else {
      for (const m of [A, B])
        this.masterSshds.set(
          m,
          await LabSshd.start(path.join(this.dir, `ssh-${m.name}`), { host: m.ip, port: 22, wrap: m.wrap }),
        );
    }
    this.configs.set(A, await this.writeConfig(A, B));
    this.configs.set(B, await this.writeConfig(B, A));

    // A takes the VIP first; its promote finds its own master serving and changes nothing.
    await this.startVrrp(A, 0, this.initialUpScript);
    await waitFor('VIP on A', async () => (await A.addresses()).includes(this.vip), 20_000);
    // B starts second: it may flap to MASTER for a moment (fencing refuses, demote does nothing).
    await this.startVrrp(B, 50, this.initialUpScript);
    await sleep(4_000);
    await this.waitVipOnlyOn(A);

    await this.metalogger?.start({ wrap: C.wrap });
    // The chunkserver's disk is a tmpfs of its own (allocated as used): on this machine's ext4 (59M free
    // blocks, 20M available to users) a 1.6.4 master was told a used space past its total and answered
    // every write ENOSPC; and a master wants more than 1 GiB free on a chunkserver to place a chunk.
    this.chunkDisk = path.join(this.chunkserverDir, 'chunks');
    await fs.mkdir(this.chunkDisk, { recursive: true, mode: 0o700 });
    const mounted = await execCapture('mount', [
      '-t',
      'tmpfs',
      '-o',
      'size=4g,mode=0700',
      'mfs-jobs-lab-chunks',
      this.chunkDisk,
    ]);
    if (mounted.code !== 0) throw new Error(`cannot mount a tmpfs on ${this.chunkDisk}: ${mounted.stderr.trim()}`);
    await this.startChunkserver(A);
    this.mount = await this.mountClient('mnt');
    this.servingMachine = A;
  }

  /** C's chunkserver, following the VIP; started again on the same chunks (a 1.6.4 one dies when its master does). */
  async startChunkserver(serving: Machine): Promise<NsChunkserver> {
    const cs = await NsChunkserver.start(this.C, this.chunkserverDir, this.vip, this.lab, this.chunkserverConfig);
    this.chunkserver = cs;
    this.chunkserversStarted.push(cs);
    await cs.waitRegistered(this.master(serving));
    return cs;
  }

  /**
   * C's chunkserver serving `m`'s master after a failover. A 1.6.4 chunkserver dies (SIGSEGV) at its first
   * reconnect after losing its master, its unflushed changelog_csback buffer with it: it is started again
   * on the same chunks. Returns how the old one ended (undefined: it carried on and registered).
   */
  async chunkserverFollow(
    m: Machine,
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const cs = this.chunkserver!;
    const outcome = await waitFor(
      `C's chunkserver to register with ${m.name}, or to die`,
      async () => {
        if (!cs.daemon.running) return 'died';
        return (await cs.isRegistered(this.master(m), this.registrationsAtCrash)) ? 'registered' : undefined;
      },
      timeoutMs,
    );
    if (outcome === 'registered') return undefined;
    const exit = await cs.daemon.waitExit(1_000);
    await this.startChunkserver(m);
    return exit;
  }

  /** `node <this tree's bin/cli.js>`: the code the test itself runs, when that is not dist/ (bin/mfs-jobs loads dist/). */
  private async launcher(): Promise<string> {
    const file = path.join(this.dir, 'mfs-jobs');
    await fs.writeFile(file, `#!/bin/sh\nexec ${process.execPath} ${COMPILED_CLI} "$@"\n`, { mode: 0o755 });
    return file;
  }

  /** `mfs-jobs ARGS` with machine `m`'s config, inside its network (as cron would run it there). */
  runJobs(m: Machine, args: string[], timeoutMs = 120_000): Promise<ExecResult> {
    return execCapture('nsenter', [`--net=${m.netnsPath}`, this.mfsJobs, ...args], {
      timeoutMs,
      env: { ...process.env, ...this.runDirEnv(m), MFS_JOBS_CONFIG: this.configs.get(m) },
    });
  }

  masterName(m: Machine): string {
    return `master-${m === this.A ? 'a' : 'b'}`;
  }

  snapshotStore(m: Machine): string {
    return path.join(this.dir, m.name, 'snapshots');
  }

  /**
   * Write both machines' configs again with other `extraConfig` keys (the bench's quorum on and off): hooks
   * read the file at each run; a daemon reads it when it starts.
   */
  async rewriteConfigs(extraConfig: ((self: Machine, lab: FailoverLab) => Record<string, unknown>) | undefined) {
    this.extraConfig = extraConfig;
    this.configs.set(this.A, await this.writeConfig(this.A, this.B));
    this.configs.set(this.B, await this.writeConfig(this.B, this.A));
  }

  /**
   * mfs-jobs config of one machine: its own master as `standby`, the other machine's as `masters`, and
   * the generation's binaries. Where there is a metalogger it is the source; before 1.6.5 the sources
   * are this machine's snapshot store (filled by `run backup` of the other master) and C's chunkserver.
   */
  private async writeConfig(self: Machine, other: Machine): Promise<string> {
    const sshd = this.sshd!;
    const otherSshd = this.masterSshds.get(other);
    const master = {
      name: this.masterName(other),
      host: other.ip,
      dataPath: this.master(other).dataPath,
      cliPort: 9421,
    };
    const doc = {
      stateDir: this.stateDir(self),
      prometheus: { textfileDir: path.join(this.dir, self.name, 'textfile') },
      ssh: {
        port: 22,
        user: 'root',
        privateKey: sshd.clientKey,
        knownHosts: sshd.knownHosts,
        connectTimeoutSeconds: 5,
      },
      masters: [
        otherSshd ? { ...master, ssh: { privateKey: otherSshd.clientKey, knownHosts: otherSshd.knownHosts } } : master,
      ],
      ...(this.metalogger
        ? {
            metaloggers: [
              {
                name: 'ml-c',
                host: this.C.ip,
                dataPath: this.metalogger.dataPath,
                ...(this.metaloggerLocal ? { local: true } : {}),
              },
            ],
          }
        : {
            chunkservers: [{ name: 'cs-c', host: this.C.ip, dataPath: NsChunkserver.dataPathIn(this.chunkserverDir) }],
            snapshotStore: { path: this.snapshotStore(self) },
          }),
      standby: {
        dataPath: this.master(self).dataPath,
        masterConfig: this.master(self).configFile,
        cliHost: '127.0.0.1',
        cliPort: 9421,
        vip: this.vip,
        promoteOnVip: this.promoteOnVip,
        ...(this.vrrp === 'keepalived'
          ? { hookScripts: [this.notifyScriptPath], keepalivedTrackFile: this.trackFilePath(self) }
          : {}),
      },
      ...generationConfig(this.lab),
      // Scheduled jobs stay off: a lab daemon only takes the hooks' runs (`run` ignores `enabled`).
      jobs: {
        ...Object.fromEntries(
          ['check-master', 'check-standby', 'verify', 'prune', 'drill'].map((j) => [j, { enabled: false }]),
        ),
        promote: { fenceTimeoutSeconds: 1 },
        backup: { enabled: false, ...(this.metalogger ? {} : { sources: [master.name] }) },
      },
      ...this.extraConfig?.(self, this),
    };
    const file = path.join(this.dir, self.name, 'mfs-jobs.yaml');
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return file;
  }

  /**
   * Each machine's run directory for the daemon's hand-off link, inside the lab (a killed daemon's link
   * goes with the lab, not left in /run/mfs-jobs).
   */
  private runDirEnv(m: Machine): NodeJS.ProcessEnv {
    return { MFS_JOBS_RUN_DIR: path.join(this.dir, m.name, 'run') };
  }

  /** `mfs-jobs daemon` on `m`, in its network, with its config; resolves once its hand-off socket listens. */
  async startDaemon(m: Machine): Promise<Daemon> {
    const daemon = new Daemon(
      `mfs-jobs daemon on ${m.name}`,
      this.mfsJobs,
      ['daemon'],
      path.join(this.dir, m.name, 'daemon.log'),
      { wrap: m.wrap, env: { ...process.env, ...this.runDirEnv(m), MFS_JOBS_CONFIG: this.configs.get(m) } },
    );
    this.daemons.set(m, daemon);
    await waitFor(
      `${daemon.name} to listen`,
      async () => (await daemon.log()).includes('hand-off socket listening') || !daemon.running,
      20_000,
    );
    if (!daemon.running) throw new Error(`${daemon.name} exited: ${(await daemon.log()).slice(-500)}`);
    return daemon;
  }

  /** ucarp on `m` with the shipped hook scripts (or another up-script); a higher skew means a lower priority. */
  startUcarp(m: Machine, skew: number, upScript = UP): Ucarp {
    const ucarp = Ucarp.start(m, {
      dir: this.dir,
      vip: this.vip,
      vhid: 42,
      password: `mfs-${process.pid}`,
      skew,
      upScript,
      downScript: DOWN,
      env: { ...this.hookEnv(m), ...this.seedEnv(m) },
    });
    this.ucarps.set(m, ucarp);
    return ucarp;
  }

  /** ucarp (with `upScript`) or keepalived on `m`, as the lab was started with; a higher skew means a lower priority. */
  async startVrrp(m: Machine, skew: number, upScript = UP): Promise<void> {
    if (this.vrrp === 'ucarp') {
      this.startUcarp(m, skew, upScript);
      return;
    }
    const source = notifyOf(upScript);
    const keepalived = await Keepalived.start(m, {
      dir: this.dir,
      vip: this.vip,
      vrid: 42,
      password: `mfs${process.pid}`.slice(0, 8),
      priority: KEEPALIVED_PRIORITY - skew,
      notifyScript: await this.installNotifyScript(source),
      trackFile: await this.trackFile(m),
      env: { ...this.hookEnv(m), ...this.seedEnv(m) },
    });
    this.keepaliveds.set(m, keepalived);
    this.notifyScripts.set(m, source);
  }

  /**
   * keepalived's track file on `m` (standby.keepalivedTrackFile): in its state directory, which must exist
   * before keepalived starts (keepalived drops a track file whose directory is missing).
   */
  async trackFile(m: Machine): Promise<string> {
    await fs.mkdir(this.stateDir(m), { recursive: true, mode: 0o700 });
    return this.trackFilePath(m);
  }

  trackFilePath(m: Machine): string {
    return path.join(this.stateDir(m), 'keepalived-fault');
  }

  /** The keepalived notify script where keepalived's enable_script_security accepts it: root's, 0755, in root's directory. */
  get notifyScriptPath(): string {
    return path.join(this.dir, 'hooks', 'mfs-jobs-notify.sh');
  }

  private async installNotifyScript(source = KEEPALIVED_NOTIFY): Promise<string> {
    const file = path.join(path.dirname(this.notifyScriptPath), path.basename(source));
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    await fs.copyFile(source, file);
    await fs.chmod(file, 0o755);
    return file;
  }

  /** The hooks' environment on `m`: the mfs-jobs to run, its config, the hook log. */
  private hookEnv(m: Machine): NodeJS.ProcessEnv {
    return {
      MFS_JOBS: this.mfsJobs,
      ...this.runDirEnv(m),
      MFS_JOBS_CONFIG: this.configs.get(m),
      MFS_JOBS_HOOK_LOG: path.join(this.dir, m.name, 'hook.log'),
    };
  }

  /** What the seed up-script needs: the metalogger's DATA_PATH, this machine's, its mfsmaster and config. */
  private seedEnv(m: Machine): NodeJS.ProcessEnv {
    if (!this.metalogger) return {};
    const master = this.master(m);
    return {
      SEED_ML_DATA_PATH: this.metalogger.dataPath,
      SEED_DATA_PATH: master.dataPath,
      SEED_MFSMASTER: this.lab.mfsmaster,
      SEED_MFSMASTER_CFG: master.configFile,
    };
  }

  /** Which machine serves (holds the VIP and its master answers). */
  serving = (): Machine => this.servingMachine;
  private servingMachine!: Machine;

  /**
   * Give the cluster a real image (a clean restart of A's master writes one; the metalogger downloads it
   * when it reconnects) and give B `promoter`'s up-script (and, for mfs-jobs, its daemon): the starting
   * point of alternating failover rounds. A standby whose round is the seed script's runs no daemon: with
   * `standby.promoteOnVip` the daemon would promote into the DATA_PATH the script restores into.
   */
  async prepareRounds(first: Promoter): Promise<void> {
    if (first === 'mfs-jobs') await this.startDaemon(this.B);
    await this.master(this.A).restart();
    await this.metalogger!.stop();
    await this.metalogger!.start({ wrap: this.C.wrap });
    await waitFor(
      'the metalogger to download the image',
      async () =>
        fs.stat(path.join(this.metalogger!.dataPath, 'metadata_ml.mfs.back')).then(
          () => true,
          () => false,
        ),
      30_000,
    );
    await this.switchUpScript(this.B, ROUND_SKEW, upScriptOf(first));
  }

  /**
   * One failover: `files` acknowledged files written (into `written`), on the metalogger; the serving
   * machine crashes; the standby's up-script (`promoter`'s) promotes; the client's first durable write
   * through its old mount after the crash is timed. Then the dead machine boots again as the standby of
   * the next round, with `next`'s up-script, and the chunkserver follows the new master.
   */
  /**
   * `killPhase`: kill at a moment `phaseMs` into a `periodMs` cycle of the wall clock. The chunkserver
   * retries its master on a fixed timer (MASTER_RECONNECTION_DELAY): where the kill falls in that cycle
   * decides whether it reconnects at once or a whole period later, for either script. Giving both scripts
   * of a pair the same phase compares them on the same footing (the bench spreads the phases over pairs).
   */
  async failoverRound(
    promoter: Promoter,
    next: Promoter,
    written: Map<string, string>,
    tag: string,
    o: { killPhase?: { periodMs: number; phaseMs: number } } = {},
  ): Promise<FailoverRound> {
    const serving = this.servingMachine;
    const standby = serving === this.A ? this.B : this.A;
    await writeFiles(this.mount!, tag, 20, written);
    const target = (await this.master(serving).info()).metadataVersion - 1;
    await waitFor(
      `metalogger to reach version ${target}`,
      async () => ((await this.metalogger!.lastVersion()) ?? 0) >= target,
      20_000,
    );
    const lastPromote = await this.readPromoteState(standby);
    if (o.killPhase) {
      const { periodMs, phaseMs } = o.killPhase;
      await sleep((((phaseMs - (Date.now() % periodMs)) % periodMs) + periodMs) % periodMs);
    }
    const killedAt = Date.now();
    await this.crash(serving);
    await waitFor(`VIP on ${standby.name}`, async () => (await standby.addresses()).includes(this.vip), 30_000, 20);
    const vipAt = Date.now();
    const after = randomBytes(4096);
    await waitFor(
      'a write through the old mount',
      async () => {
        await writeDurably(path.join(this.mount!.dir, `after-${tag}`), after);
        return true;
      },
      60_000,
      50,
    );
    const writeAt = Date.now();
    written.set(`after-${tag}`, sha256(after));
    const promote =
      promoter !== 'seed script' ? await this.waitPromoteAfter(standby, killedAt, lastPromote) : undefined;
    await this.reboot(serving, ROUND_SKEW, { upScript: upScriptOf(next), daemon: next === 'mfs-jobs' });
    await this.waitVipOnlyOn(standby);
    await this.chunkserverFollow(standby);
    this.servingMachine = standby;
    return {
      promoter,
      standby: standby.name,
      promoted: standby,
      vipSeconds: (vipAt - killedAt) / 1000,
      firstWriteSeconds: (writeAt - killedAt) / 1000,
      promote,
    };
  }

  /**
   * A partition of the VRRP/CARP kind: `m` stops hearing the other machine's adverts while TCP between
   * them still flows. ucarp reads adverts with libpcap, ahead of the receiver's netfilter, so they are
   * dropped on the bridge instead (nftables' bridge family, a table of this test's own): frames of IP
   * protocol 112 on their way out to `m`'s port. `false` heals it (the table goes).
   */
  async deafToAdverts(m: Machine, deaf: boolean): Promise<void> {
    const nft = async (...args: string[]) => {
      const res = await execCapture('nft', args);
      if (res.code !== 0) throw new Error(`nft ${args.join(' ')}: ${res.stderr.trim() || `exit ${res.code}`}`);
    };
    if (!deaf) {
      if (this.deafTable) await nft('delete', 'table', 'bridge', this.deafTable);
      this.deafTable = undefined;
      return;
    }
    this.deafTable = `mfsdeaf${process.pid}`;
    await nft('add', 'table', 'bridge', this.deafTable);
    await nft('add', 'chain', 'bridge', this.deafTable, 'forw', '{ type filter hook forward priority 0; }');
    await nft('add', 'rule', 'bridge', this.deafTable, 'forw', 'oifname', m.hostIface, 'ip', 'protocol', '112', 'drop');
  }

  private deafTable: string | undefined;

  /** Restart `m`'s ucarp (or keepalived) with another up-script (it is BACKUP: no script runs, none demotes). */
  async switchUpScript(m: Machine, skew: number, upScript: string): Promise<void> {
    if (this.vrrp === 'keepalived') {
      // keepalived has one mfs-jobs hook form (its notify script, which never delays the VIP); the seed's is another.
      if (this.notifyScripts.get(m) === notifyOf(upScript)) return;
      await this.keepaliveds.get(m)?.stop();
      await this.startVrrp(m, skew, upScript);
      return;
    }
    await this.ucarps.get(m)?.stop();
    this.startUcarp(m, skew, upScript);
  }

  async waitVipOnlyOn(m: Machine, timeoutMs = 20_000): Promise<void> {
    const other = m === this.A ? this.B : this.A;
    await waitFor(
      `VIP on ${m.name} only`,
      async () => (await m.addresses()).includes(this.vip) && !(await other.addresses()).includes(this.vip),
      timeoutMs,
      50,
    );
  }

  mountClient(name: string): Promise<LabMount> {
    return LabMount.mount(
      path.join(this.dir, name),
      { host: this.vip, port: NsMaster.PORTS.cl },
      path.join(this.dir, `${name}.log`),
      { wrap: this.C.wrap, lab: this.lab },
    );
  }

  /**
   * A client inside `m`'s own network, mounted on its own master over loopback: a client on that machine's
   * side of a partition (it keeps reaching that master when the machine is cut off). Dropped at `stop()`.
   */
  async mountOn(m: Machine, name: string): Promise<LabMount> {
    const mount = await LabMount.mount(
      path.join(this.dir, name),
      { host: '127.0.0.1', port: NsMaster.PORTS.cl },
      path.join(this.dir, `${name}.log`),
      { wrap: m.wrap, lab: this.lab },
    );
    this.extraMounts.push(mount);
    return mount;
  }

  /** A second mount, started fresh (no page cache of the client's), dropped at `stop()`. */
  async freshMount(name: string): Promise<LabMount> {
    const mount = await this.mountClient(name);
    this.extraMounts.push(mount);
    return mount;
  }

  /** The last result line the hooks' `run promote` printed on `m` (the up-script's log). */
  async lastHookPromoteLine(m: Machine): Promise<string | undefined> {
    const log = await fs.readFile(path.join(this.dir, m.name, 'hook.log'), 'utf8').catch(() => '');
    return log
      .split('\n')
      .filter((l) => l.startsWith('MFS PROMOTE'))
      .pop();
  }

  /** What the clients-back watch recorded on `m` after its promote returned (lib/failover/clients-watch.ts). */
  async readClientsState(m: Machine): Promise<ClientsState | undefined> {
    const text = await fs
      .readFile(path.join(this.stateDir(m), 'state', 'promote-clients.json'), 'utf8')
      .catch(() => undefined);
    return text ? (JSON.parse(text) as ClientsState) : undefined;
  }

  /** The up-script's own start and end (vip-up-sync.sh logs them), the last of each on `m`. */
  async syncHookTimes(m: Machine): Promise<{ start: number; end: number } | undefined> {
    const log = await fs.readFile(path.join(this.dir, m.name, 'hook.log'), 'utf8').catch(() => '');
    const last = (word: string) =>
      Number(
        log
          .split('\n')
          .filter((l) => l.startsWith(`vip-up-sync ${word} `))
          .pop()
          ?.split(' ')[2],
      );
    const [start, end] = [last('start'), last('end')];
    return Number.isFinite(start) && Number.isFinite(end) ? { start, end } : undefined;
  }

  async readPromoteState(m: Machine): Promise<PromoteState | undefined> {
    const text = await fs.readFile(path.join(this.stateDir(m), 'state', 'promote.json'), 'utf8').catch(() => undefined);
    return text ? (JSON.parse(text) as PromoteState) : undefined;
  }

  /** The promote that ucarp's up-script started on `m` after `since` (ms), once it has finished. */
  waitPromoteAfter(
    m: Machine,
    since: number,
    previous: PromoteState | undefined,
    timeoutMs = 60_000,
  ): Promise<PromoteState> {
    return waitFor(
      `${m.name}'s promote to finish`,
      async () => {
        const s = await this.readPromoteState(m);
        return s && s.startedAt !== previous?.startedAt && Date.parse(s.startedAt) >= since - 1000 ? s : undefined;
      },
      timeoutMs,
    );
  }

  /** `m` dies like a machine: its mfsmaster (the lab's or promote's) and ucarp killed -9, link down. */
  async crash(m: Machine): Promise<void> {
    this.registrationsAtCrash = (await this.chunkserver?.registrations()) ?? 0;
    await this.killHookRun(m);
    await this.daemons.get(m)?.kill9();
    await this.master(m).kill9();
    await killMasterOf(this.master(m).dataPath);
    await this.ucarps.get(m)?.kill9();
    await this.keepaliveds.get(m)?.kill9();
    await m.linkDown();
  }

  /**
   * `m` boots again as a standby: no VIP on its interface (a kill -9'd ucarp left it there), link up,
   * ucarp started with a lower priority; its down-script runs demote, which finds nothing to stop.
   */
  async reboot(m: Machine, skew: number, o: { upScript?: string; daemon?: boolean } = {}): Promise<void> {
    await m.removeAddress(this.vip);
    await m.linkUp();
    if (o.daemon) await this.startDaemon(m);
    await this.startVrrp(m, skew, o.upScript);
  }

  /** A hook's promote/demote still running (ucarp started it in the background): end it by the PID in its lock. */
  private async killHookRun(m: Machine): Promise<void> {
    const text = await fs.readFile(path.join(this.stateDir(m), 'locks', 'failover.lock'), 'utf8').catch(() => '');
    const pid = text ? (JSON.parse(text) as { pid: number }).pid : undefined;
    if (pid && processAlive(pid)) process.kill(pid, 'SIGKILL');
    // The clients-back watcher a one-shot promote left running (its pid in promote's report).
    const details = (await this.readPromoteState(m))?.details;
    const watcher = details?.clients?.pid;
    if (watcher && processAlive(watcher)) process.kill(watcher, 'SIGKILL');
    // The keepalived FAULT watcher a refused promote left running (lib/failover/keepalived-fault.ts).
    const faultWatcher = details?.keepalivedFault?.watcher;
    if (faultWatcher && processAlive(faultWatcher)) process.kill(faultWatcher, 'SIGKILL');
  }

  /** Tear everything down by PID, remove the namespaces; returns what is left of them (expected: nothing). */
  /** Keep the lab's directory after `stop()` (a test found something worth reading there). */
  keepDir = !!process.env.MFS_JOBS_KEEP_TEST_DIR;

  async stop(): Promise<string[]> {
    if (this.deafTable) await execCapture('nft', ['delete', 'table', 'bridge', this.deafTable]).catch(() => undefined);
    for (const mount of this.extraMounts) await dropMount(mount);
    await dropMount(this.mount);
    for (const ucarp of this.ucarps.values()) await ucarp.kill9().catch(() => undefined);
    for (const k of this.keepaliveds.values()) await k.kill9().catch(() => undefined);
    for (const daemon of this.daemons.values()) await daemon.kill9().catch(() => undefined);
    for (const m of this.masters.keys()) await this.killHookRun(m);
    await this.metalogger?.kill9().catch(() => undefined);
    for (const cs of this.chunkserversStarted) await cs.daemon.kill9().catch(() => undefined);
    if (this.chunkDisk) await execCapture('umount', [this.chunkDisk]).catch(() => undefined);
    await this.sshd?.stop().catch(() => undefined);
    for (const sshd of this.masterSshds.values()) await sshd.stop().catch(() => undefined);
    for (const master of this.masters.values()) {
      await master.kill9().catch(() => undefined);
      await killMasterOf(master.dataPath);
    }
    await this.net.destroy();
    const leftovers = await this.net.leftovers();
    if (this.keepDir) console.log(`failover lab kept in ${this.dir}`);
    else await fs.rm(this.dir, { recursive: true, force: true });
    return leftovers;
  }
}
