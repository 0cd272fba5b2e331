import { listenPortKeys, type Generation } from './generations/index.js';
import { masterLockFiles, readMfsConfig, type MfsConfig } from './mfsmaster.js';

/** A master's peers, by the role its listen keys name: metaloggers, chunkservers, clients. */
export type ListenRole = 'ml' | 'cs' | 'cl';
export const LISTEN_ROLES: readonly ListenRole[] = ['ml', 'cs', 'cl'];

/** The ports mfsmaster listens on when its cfg does not say (every generation). */
export const DEFAULT_LISTEN_PORTS: Readonly<Record<ListenRole, number>> = { ml: 9419, cs: 9420, cl: 9421 };

/** A listen address as a master of some generation reads it from its cfg. */
export interface ListenPort {
  /** The cfg key it came from (or would have: the generation's name for it). */
  key: string;
  port: number;
}

/**
 * One master's mfsmaster.cfg, read once: DATA_PATH, the locks it may hold, and the addresses it listens
 * on. The key names are the generation adapters' (`Generation.listenKeys`, `lockFile`); this only reads
 * them, so promote, drill, restore, the SYN hold and readiness agree on what a cfg says.
 */
export class MasterCfg {
  constructor(
    readonly file: string,
    readonly values: MfsConfig,
  ) {}

  /** The cfg, or a ProcessError naming the file. */
  static async read(file: string): Promise<MasterCfg> {
    return new MasterCfg(file, await readMfsConfig(file));
  }

  /** The cfg, or one that sets nothing (every answer its default) when it cannot be read. */
  static async readOrEmpty(file: string): Promise<MasterCfg> {
    return new MasterCfg(file, await readMfsConfig(file).catch(() => ({})));
  }

  get dataPath(): string | undefined {
    return this.values.DATA_PATH;
  }

  /** Every lock a master run with this cfg may hold, whatever its generation (masterLockFiles). */
  lockFiles(dataPath: string): string[] {
    return masterLockFiles(this.values, dataPath);
  }

  /** The port a master of `generation` listens on for `role` (undefined: no such peer, 1.x metaloggers). */
  listenPort(generation: Generation, role: ListenRole, fallback = DEFAULT_LISTEN_PORTS[role]): ListenPort | undefined {
    const key = generation.listenKeys[role]?.port;
    return key === undefined ? undefined : { key, port: this.portAt(key, fallback) };
  }

  /** The port for `role` whatever the generation calls its key (newest name first); `fallback` when none is set. */
  anyGenerationPort(role: ListenRole, fallback = DEFAULT_LISTEN_PORTS[role]): number {
    return listenPortKeys(role).reduceRight((port, key) => this.portAt(key, port), fallback);
  }

  /** Every port a master run with this cfg may listen on, whatever its generation calls the keys (sorted). */
  anyGenerationPorts(fallback: Partial<Record<ListenRole, number>> = {}): number[] {
    const ports = LISTEN_ROLES.flatMap((role) =>
      listenPortKeys(role).map((key) => this.portAt(key, fallback[role] ?? DEFAULT_LISTEN_PORTS[role])),
    );
    return [...new Set(ports)].sort((a, b) => a - b);
  }

  /** Where a master of `generation` serves `role` from this host: its listen host, loopback for "any address". */
  localHost(generation: Generation, role: ListenRole): string {
    const key = generation.listenKeys[role]?.host;
    const host = key === undefined ? undefined : this.values[key];
    return !host || host === '*' || host === '0.0.0.0' ? '127.0.0.1' : host;
  }

  private portAt(key: string, fallback: number): number {
    return Number.parseInt(this.values[key] ?? '', 10) || fallback;
  }
}
