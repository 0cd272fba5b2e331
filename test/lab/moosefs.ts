import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { masterStatus } from '../../lib/moosefs/master.js';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { masterInfo, type MasterInfo } from '../../lib/moosefs/mfscli.js';
import { labGeneration, type LabGeneration } from './generations.js';
import { processAlive } from '../../lib/core/lock.js';
import { runningMasterPid, startMaster, stopMaster } from '../../lib/moosefs/mfsmaster.js';
import { Daemon, freePort, sleep, trackPid, waitFor } from './proc.js';

export const EMPTY_IMAGE = '/var/lib/mfs/metadata.mfs.empty';

export interface MasterPorts {
  ml: number;
  cs: number;
  cl: number;
}

export async function freeMasterPorts(host = '127.0.0.1'): Promise<MasterPorts> {
  return { ml: await freePort(host), cs: await freePort(host), cl: await freePort(host) };
}

/** Text of an mfsmaster config for a master of `lab`'s generation listening on `host` with `ports`. */
export function masterConfigText(o: {
  dataPath: string;
  dir: string;
  host: string;
  ports: MasterPorts;
  lab?: LabGeneration;
  extra?: Record<string, string | number>;
}): string {
  const { generation } = o.lab ?? labGeneration();
  const keys = generation.listenKeys;
  const lines: Record<string, string | number> = {
    WORKING_USER: 'root',
    WORKING_GROUP: 'root',
    DATA_PATH: o.dataPath,
    EXPORTS_FILENAME: path.join(o.dir, 'mfsexports.cfg'),
    TOPOLOGY_FILENAME: path.join(o.dir, 'mfstopology.cfg'),
    ...(keys.ml ? { [keys.ml.host]: o.host, [keys.ml.port]: o.ports.ml } : {}),
    [keys.cs.host]: o.host,
    [keys.cs.port]: o.ports.cs,
    [keys.cl.host]: o.host,
    [keys.cl.port]: o.ports.cl,
    // A lab master saves its image once a day (1.7+; 1.x saves hourly whatever the config says), not
    // at every full hour: an hourly image is a new restore point, and a test whose two backups
    // straddle the hour would see one it did not make.
    METADATA_SAVE_FREQ: 24,
    ...generation.masterConfigExtra(o.dataPath),
    ...o.extra,
  };
  return (
    Object.entries(lines)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') + '\n'
  );
}

/**
 * A 1.5 or 1.6.0–1.6.4 master run as the daemon it is meant to be (in the foreground it installs no
 * signal handlers, so a stop would save nothing), found by the PID in its lock, stopped its own way.
 */
export class DaemonisedMaster {
  private constructor(
    private readonly o: { configFile: string; bin: string; lab: LabGeneration },
    private readonly pidInLock: number,
  ) {}

  static async start(o: {
    configFile: string;
    dataPath: string;
    bin: string;
    lab: LabGeneration;
    where: string;
    ready: () => Promise<boolean>;
  }): Promise<DaemonisedMaster> {
    const res = await startMaster({
      configFile: o.configFile,
      bin: o.bin,
      generation: o.lab.generation,
      autoRestore: false,
      timeoutMs: 30_000,
      ready: o.ready,
    });
    const pid = await runningMasterPid(o.dataPath);
    if (res.code !== 0 || pid === undefined)
      throw new Error(`mfsmaster ${o.lab.version} in ${o.where} did not start: ${res.output.trim().split('\n').pop()}`);
    trackPid(pid);
    return new DaemonisedMaster({ configFile: o.configFile, bin: o.lab.mfsmaster, lab: o.lab }, pid);
  }

  get pid(): number | undefined {
    return processAlive(this.pidInLock) ? this.pidInLock : undefined;
  }

  /** Clean stop: `mfsmaster -s` (SIGTERM, the master writes metadata.mfs), SIGKILL if it will not go. */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    await stopMaster({
      configFile: this.o.configFile,
      bin: this.o.bin,
      generation: this.o.lab.generation,
      timeoutMs: 60_000,
    });
    await waitFor(`mfsmaster ${pid} to exit`, async () => !processAlive(pid), 60_000).catch(() =>
      process.kill(pid, 'SIGKILL'),
    );
    trackPid(pid, false);
  }

  async kill9(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    await waitFor(`mfsmaster ${pid} to die`, async () => !processAlive(pid), 5_000);
    trackPid(pid, false);
  }
}

