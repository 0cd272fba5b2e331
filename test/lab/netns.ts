import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { versionInDataPath } from '../../lib/moosefs/datapath.js';
import { generationNamed } from '../../lib/moosefs/generations/index.js';
import { connectedChunkservers } from '../../lib/moosefs/master.js';
import { masterInfo, type MasterInfo } from '../../lib/moosefs/mfscli.js';
import type { NativeMasterInfo } from '../../lib/moosefs/protocol.js';
import { localSource } from '../../lib/transport/remote.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { labGeneration, type LabGeneration } from './generations.js';
import { DaemonisedMaster, EMPTY_IMAGE, masterConfigText } from './moosefs.js';
import { Daemon, trackPid, waitFor } from './proc.js';

/**
 * "Machines" for failover tests: network namespaces on a Linux bridge, made and removed by the test.
 * Names carry the test's PID so parallel runs never meet. Processes inside are started with
 * `nsenter --net=…` (network namespace only): `ip netns exec` would also give them a private mount
 * namespace, and a FUSE mount made there is invisible to the test (see moosefs-notes, pitfalls).
 */

async function run(cmd: string, args: string[]): Promise<string> {
  const res = await execCapture(cmd, args, { timeoutMs: 15_000 });
  if (res.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')}: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`);
  return res.stdout;
}

export class Machine {
  constructor(
    readonly name: string,
    /** Interface inside the namespace (ucarp's -i). */
    readonly iface: string,
    /** Its bridge-side peer in the root namespace. */
    readonly hostIface: string,
    readonly ip: string,
  ) {}

  get netnsPath(): string {
    return `/run/netns/${this.name}`;
  }

  /** Prefix for a command to run in this machine's network (and only its network). */
  get wrap(): string[] {
    return ['nsenter', `--net=${this.netnsPath}`];
  }

  exec(cmd: string, args: string[], timeoutMs = 15_000) {
    return execCapture('nsenter', [`--net=${this.netnsPath}`, cmd, ...args], { timeoutMs });
  }

  async addresses(): Promise<string[]> {
    const res = await this.exec('ip', ['-o', '-4', 'addr', 'show', 'dev', this.iface]);
    return [...res.stdout.matchAll(/inet (\S+)\//g)].map((m) => m[1]!);
  }

  /** A dead machine: its link goes down (a kill -9'd ucarp leaves the VIP configured). */
  async linkDown(): Promise<void> {
    await run('ip', ['-n', this.name, 'link', 'set', 'dev', this.iface, 'down']);
  }

  async linkUp(): Promise<void> {
    await run('ip', ['-n', this.name, 'link', 'set', 'dev', this.iface, 'up']);
  }

  /** A slow link in the kernel: a token-bucket filter on this machine's outgoing traffic (netem is not in this kernel). */
  async limitRate(bytesPerSecond: number): Promise<void> {
    await run('tc', [
      '-n',
      this.name,
      'qdisc',
      'replace',
      'dev',
      this.iface,
      'root',
      'tbf',
      'rate',
      `${bytesPerSecond * 8}bit`,
      'burst',
      '16kb',
      'latency',
      '2s',
    ]);
  }

  async unlimitRate(): Promise<void> {
    await run('tc', ['-n', this.name, 'qdisc', 'del', 'dev', this.iface, 'root']);
  }

  /** Take `ip` off the interface if it is there (a VIP a killed ucarp left behind). */
  async removeAddress(ip: string): Promise<void> {
    if ((await this.addresses()).includes(ip))
      await run('ip', ['-n', this.name, 'addr', 'del', `${ip}/24`, 'dev', this.iface]);
  }
}

/** A bridge with one namespace per machine, addresses `<prefix>.<n>/24`. */
export class NetLab {
  private constructor(
    readonly bridge: string,
    readonly prefix: string,
    readonly machines: Map<string, Machine>,
  ) {}

  /** `tag`: the names' prefix (a suite of its own picks one, e.g. `mq`, so its links are told apart). */
  static async create(names: string[], prefix = '10.77.0', tag = 'mfs'): Promise<NetLab> {
    const id = process.pid;
    const bridge = `${tag}br${id}`;
    const lab = new NetLab(bridge, prefix, new Map());
    try {
      await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
      await run('ip', ['link', 'set', bridge, 'up']);
      for (const [i, short] of names.entries()) {
        const m = new Machine(
          `${tag}-${id}-${short}`,
          `${tag}${id}n${short}`,
          `${tag}${id}h${short}`,
          `${prefix}.${i + 1}`,
        );
        lab.machines.set(short, m);
        await run('ip', ['netns', 'add', m.name]);
        await run('ip', ['link', 'add', m.hostIface, 'type', 'veth', 'peer', 'name', m.iface]);
        await run('ip', ['link', 'set', m.iface, 'netns', m.name]);
        await run('ip', ['link', 'set', m.hostIface, 'master', bridge]);
        await run('ip', ['link', 'set', m.hostIface, 'up']);
        await run('ip', ['-n', m.name, 'addr', 'add', `${m.ip}/24`, 'dev', m.iface]);
        await run('ip', ['-n', m.name, 'link', 'set', m.iface, 'up']);
        await run('ip', ['-n', m.name, 'link', 'set', 'lo', 'up']);
      }
      return lab;
    } catch (err) {
      await lab.destroy();
      throw err;
    }
  }

  /**
   * An address for the root namespace on the lab's bridge: the machines are then on the test process's
   * own link (ARP reaches them), as a standby's old master is on a real standby's.
   */
  async joinFromHost(ip: string): Promise<void> {
    await run('ip', ['addr', 'add', `${ip}/24`, 'dev', this.bridge]);
  }

  machine(short: string): Machine {
    const m = this.machines.get(short);
    if (!m) throw new Error(`no machine ${short}`);
    return m;
  }

  /** Remove namespaces, veths and the bridge; every step even when an earlier one fails. */
  async destroy(): Promise<void> {
    for (const m of this.machines.values()) {
      await execCapture('ip', ['netns', 'del', m.name], { timeoutMs: 15_000 }).catch(() => undefined);
      await execCapture('ip', ['link', 'del', m.hostIface], { timeoutMs: 15_000 }).catch(() => undefined);
    }
    await execCapture('ip', ['link', 'del', this.bridge], { timeoutMs: 15_000 }).catch(() => undefined);
  }

  /** What is left of this lab in the root namespace (for the teardown check). */
  async leftovers(): Promise<string[]> {
    const links = await run('ip', ['-o', 'link', 'show']);
    const netns = await run('ip', ['netns', 'list']);
    const names = [this.bridge, ...[...this.machines.values()].flatMap((m) => [m.hostIface, m.name])];
    return names.filter(
      (n) =>
        links.includes(` ${n}:`) || links.includes(` ${n}@`) || netns.split('\n').some((l) => l.split(' ')[0] === n),
    );
  }
}

/** A program that runs inside a machine's network: a two-line wrapper script that lib/ can call as a binary. */
export async function binaryIn(machine: Machine, dir: string, bin: string): Promise<string> {
  const file = path.join(dir, `${path.basename(bin)}-${machine.name}`);
  await fs.writeFile(file, `#!/bin/sh\nexec nsenter --net=${machine.netnsPath} ${bin} "$@"\n`, { mode: 0o700 });
  return file;
}

/** An `mfscli` that runs inside a machine's network (lib/moosefs/mfscli.ts calls it). */
export function mfscliIn(machine: Machine, dir: string, bin = 'mfscli'): Promise<string> {
  return binaryIn(machine, dir, bin);
}

const PROTOCOL_JS = new URL('../../lib/moosefs/protocol.js', import.meta.url).href;
const ASK_MASTER = [
  'const [url, host, port, timeoutMs] = process.argv.slice(1);',
  'const { askMaster } = await import(url);',
  'try { process.stdout.write(JSON.stringify(await askMaster({ host, port: Number(port), timeoutMs: Number(timeoutMs) }))); }',
  'catch (err) { process.stderr.write(err.message); process.exitCode = 1; }',
].join('\n');

/**
 * CLTOMA_INFO (lib/moosefs/protocol.ts) asked from inside a machine's network: the test's own process
 * lives outside every lab namespace and cannot reach their addresses, so a short node process does it there.
 */
export async function askMasterIn(
  machine: Machine,
  host: string,
  port: number,
  timeoutMs = 3_000,
): Promise<NativeMasterInfo> {
  const res = await machine.exec(
    process.execPath,
    ['--input-type=module', '-e', ASK_MASTER, PROTOCOL_JS, host, String(port), String(timeoutMs)],
    timeoutMs + 5_000,
  );
  if (res.code !== 0) throw new Error(res.stderr.trim() || `askMaster in ${machine.name}: exit ${res.code}`);
  return JSON.parse(res.stdout) as NativeMasterInfo;
}

/**
 * A real mfsmaster of `lab`'s generation inside a machine, listening on all its addresses. Where the
 * generation's master waits for its own initialisation (1.6.5 and later) it runs in the foreground; 1.5
 * and 1.6.0–1.6.4 run as the daemons they are (in the foreground they install no signal handlers, so a
 * stop would save nothing), found by the PID in their lock.
 */
export class NsMaster {
  daemon: Daemon | undefined;
  private daemonised: DaemonisedMaster | undefined;
  private constructor(
    readonly machine: Machine,
    readonly dir: string,
    readonly dataPath: string,
    readonly configFile: string,
    readonly lab: LabGeneration,
    /** This generation's mfscli inside the machine; undefined before 1.7 (none exists). */
    readonly mfscli: string | undefined,
  ) {}

  static readonly PORTS = { ml: 9419, cs: 9420, cl: 9421 };

  /** Config, exports, topology; `bootstrap` gives a new filesystem (copy of metadata.mfs.empty). */
  static async create(
    machine: Machine,
    dir: string,
    options: { bootstrap: boolean; lab?: LabGeneration },
  ): Promise<NsMaster> {
    const lab = options.lab ?? labGeneration();
    const dataPath = path.join(dir, 'data');
    await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(dir, 'mfsexports.cfg'), '*\t/\trw,alldirs,maproot=0\n');
    await fs.writeFile(path.join(dir, 'mfstopology.cfg'), '');
    const configFile = path.join(dir, 'mfsmaster.cfg');
    await fs.writeFile(configFile, masterConfigText({ dataPath, dir, host: '0.0.0.0', ports: NsMaster.PORTS, lab }));
    // `MFSM NEW`: every generation bootstraps a new filesystem from it.
    if (options.bootstrap) await fs.copyFile(EMPTY_IMAGE, path.join(dataPath, 'metadata.mfs'));
    const cli = !lab.prefix
      ? 'mfscli'
      : existsSync(path.join(lab.prefix, 'bin', 'mfscli'))
        ? path.join(lab.prefix, 'bin', 'mfscli')
        : undefined;
    return new NsMaster(machine, dir, dataPath, configFile, lab, cli ? await mfscliIn(machine, dir, cli) : undefined);
  }

  get pid(): number | undefined {
    if (this.daemonised) return this.daemonised.pid;
    return this.daemon?.running ? this.daemon.pid : undefined;
  }

  /**
   * What the master serves, asked inside its machine: Debian's 3.0 through mfscli -SIM (as before), the
   * others through the client protocol. A 1.x master does not report its metadata version: it is read
   * where the master writes it (DATA_PATH, on this test machine's disk).
   */
  async info(host = '127.0.0.1'): Promise<MasterInfo> {
    if (this.lab.version === '3.0.117')
      return masterInfo({ host, port: NsMaster.PORTS.cl, bin: this.mfscli, timeoutMs: 3_000 });
    const answer = await askMasterIn(this.machine, host, NsMaster.PORTS.cl);
    // Right after a 2.0+ master starts it answers with version 0 for a moment: not serving yet.
    if (this.lab.generation.reportsMetadataVersion && !answer.metadataVersion)
      throw new Error(`master ${host} in ${this.machine.name} does not serve yet (metadata version 0)`);
    const metadataVersion =
      answer.metadataVersion ?? (await versionInDataPath(localSource(this.machine.name), this.dataPath));
    if (metadataVersion === undefined)
      throw new Error(`${this.dataPath} holds neither changelog.0.mfs nor metadata.mfs.back`);
    return { ip: host, softwareVersion: answer.softwareVersion, metadataVersion, state: answer.state ?? '-' };
  }

  async start(): Promise<MasterInfo> {
    const { generation } = this.lab;
    if (!generation.daemonWaitsForInit) return this.startDaemonised();
    const args = generation.startArgs(this.configFile, { autoRestore: false, foreground: true });
    const daemon = new Daemon('mfsmaster', this.lab.mfsmaster, args, path.join(this.dir, 'mfsmaster.log'), {
      wrap: this.machine.wrap,
    });
    this.daemon = daemon;
    return waitFor(`mfsmaster in ${this.machine.name}`, async () => {
      if (!daemon.running)
        throw new Error(`mfsmaster exited: ${(await daemon.log()).trim().split('\n').slice(-2).join(' | ')}`);
      return this.info().catch(() => undefined);
    });
  }

  private async startDaemonised(): Promise<MasterInfo> {
    const bin = await binaryIn(this.machine, this.dir, this.lab.mfsmaster);
    this.daemonised = await DaemonisedMaster.start({
      configFile: this.configFile,
      dataPath: this.dataPath,
      bin,
      lab: this.lab,
      where: this.machine.name,
      ready: () => this.info().then(() => true),
    });
    return this.info();
  }

  /** Clean stop (the master writes metadata.mfs), its generation's way. */
  async stop(): Promise<void> {
    if (this.daemonised) return this.daemonised.stop();
    await this.daemon?.stop(60_000);
  }

  /** Clean stop then start: a real metadata image (metadata.mfs.back) for metaloggers to download. */
  async restart(): Promise<MasterInfo> {
    await this.stop();
    return this.start();
  }

  async kill9(): Promise<void> {
    if (this.daemonised) return this.daemonised.kill9();
    await this.daemon?.kill9();
  }
}

/**
 * A real mfschunkserver of `lab`'s generation inside a machine: one data directory, master by (virtual)
 * address. Its DATA_PATH is where a 1.x chunkserver keeps `changelog_csback.N.mfs`.
 */
export class NsChunkserver {
  private constructor(
    readonly daemon: Daemon,
    readonly dataPath: string,
    private readonly logOffset: number,
  ) {}

  /**
   * Until the 1.6.4 master on loopback `clientPort` lists a connected chunkserver (its registration shows in
   * the log before the master has it; after a restart it reconnects after MASTER_RECONNECTION_DELAY).
   */
  static async waitListed(clientPort: number): Promise<void> {
    const master = { host: '127.0.0.1', port: clientPort };
    const version = { generation: generationNamed('1.6'), softwareVersion: '1.6.4' };
    await waitFor(
      'the master listing the chunkserver',
      async () => ((await connectedChunkservers(master, version)) ?? []).length > 0,
      30_000,
    );
  }

  static dataPathIn(dir: string): string {
    return path.join(dir, 'data');
  }

  /** Start (or start again on the same chunks and DATA_PATH, e.g. after a crash). */
  static async start(
    // A Machine, or `{}` for one on loopback in the root namespace (give MASTER_PORT and CSSERV_* in `extra`).
    machine: { readonly wrap?: string[] },
    dir: string,
    masterHost: string,
    lab: LabGeneration = labGeneration(),
    extra: Record<string, string> = {},
  ): Promise<NsChunkserver> {
    const chunks = path.join(dir, 'chunks');
    const dataPath = NsChunkserver.dataPathIn(dir);
    await fs.mkdir(chunks, { recursive: true, mode: 0o700 });
    await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
    const hdd = path.join(dir, 'mfshdd.cfg');
    await fs.writeFile(hdd, `${chunks}\n`);
    const cfg = path.join(dir, 'mfschunkserver.cfg');
    // A 1.x chunkserver keeps its lock at LOCK_FILE, as its master does (default: shared by every lab).
    const lock =
      lab.generation.masterConfigExtra(dataPath).LOCK_FILE !== undefined
        ? { LOCK_FILE: path.join(dataPath, '.mfschunkserver.lock') }
        : {};
    const lines = {
      WORKING_USER: 'root',
      WORKING_GROUP: 'root',
      DATA_PATH: dataPath,
      HDD_CONF_FILENAME: hdd,
      MASTER_HOST: masterHost,
      MASTER_PORT: NsMaster.PORTS.cs,
      // Chunkservers keep 256 MiB free by default; a test machine's disk is shared.
      HDD_LEAVE_SPACE_DEFAULT: '64MiB',
      ...lock,
      ...extra,
    };
    await fs.writeFile(
      cfg,
      Object.entries(lines)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n') + '\n',
    );
    const logFile = path.join(dir, 'mfschunkserver.log');
    const logOffset = (await fs.stat(logFile).catch(() => undefined))?.size ?? 0;
    // The chunkserver takes the same command line as its generation's master.
    const args = lab.generation.startArgs(cfg, { autoRestore: false, foreground: true });
    const daemon = new Daemon('mfschunkserver', lab.mfschunkserver, args, logFile, { wrap: machine.wrap });
    return new NsChunkserver(daemon, dataPath, logOffset);
  }

  /** What this start has logged so far (the log is appended across restarts). */
  async log(): Promise<string> {
    return (await this.daemon.log()).slice(this.logOffset);
  }

  /**
   * How often this start has registered with a master, by its own log: 1.5 and 1.6.4 log "register to
   * master" each time, 1.6.27 "connected to Master".
   */
  async registrations(): Promise<number> {
    return (await this.log()).match(/register to master|connected to Master/g)?.length ?? 0;
  }

  /**
   * Registered with `master`: its mfscli lists a chunkserver (1.7 and later); before, there is no mfscli
   * and the chunkserver's own log says it registered (more than `after` times since this start).
   */
  async isRegistered(master: NsMaster, after = 0): Promise<boolean> {
    if (!master.mfscli) return (await this.registrations()) > after;
    // One line per connected chunkserver: `chunk servers:` (3.0), `chunkservers:` (4.x).
    return /^chunk ?servers:/m.test(
      (await execCapture(master.mfscli, ['-H', '127.0.0.1', '-P', String(NsMaster.PORTS.cl), '-SCS', '-p'])).stdout,
    );
  }

  async waitRegistered(master: NsMaster, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      `chunkserver registered with ${master.machine.name}`,
      async () => {
        if (!this.daemon.running)
          throw new Error(`mfschunkserver exited: ${(await this.log()).trim().split('\n').slice(-2).join(' | ')}`);
        return this.isRegistered(master);
      },
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await this.daemon.stop(30_000);
  }
}

/** Real ucarp sharing a virtual IP; its scripts get `<iface> <vip> <xparam>` (here the prefix length). */
export class Ucarp {
  private constructor(readonly daemon: Daemon) {}

  static start(
    machine: Machine,
    o: {
      dir: string;
      vip: string;
      vhid: number;
      password: string;
      skew: number;
      upScript: string;
      downScript: string;
      env?: NodeJS.ProcessEnv;
    },
  ): Ucarp {
    const args = [
      '-i',
      machine.iface,
      '-s',
      machine.ip,
      '-v',
      String(o.vhid),
      '-p',
      o.password,
      '-a',
      o.vip,
      '-u',
      o.upScript,
      '-d',
      o.downScript,
      '-b',
      '1',
      '-r',
      '2',
      '-k',
      String(o.skew),
      '-n',
      '-x',
      '24',
    ];
    const daemon = new Daemon('ucarp', 'ucarp', args, path.join(o.dir, `ucarp-${machine.name}.log`), {
      wrap: machine.wrap,
      env: { ...process.env, ...o.env },
    });
    return new Ucarp(daemon);
  }

  async stop(): Promise<void> {
    await this.daemon.stop(10_000);
  }

  async kill9(): Promise<void> {
    await this.daemon.kill9();
  }
}

/**
 * Real keepalived (Debian's /usr/sbin/keepalived, VRRP only) for a virtual IP, with a config, pid files
 * and log of its own in `dir`. Its notify scripts get the lab's environment (keepalived passes its own on).
 * keepalived forks a VRRP process that does the work; both are stopped by the PIDs in their pid files.
 */
export class Keepalived {
  private constructor(
    readonly daemon: Daemon,
    readonly pidFile: string,
    readonly vrrpPidFile: string,
    private readonly logOffset: number,
  ) {}

  static readonly BIN = '/usr/sbin/keepalived';
  /** The lab runs the shipped config, with only the machine's names, addresses and paths put in. */
  static readonly SHIPPED = path.join(REPO_ROOT, 'examples', 'keepalived', 'keepalived.conf');

  /** `text` with each key replaced by its value everywhere; a key the shipped config lacks is an error. */
  static shippedConfig(text: string, values: Record<string, string>): string {
    for (const [from, to] of Object.entries(values)) {
      if (!text.includes(from)) throw new Error(`${Keepalived.SHIPPED} no longer holds "${from}"`);
      text = text.split(from).join(to);
    }
    return text;
  }

  static async start(
    machine: Machine,
    o: {
      dir: string;
      vip: string;
      vrid: number;
      password: string;
      priority: number;
      /** Called as `<script> master|backup|fault` (examples/keepalived/mfs-jobs-notify.sh). */
      notifyScript: string;
      /** The track file mfs-jobs holds keepalived in FAULT with (standby.keepalivedTrackFile). */
      trackFile: string;
      env?: NodeJS.ProcessEnv;
    },
  ): Promise<Keepalived> {
    const base = path.join(o.dir, `keepalived-${machine.name}`);
    const conf = Keepalived.shippedConfig(await fs.readFile(Keepalived.SHIPPED, 'utf8'), {
      'router_id mfs-master-a': `router_id ${machine.name}`,
      'interface eth0': `interface ${machine.iface}`,
      'virtual_router_id 42': `virtual_router_id ${o.vrid}`,
      'priority 150': `priority ${o.priority}`,
      'auth_pass mfs-42': `auth_pass ${o.password}`,
      '10.0.0.100/24 dev eth0': `${o.vip}/24 dev ${machine.iface}`,
      '/etc/mfs-jobs/mfs-jobs-notify.sh': o.notifyScript,
      '/var/lib/mfs-jobs/keepalived-fault': o.trackFile,
    });
    await fs.writeFile(`${base}.conf`, conf, { mode: 0o600 });
    const [pidFile, vrrpPidFile] = [`${base}.pid`, `${base}-vrrp.pid`];
    // -n: the parent stays in the foreground (the VRRP process is its child); -G -l: log to our file, not syslog.
    const args = ['-n', '-P', '-G', '-l', '-D', '-f', `${base}.conf`, '-p', pidFile, '-r', vrrpPidFile];
    const logOffset = (await fs.stat(`${base}.log`).catch(() => undefined))?.size ?? 0;
    const daemon = new Daemon('keepalived', Keepalived.BIN, args, `${base}.log`, {
      wrap: machine.wrap,
      env: { ...process.env, ...o.env },
    });
    const k = new Keepalived(daemon, pidFile, vrrpPidFile, logOffset);
    const vrrp = await waitFor(`keepalived's VRRP process in ${machine.name}`, async () => {
      if (!daemon.running)
        throw new Error(`keepalived exited: ${(await daemon.log()).trim().split('\n').slice(-3).join(' | ')}`);
      return k.vrrpPid();
    });
    trackPid(vrrp);
    return k;
  }

  async vrrpPid(): Promise<number | undefined> {
    const pid = Number((await fs.readFile(this.vrrpPidFile, 'utf8').catch(() => '')).trim());
    return pid > 0 ? pid : undefined;
  }

  /** What this start has logged so far (the log is appended across restarts). */
  async log(): Promise<string> {
    return (await this.daemon.log()).slice(this.logOffset);
  }

  /** The instance's last state by its log (`Entering MASTER STATE`, `… BACKUP STATE (init)`). */
  async state(): Promise<string | undefined> {
    return [...(await this.log()).matchAll(/Entering (MASTER|BACKUP|FAULT) STATE/g)].pop()?.[1];
  }

  /** A clean stop (SIGTERM: the parent stops its VRRP process, which sends priority 0 and drops the VIP). */
  async stop(): Promise<void> {
    const vrrp = await this.vrrpPid();
    await this.daemon.stop(10_000);
    if (vrrp !== undefined) trackPid(vrrp, false);
  }

  /**
   * Dead like a crashed machine's: no priority-0 advert, the VIP left configured. The parent is stopped
   * first (it would start a new VRRP process), then the VRRP process and the parent are killed.
   */
  async kill9(): Promise<void> {
    if (!this.daemon.running) return;
    const vrrp = await this.vrrpPid();
    this.daemon.child.kill('SIGSTOP');
    if (vrrp !== undefined) {
      try {
        process.kill(vrrp, 'SIGKILL');
      } catch {
        /* already gone */
      }
      trackPid(vrrp, false);
    }
    await this.daemon.kill9();
  }
}
