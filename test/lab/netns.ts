import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { masterInfo, type MasterInfo } from '../../lib/moosefs/mfscli.js';
import { masterConfigText } from './moosefs.js';
import { Daemon, waitFor } from './proc.js';

/**
 * "Machines" for failover tests: network namespaces on a Linux bridge, made and removed by the test.
 * Names carry the test's PID so parallel runs never meet. Processes inside are started with
 * `nsenter --net=…` (network namespace only): `ip netns exec` would also give them a private mount
 * namespace, and a FUSE mount made there is invisible to the test (see moosefs-notes, pitfalls).
 */

async function run(cmd: string, args: string[]): Promise<string> {
  const res = await execCapture(cmd, args, { timeoutMs: 15_000 });
  if (res.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`);
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
    await run('tc', ['-n', this.name, 'qdisc', 'replace', 'dev', this.iface, 'root', 'tbf', 'rate', `${bytesPerSecond * 8}bit`, 'burst', '16kb', 'latency', '2s']);
  }

  async unlimitRate(): Promise<void> {
    await run('tc', ['-n', this.name, 'qdisc', 'del', 'dev', this.iface, 'root']);
  }

  /** Take `ip` off the interface if it is there (a VIP a killed ucarp left behind). */
  async removeAddress(ip: string): Promise<void> {
    if ((await this.addresses()).includes(ip)) await run('ip', ['-n', this.name, 'addr', 'del', `${ip}/24`, 'dev', this.iface]);
  }
}

/** A bridge with one namespace per machine, addresses `<prefix>.<n>/24`. */
export class NetLab {
  private constructor(
    readonly bridge: string,
    readonly prefix: string,
    readonly machines: Map<string, Machine>,
  ) {}

  static async create(names: string[], prefix = '10.77.0'): Promise<NetLab> {
    const id = process.pid;
    const bridge = `mfsbr${id}`;
    const lab = new NetLab(bridge, prefix, new Map());
    try {
      await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
      await run('ip', ['link', 'set', bridge, 'up']);
      for (const [i, short] of names.entries()) {
        const m = new Machine(`mfs-${id}-${short}`, `mfs${id}n${short}`, `mfs${id}h${short}`, `${prefix}.${i + 1}`);
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
    return names.filter((n) => links.includes(` ${n}:`) || links.includes(` ${n}@`) || netns.split('\n').some((l) => l.split(' ')[0] === n));
  }
}

/** An `mfscli` that runs inside a machine's network: a two-line wrapper script lib/moosefs/mfscli.ts can call. */
export async function mfscliIn(machine: Machine, dir: string): Promise<string> {
  const file = path.join(dir, `mfscli-${machine.name}`);
  await fs.writeFile(file, `#!/bin/sh\nexec nsenter --net=${machine.netnsPath} mfscli "$@"\n`, { mode: 0o700 });
  return file;
}

/** A real mfsmaster in the foreground inside a machine, listening on all its addresses. */
export class NsMaster {
  daemon: Daemon | undefined;
  private constructor(
    readonly machine: Machine,
    readonly dir: string,
    readonly dataPath: string,
    readonly configFile: string,
    readonly mfscli: string,
  ) {}

  static readonly PORTS = { ml: 9419, cs: 9420, cl: 9421 };

  /** Config, exports, topology; `bootstrap` gives a new filesystem (copy of metadata.mfs.empty). */
  static async create(machine: Machine, dir: string, options: { bootstrap: boolean }): Promise<NsMaster> {
    const dataPath = path.join(dir, 'data');
    await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(dir, 'mfsexports.cfg'), '*\t/\trw,alldirs,maproot=0\n');
    await fs.writeFile(path.join(dir, 'mfstopology.cfg'), '');
    const configFile = path.join(dir, 'mfsmaster.cfg');
    await fs.writeFile(configFile, masterConfigText({ dataPath, dir, host: '0.0.0.0', ports: NsMaster.PORTS }));
    if (options.bootstrap) await fs.copyFile('/var/lib/mfs/metadata.mfs.empty', path.join(dataPath, 'metadata.mfs'));
    return new NsMaster(machine, dir, dataPath, configFile, await mfscliIn(machine, dir));
  }

  info(host = '127.0.0.1'): Promise<MasterInfo> {
    return masterInfo({ host, port: NsMaster.PORTS.cl, bin: this.mfscli, timeoutMs: 3_000 });
  }

  async start(): Promise<MasterInfo> {
    const daemon = new Daemon('mfsmaster', 'mfsmaster', ['-c', this.configFile, '-f', 'start'], path.join(this.dir, 'mfsmaster.log'), { wrap: this.machine.wrap });
    this.daemon = daemon;
    return waitFor(`mfsmaster in ${this.machine.name}`, async () => {
      if (!daemon.running) throw new Error(`mfsmaster exited: ${(await daemon.log()).trim().split('\n').slice(-2).join(' | ')}`);
      return this.info().catch(() => undefined);
    });
  }

  /** Clean stop then start: a real metadata image (metadata.mfs.back) for metaloggers to download. */
  async restart(): Promise<MasterInfo> {
    await this.daemon?.stop(60_000);
    return this.start();
  }

  async kill9(): Promise<void> {
    await this.daemon?.kill9();
  }
}