/** A real mfsmaster (Debian's 3.0 package, or a built generation) in the foreground, on its own ports and DATA_PATH. */
export class LabMaster {
  daemon: Daemon | undefined;
  /** A daemonising master (1.5, 1.6.0–1.6.4). */
  private daemonised: DaemonisedMaster | undefined;

  private constructor(
    readonly dir: string,
    readonly dataPath: string,
    readonly configFile: string,
    readonly host: string,
    readonly ports: MasterPorts,
    readonly lab: LabGeneration,
  ) {}

  /** Write config, exports, topology and a bootstrap `metadata.mfs` (copy of metadata.mfs.empty). */
  static async create(
    dir: string,
    options: {
      host?: string;
      ports?: MasterPorts;
      bootstrap?: boolean;
      lab?: LabGeneration;
      extra?: Record<string, string | number>;
    } = {},
  ): Promise<LabMaster> {
    const lab = options.lab ?? labGeneration();
    const host = options.host ?? '127.0.0.1';
    const ports = options.ports ?? (await freeMasterPorts(host === '0.0.0.0' ? '127.0.0.1' : host));
    const dataPath = path.join(dir, 'data');
    await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(dir, 'mfsexports.cfg'), '*\t/\trw,alldirs,maproot=0\n');
    await fs.writeFile(path.join(dir, 'mfstopology.cfg'), '');
    const configFile = path.join(dir, 'mfsmaster.cfg');
    await fs.writeFile(configFile, masterConfigText({ dataPath, dir, host, ports, lab, extra: options.extra }));
    if (options.bootstrap ?? true) await fs.copyFile(EMPTY_IMAGE, path.join(dataPath, 'metadata.mfs'));
    return new LabMaster(dir, dataPath, configFile, host, ports, lab);
  }

  get cliHost(): string {
    return this.host === '0.0.0.0' ? '127.0.0.1' : this.host;
  }

  get pid(): number | undefined {
    if (this.daemonised) return this.daemonised.pid;
    return this.daemon?.running ? this.daemon.pid : undefined;
  }

  /** Start in the foreground; `autoRestore` adds `-a` (1.7 and later). Resolves once the master answers. */
  async start(options: { autoRestore?: boolean; wrap?: string[] } = {}): Promise<MasterInfo> {
    const { generation } = this.lab;
    if (options.autoRestore && generation.restore !== 'mfsmaster-a')
      throw new Error(`${generation.label} has no mfsmaster -a: restore with mfsmetarestore first`);
    // 1.5 and 1.6.0–1.6.4 in the foreground install no signal handlers (a stop would save nothing):
    // they run as the daemons they are meant to be, found by their lock's PID.
    if (!generation.daemonWaitsForInit) return this.startDaemonised();
    const args = generation.startArgs(this.configFile, { autoRestore: options.autoRestore ?? false, foreground: true });
    this.daemon = new Daemon('mfsmaster', this.lab.mfsmaster, args, path.join(this.dir, 'mfsmaster.log'), {
      wrap: options.wrap,
    });
    const daemon = this.daemon;
    return waitFor(`mfsmaster in ${this.dir} to serve`, async () => {
      if (!daemon.running) throw new Error(`mfsmaster exited: ${whyExited(await daemon.log())}`);
      return this.info().catch(() => undefined);
    });
  }

  /**
   * What the master serves: Debian's 3.0 through mfscli -SIM (as the tests always did), others through
   * the client protocol. A 1.x master does not report its metadata version: the lab reads it where the
   * master writes it, the last line of changelog.0.mfs (flushed per line), else its image's header.
   */
  async info(): Promise<MasterInfo> {
    if (this.lab.version === '3.0.117')
      return masterInfo({ host: this.cliHost, port: this.ports.cl, timeoutMs: 3_000 });
    const status = await masterStatus({ host: this.cliHost, port: this.ports.cl, timeoutMs: 3_000 });
    const metadataVersion = status.metadataVersion ?? (await this.versionOnDisk());
    return { ip: this.cliHost, softwareVersion: status.softwareVersion, metadataVersion, state: '-' };
  }

  private async versionOnDisk(): Promise<number> {
    const tail = await readTail(path.join(this.dataPath, 'changelog.0.mfs'), 4096).catch(() => '');
    const m = /^(\d+):/.exec(tail.trimEnd().split('\n').pop() ?? '');
    if (m) return Number(m[1]) + 1;
    return (await readImageHeader(path.join(this.dataPath, 'metadata.mfs.back'))).version;
  }

  private async startDaemonised(): Promise<MasterInfo> {
    this.daemonised = await DaemonisedMaster.start({
      configFile: this.configFile,
      dataPath: this.dataPath,
      bin: this.lab.mfsmaster,
      lab: this.lab,
      where: this.dir,
      ready: () => this.info().then(() => true),
    });
    return this.info();
  }

  /** Clean stop: the master writes `metadata.mfs` (a real image) before it exits. */
  async stop(): Promise<void> {
    if (this.daemonised) return this.daemonised.stop();
    await this.daemon?.stop(60_000);
  }

  async kill9(): Promise<void> {
    if (this.daemonised) return this.daemonised.kill9();
    await this.daemon?.kill9();
  }

  /**
   * Stop and start: the clean stop writes metadata.mfs, the start renames it to metadata.mfs.back.
   */
  async restart(): Promise<MasterInfo> {
    await this.stop();
    return this.start();
  }

  /** `mfsmetarestore -a -d DATA_PATH`: metadata.mfs from metadata.mfs.back and changelog.*.mfs. */
  async metarestore(): Promise<string> {
    const res = await execCapture(this.lab.mfsmetarestore, ['-a', '-d', this.dataPath], { timeoutMs: 60_000 });
    if (res.code !== 0)
      throw new Error(
        `mfsmetarestore -a -d ${this.dataPath} failed (exit ${res.code}): ${(res.stdout + res.stderr).trim().split('\n').slice(-2).join(' | ')}`,
      );
    return res.stdout;
  }
}

