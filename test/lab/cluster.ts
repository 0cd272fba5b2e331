import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { generationConfig, labGeneration, type LabGeneration } from './generations.js';
import { LabMaster, LabMetalogger, LabMount, waitMetaloggerCaughtUp } from './moosefs.js';
import { LabSshd } from './sshd.js';

export interface LabOptions {
  /** Parent directory; a fresh `mfs-jobs-lab-*` directory is made inside. */
  root?: string;
  metalogger?: boolean;
  mount?: boolean;
  sshd?: boolean;
  /** Which MooseFS (default Debian's 3.0.117); a metalogger only where the generation has one. */
  lab?: LabGeneration;
  /** Lines of mfsmaster.cfg over the lab's own (e.g. METADATA_SAVE_FREQ = 1 for hourly images). */
  masterExtra?: Record<string, string | number>;
}

/**
 * The embedded lab: a real master, metalogger, FUSE mount and sshd on loopback, plus an mfs-jobs
 * config that points at them. Everything it starts, it stops (by PID) in `stop()`.
 */
export class Lab {
  private constructor(
    readonly dir: string,
    readonly master: LabMaster,
    readonly metalogger: LabMetalogger | undefined,
    readonly mount: LabMount | undefined,
    readonly sshd: LabSshd | undefined,
    readonly generation: LabGeneration,
  ) {}

  static async start(options: LabOptions = {}): Promise<Lab> {
    const dir = await fs.mkdtemp(path.join(options.root ?? os.tmpdir(), 'mfs-jobs-lab-'));
    const started: { stop(): Promise<void> }[] = [];
    const lab = options.lab ?? labGeneration();
    try {
      const master = await LabMaster.create(path.join(dir, 'master'), { lab, extra: options.masterExtra });
      await master.start();
      started.push(master);
      let metalogger: LabMetalogger | undefined;
      if (options.metalogger ?? lab.generation.hasMetalogger) {
        metalogger = await LabMetalogger.create(
          path.join(dir, 'metalogger'),
          { host: master.cliHost, port: master.ports.ml },
          {},
          lab,
        );
        await metalogger.start();
        started.push(metalogger);
      }
      let mount: LabMount | undefined;
      if (options.mount ?? lab.mfsmount !== undefined) {
        mount = await LabMount.mount(
          path.join(dir, 'mnt'),
          { host: master.cliHost, port: master.ports.cl },
          path.join(dir, 'mfsmount.log'),
          { lab },
        );
        started.push({ stop: () => mount!.unmount() });
      }
      const sshd = (options.sshd ?? true) ? await LabSshd.start(path.join(dir, 'ssh')) : undefined;
      return new Lab(dir, master, metalogger, mount, sshd, lab);
    } catch (err) {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
      throw err;
    }
  }

  /** Make changes through the mount; with a metalogger, wait until it has them too. */
  async makeChanges(prefix: string, count: number): Promise<number> {
    if (!this.mount) throw new Error('lab has no mount');
    await this.mount.makeChanges(prefix, count);
    if (this.metalogger) await waitMetaloggerCaughtUp(this.master, this.metalogger);
    return (await this.master.info()).metadataVersion;
  }

  /**
   * Give the master a real `metadata.mfs.back` with content: a clean stop writes the image, the start
   * renames it. The mount reconnects by itself, as after a failover.
   */
  async saveImage(): Promise<number> {
    const info = await this.master.restart();
    return info.metadataVersion;
  }

  /** The mfs-jobs config document for this lab; `extra` is merged over it (top-level keys). */
  configDocument(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const doc: Record<string, unknown> = {
      timezone: 'UTC',
      stateDir: path.join(this.dir, 'state'),
      prometheus: { textfileDir: path.join(this.dir, 'textfile') },
      ...(this.sshd
        ? {
            ssh: {
              port: this.sshd.port,
              user: 'root',
              privateKey: this.sshd.clientKey,
              knownHosts: this.sshd.knownHosts,
              connectTimeoutSeconds: 5,
            },
          }
        : {}),
      masters: [
        { name: 'master', host: this.master.cliHost, dataPath: this.master.dataPath, cliPort: this.master.ports.cl },
      ],
      metaloggers: this.metalogger
        ? [{ name: 'ml1', host: '127.0.0.1', dataPath: this.metalogger.dataPath, metaDownloadFreqHours: 1 }]
        : [],
      // Stored as plain MooseFS files: the scenarios from before compression read the store's files
      // directly. test/store/compressed-store.test.ts runs what a new config gets (zstd), and sealed.
      snapshotStore: { path: path.join(this.dir, 'snapshots'), compression: { type: 'none' } },
      ...generationConfig(this.generation),
      jobs: {},
    };
    const merged = { ...doc, ...extra };
    // Most labs have no chunkserver and an unmounted client's session stays known for a day: promote's
    // wait for the clients (clientsWaitSeconds) would only run out. The failover labs watch them.
    const jobs = (merged.jobs ?? {}) as Record<string, Record<string, unknown>>;
    return { ...merged, jobs: { ...jobs, promote: { clientsWaitSeconds: 0, ...(jobs.promote ?? {}) } } };
  }

  /** Write the config (YAML) and return its path. */
  async writeConfig(extra: Record<string, unknown> = {}, name = 'config.yaml'): Promise<string> {
    const file = path.join(this.dir, name);
    await fs.writeFile(file, YAML.stringify(this.configDocument(extra)), { mode: 0o600 });
    return file;
  }

  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    await this.mount?.unmount().catch(() => undefined);
    await this.metalogger?.stop().catch(() => undefined);
    await this.master.stop().catch(() => undefined);
    await this.sshd?.stop().catch(() => undefined);
    if (!options.keepDir) await fs.rm(this.dir, { recursive: true, force: true });
  }
}

/** A master entry of a lab config that reads `master`'s DATA_PATH, optionally through a proxy port. */
export function masterEntry(
  name: string,
  master: LabMaster,
  via?: { port: number; knownHosts: string; privateKey?: string },
): Record<string, unknown> {
  return { name, host: '127.0.0.1', dataPath: master.dataPath, cliPort: master.ports.cl, ...(via ? { ssh: via } : {}) };
}