/** A real mfschunkserver inside a machine: one data directory, master by (virtual) address. */
export class NsChunkserver {
  private constructor(readonly daemon: Daemon) {}

  static async start(machine: Machine, dir: string, masterHost: string): Promise<NsChunkserver> {
    const chunks = path.join(dir, 'chunks');
    await fs.mkdir(chunks, { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(dir, 'data'), { recursive: true, mode: 0o700 });
    const hdd = path.join(dir, 'mfshdd.cfg');
    await fs.writeFile(hdd, `${chunks}\n`);
    const cfg = path.join(dir, 'mfschunkserver.cfg');
    const lines = {
      WORKING_USER: 'root',
      WORKING_GROUP: 'root',
      DATA_PATH: path.join(dir, 'data'),
      HDD_CONF_FILENAME: hdd,
      MASTER_HOST: masterHost,
      MASTER_PORT: NsMaster.PORTS.cs,
      // Chunkservers keep 256 MiB free by default; a test machine's disk is shared.
      HDD_LEAVE_SPACE_DEFAULT: '64MiB',
    };
    await fs.writeFile(cfg, Object.entries(lines).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
    const daemon = new Daemon('mfschunkserver', 'mfschunkserver', ['-c', cfg, '-f', 'start'], path.join(dir, 'mfschunkserver.log'), { wrap: machine.wrap });
    return new NsChunkserver(daemon);
  }

  async stop(): Promise<void> {
    await this.daemon.stop(30_000);
  }
}

/** Real ucarp sharing a virtual IP; its scripts get `<iface> <vip> <xparam>` (here the prefix length). */
export class Ucarp {
  private constructor(readonly daemon: Daemon) {}

  static start(machine: Machine, o: { dir: string; vip: string; vhid: number; password: string; skew: number; upScript: string; downScript: string; env?: NodeJS.ProcessEnv }): Ucarp {
    const args = [
      '-i', machine.iface, '-s', machine.ip, '-v', String(o.vhid), '-p', o.password, '-a', o.vip,
      '-u', o.upScript, '-d', o.downScript, '-b', '1', '-r', '2', '-k', String(o.skew), '-n', '-x', '24',
    ];
    const daemon = new Daemon('ucarp', 'ucarp', args, path.join(o.dir, `ucarp-${machine.name}.log`), { wrap: machine.wrap, env: { ...process.env, ...o.env } });
    return new Ucarp(daemon);
  }

  async stop(): Promise<void> {
    await this.daemon.stop(10_000);
  }

  async kill9(): Promise<void> {
    await this.daemon.kill9();
  }
}