/** mfsmaster's reason for stopping: its error lines (a busy port, a bad image), else its last lines. */
function whyExited(log: string): string {
  const lines = log.trim().split('\n');
  const errors = lines.filter((l) => /can't|error|EADDRINUSE/i.test(l) && !l.startsWith('mfsmaster['));
  return (errors.length ? errors.slice(-3) : lines.slice(-3)).join(' | ');
}

/** The last `bytes` of a file (all of it when shorter). */
async function readTail(file: string, bytes: number): Promise<string> {
  const h = await fs.open(file, 'r');
  try {
    const { size } = await h.stat();
    const length = Math.min(size, bytes);
    const buf = Buffer.alloc(length);
    await h.read(buf, 0, length, size - length);
    return buf.toString('utf8');
  } finally {
    await h.close();
  }
}

/** A real mfsmetalogger following a LabMaster. */
export class LabMetalogger {
  daemon: Daemon | undefined;

  private constructor(
    readonly dir: string,
    readonly dataPath: string,
    readonly configFile: string,
  ) {}

  private lab: LabGeneration = labGeneration();

  static async create(
    dir: string,
    master: { host: string; port: number },
    extra: Record<string, string | number> = {},
    lab: LabGeneration = labGeneration(),
  ): Promise<LabMetalogger> {
    if (!lab.mfsmetalogger) throw new Error(`${lab.generation.label} has no metalogger`);
    const dataPath = path.join(dir, 'data');
    await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
    const configFile = path.join(dir, 'mfsmetalogger.cfg');
    const cfg: Record<string, string | number> = {
      WORKING_USER: 'root',
      WORKING_GROUP: 'root',
      DATA_PATH: dataPath,
      MASTER_HOST: master.host,
      MASTER_PORT: master.port,
      // Downloads at connection (a restart gives a new image) and then daily at 00:10:30 UTC, not at
      // 10:30 past every hour: a new image is a new restore point (see METADATA_SAVE_FREQ above).
      META_DOWNLOAD_FREQ: 24,
      ...extra,
    };
    await fs.writeFile(
      configFile,
      Object.entries(cfg)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n') + '\n',
    );
    const ml = new LabMetalogger(dir, dataPath, configFile);
    ml.lab = lab;
    return ml;
  }

  async start(options: { wrap?: string[] } = {}): Promise<void> {
    const logFile = path.join(this.dir, 'mfsmetalogger.log');
    // The log is appended across restarts: only what this start writes counts.
    const offset = (await fs.stat(logFile).catch(() => undefined))?.size ?? 0;
    // The metalogger takes the same command line as its generation's master.
    const args = this.lab.generation.startArgs(this.configFile, { autoRestore: false, foreground: true });
    this.daemon = new Daemon('mfsmetalogger', this.lab.mfsmetalogger!, args, logFile, options);
    const daemon = this.daemon;
    await waitFor('mfsmetalogger to download metadata', async () => {
      const log = (await daemon.log()).slice(offset);
      if (!daemon.running) throw new Error(`mfsmetalogger exited: ${log.trim().split('\n').slice(-3).join(' | ')}`);
      return /metadata downloaded/.test(log);
    });
  }

  async stop(): Promise<void> {
    await this.daemon?.stop();
  }

  async kill9(): Promise<void> {
    await this.daemon?.kill9();
  }

  /** Newest changelog version this metalogger holds (last line of changelog_ml.0.mfs). */
  async lastVersion(): Promise<number | undefined> {
    // Only the tail: under load the changelog grows by megabytes, and tests poll this.
    const text = await readTail(path.join(this.dataPath, 'changelog_ml.0.mfs'), 64 * 1024).catch(() => '');
    const last = text.trimEnd().split('\n').pop();
    const m = last ? /^(\d+):/.exec(last) : null;
    return m ? Number(m[1]) : undefined;
  }
}

/** A real FUSE mfsmount, in the foreground so its PID is ours; unmounted by path, then waited for. */
export class LabMount {
  private constructor(
    readonly dir: string,
    readonly daemon: Daemon,
  ) {}

  static async mount(
    dir: string,
    master: { host: string; port: number },
    logFile: string,
    options: { wrap?: string[]; attempts?: number; lab?: LabGeneration } = {},
  ): Promise<LabMount> {
    await fs.mkdir(dir, { recursive: true });
    const attempts = options.attempts ?? 10;
    const lab = options.lab ?? labGeneration();
    if (!lab.mfsmount) throw new Error(`MooseFS ${lab.version} has no mfsmount in the lab`);
    // mfscachemode came after 1.6.
    const cache = lab.generation.imageMagic === 'MFSM 2.0' ? ['-o', 'mfscachemode=DIRECT'] : [];
    for (let attempt = 1; ; attempt++) {
      const daemon = new Daemon(
        'mfsmount',
        lab.mfsmount,
        [dir, '-H', master.host, '-P', String(master.port), '-f', ...cache],
        logFile,
        options,
      );
      try {
        await waitFor(
          `mfsmount on ${dir}`,
          async () => {
            if (!daemon.running)
              throw new Error(`mfsmount exited: ${(await daemon.log()).trim().split('\n').slice(-1).join('')}`);
            const mounts = await fs.readFile('/proc/self/mounts', 'utf8');
            return mounts.split('\n').some((l) => l.split(' ')[1] === dir && l.includes('fuse'));
          },
          5_000,
        );
        return new LabMount(dir, daemon);
      } catch (err) {
        // A master that has just started can refuse the first session for a moment: try again.
        await daemon.kill9();
        if (attempt >= attempts) throw err;
        await sleep(500);
      }
    }
  }

  /**
   * Unmount and wait for mfsmount to exit. A plain umount of a mount whose master is dead can block
   * for minutes (mfsmount retries the master), so: lazy detach first (never blocks), then the
   * daemon gets a few seconds to exit by itself, then SIGKILL by PID.
   */
  async unmount(): Promise<void> {
    if (!this.daemon.running) return;
    await execCapture('umount', ['-l', this.dir], { timeoutMs: 10_000 });
    try {
      await this.daemon.waitExit(5_000);
    } catch {
      await this.daemon.kill9();
    }
  }

  /** Make `count` metadata changes (mkdir + files) under `prefix`; no chunkserver needed. */
  async makeChanges(prefix: string, count: number): Promise<void> {
    const base = path.join(this.dir, prefix);
    await fs.mkdir(base, { recursive: true });
    for (let i = 0; i < count; i++) await fs.writeFile(path.join(base, `f${i}`), '');
  }
}

/** Wait until the metalogger's changelog has caught up with the master's version. */
export async function waitMetaloggerCaughtUp(master: LabMaster, ml: LabMetalogger): Promise<number> {
  const target = (await master.info()).metadataVersion - 1;
  return waitFor(`metalogger to reach version ${target}`, async () => {
    const v = await ml.lastVersion();
    return v !== undefined && v >= target ? v : undefined;
  });
}

export { sleep };
