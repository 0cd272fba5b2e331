import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DIR_MODE, FILE_MODE, ensureDir, pathExists } from '../core/atomic.js';
import type { Config } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import { processAlive } from '../core/lock.js';
import { listenPort, portIsFree } from '../core/net.js';
import { isWithin } from '../core/paths.js';
import { DEFAULT_GENERATION, type Generation } from './generations/index.js';
import { DEFAULT_LISTEN_PORTS, MasterCfg } from './master-cfg.js';
import { mfsConfigText, runningMasterPid } from './mfsmaster.js';

/**
 * A throw-away mfsmaster on loopback: its own DATA_PATH under a scratch root, its own free ports,
 * never a production port or DATA_PATH. Drill restores into one; tests and promote can reuse it.
 */
export const SCRATCH_HOST = '127.0.0.1';

export type PortRole = 'matoml' | 'matocs' | 'matocl';
export const PORT_ROLES: readonly PortRole[] = ['matoml', 'matocs', 'matocl'];
export type ScratchPorts = Record<PortRole, number>;
export type RequestedPorts = Record<PortRole, number | 'auto'>;

export interface Scratch {
  /** The run's directory: config, exports, topology, mfsmaster output, and `data/`. */
  dir: string;
  /** The scratch master's DATA_PATH. */
  dataPath: string;
  configFile: string;
}

/**
 * Ports production masters use, by config: MooseFS defaults, every configured master's cliPort, the
 * standby's cliPort and every listen port its mfsmaster.cfg sets under any generation's key (listenPortKeys,
 * 1.x's MATOCU_LISTEN_PORT too) — a drill must never hold a port a promote is about to need.
 */
export async function productionPorts(config: Config): Promise<Set<number>> {
  // MooseFS's own defaults: a production master (or a standby about to be promoted) listens there.
  const ports = new Set<number>(Object.values(DEFAULT_LISTEN_PORTS));
  for (const m of config.masters) ports.add(m.cliPort);
  if (config.standby) {
    ports.add(config.standby.cliPort);
    // Whatever its generation calls the keys (1.x's MATOCU_LISTEN_PORT too); unset ones are the defaults above.
    const cfg = await MasterCfg.readOrEmpty(config.standby.masterConfig);
    for (const p of cfg.anyGenerationPorts()) ports.add(p);
  }
  return ports;
}

/** Fixed ports are checked (not production, not busy); "auto" ones are picked free and distinct. */
export async function pickPorts(
  requested: RequestedPorts,
  reserved: ReadonlySet<number>,
  keyPrefix: string,
  host = SCRATCH_HOST,
): Promise<ScratchPorts> {
  const chosen = new Set<number>();
  const out = {} as ScratchPorts;
  for (const role of PORT_ROLES) {
    const want = requested[role];
    const key = `${keyPrefix}.${role}`;
    if (want !== 'auto') {
      if (reserved.has(want))
        throw new ConfigError(
          key,
          `${key}: port ${want} is a production master port (MooseFS default or configured): refusing to drill on it`,
        );
      if (chosen.has(want)) throw new ConfigError(key, `${key}: port ${want} is used twice`);
      if (!(await portIsFree(host, want)))
        throw new ConfigError(
          key,
          `${key}: port ${want} on ${host} is busy (another process listens there): choose a free port or "auto"`,
        );
      out[role] = want;
    } else {
      let port = await listenPort(host);
      for (let i = 0; reserved.has(port) || chosen.has(port) || Object.values(requested).includes(port); i++) {
        if (i > 20) throw new ConfigError(key, `${key}: no free port found on ${host}`);
        port = await listenPort(host);
      }
      out[role] = port;
    }
    chosen.add(out[role]);
  }
  return out;
}

/** Every DATA_PATH a production daemon uses, with the config key that names it. */
export async function productionDataPaths(config: Config): Promise<{ key: string; dataPath: string }[]> {
  const out = [
    ...config.masters.map((m, i) => ({ key: `masters.${i}.dataPath`, dataPath: m.dataPath })),
    ...config.metaloggers.map((m, i) => ({ key: `metaloggers.${i}.dataPath`, dataPath: m.dataPath })),
  ];
  if (config.standby) {
    out.push({ key: 'standby.dataPath', dataPath: config.standby.dataPath });
    const cfg = await MasterCfg.readOrEmpty(config.standby.masterConfig);
    if (cfg.dataPath) out.push({ key: `${config.standby.masterConfig} DATA_PATH`, dataPath: cfg.dataPath });
  }
  return out;
}

/** Refuse a scratch root that is, or lies inside, a production DATA_PATH. */
export async function checkScratchRoot(config: Config, root: string, key: string): Promise<void> {
  for (const p of await productionDataPaths(config)) {
    if (isWithin(root, p.dataPath))
      throw new ConfigError(
        key,
        `${key}: scratch directory ${root} lies in a production DATA_PATH (${p.key} = ${p.dataPath}): choose another`,
      );
  }
}

/** The group name of this process (WORKING_GROUP); undefined lets mfsmaster pick its default. */
async function groupName(gid: number): Promise<string | undefined> {
  const text = await fs.readFile('/etc/group', 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[2] === String(gid))?.[0];
}

/**
 * Marks a scratch kept on purpose (--keep, or evidence of a failed restore). A scratch without it
 * belongs to a run that was killed before it could clean up, and the next run removes it: a drill
 * killed every week must not leave a copy of the metadata behind each time.
 */
const KEPT = 'KEPT';

/** A fresh 0700 run directory `<root>/<prefix>-XXXXXX` with an empty 0700 DATA_PATH. */
export async function createScratch(root: string, prefix: string): Promise<Scratch> {
  await ensureDir(root);
  const dir = await fs.mkdtemp(path.join(root, `${prefix}-`));
  await fs.chmod(dir, DIR_MODE);
  const dataPath = path.join(dir, 'data');
  await fs.mkdir(dataPath, { mode: DIR_MODE });
  return { dir, dataPath, configFile: path.join(dir, 'mfsmaster.cfg') };
}

/** Keep this scratch for inspection: later runs stop its master but leave its files. */
export async function keepScratch(scratch: Scratch, why: string): Promise<void> {
  await fs.writeFile(path.join(scratch.dir, KEPT), `${new Date().toISOString()} ${why}\n`, { mode: FILE_MODE });
}

/**
 * The scratch master's mfsexports.cfg. Nothing mounts a scratch master (the drill asks it over the
 * client protocol, which needs no export), but mfsmaster refuses to start without an export: one
 * read-only export for 127.0.0.1 behind the MD5 of 32 random bytes nobody ever sees, so no local user
 * can mount the restored namespace during a drill ("Password is needed"). 1.5 reads no exports at
 * all: its scratch master can be mounted by any local user while it runs (ask the adapter).
 */
export function scratchExports(generation: Generation): string {
  if (!generation.exportsWithPassword)
    return `# ${generation.label} has no exports: any client reaching the client port may mount\n`;
  const md5pass = createHash('md5').update(randomBytes(32)).digest('hex');
  return `${SCRATCH_HOST}\t/\tro,md5pass=${md5pass}\n`;
}

/**
 * mfsmaster.cfg for the scratch master: loopback only, no usable export (scratchExports), and run as
 * this process's user (a root-owned 0700 DATA_PATH is unreadable to Debian's default `mfs` user).
 */
export async function writeScratchConfig(
  scratch: Scratch,
  ports: ScratchPorts,
  generation: Generation = DEFAULT_GENERATION,
  extra: Record<string, string | number> = {},
): Promise<void> {
  const exportsFile = path.join(scratch.dir, 'mfsexports.cfg');
  const topologyFile = path.join(scratch.dir, 'mfstopology.cfg');
  await fs.writeFile(exportsFile, scratchExports(generation), { mode: FILE_MODE });
  await fs.writeFile(topologyFile, '', { mode: FILE_MODE });
  const group = await groupName(process.getgid?.() ?? 0);
  const keys = generation.listenKeys;
  const values: Record<string, string | number> = {
    WORKING_USER: os.userInfo().username,
    ...(group ? { WORKING_GROUP: group } : {}),
    DATA_PATH: scratch.dataPath,
    EXPORTS_FILENAME: exportsFile,
    TOPOLOGY_FILENAME: topologyFile,
    ...(keys.ml ? { [keys.ml.host]: SCRATCH_HOST, [keys.ml.port]: ports.matoml } : {}),
    [keys.cs.host]: SCRATCH_HOST,
    [keys.cs.port]: ports.matocs,
    [keys.cl.host]: SCRATCH_HOST,
    [keys.cl.port]: ports.matocl,
    ...generation.masterConfigExtra(scratch.dataPath),
    ...extra,
  };
  await fs.writeFile(scratch.configFile, mfsConfigText(values), { mode: FILE_MODE });
}

async function waitGone(pid: number, timeoutMs: number, pauseMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Not by the lock's PID check: a killed master's /proc/PID/exe goes (its memory is released) before
    // its files close, and its listening sockets take connections until they do (seen in CI, with the
    // drill's guard already down). Gone is exited or a zombie.
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  return false;
}

/**
 * Make sure no master runs in the scratch DATA_PATH: SIGTERM by the lock's PID (a clean stop in every
 * generation: the master writes metadata.mfs and exits), then SIGKILL. A signal, not `mfsmaster stop`:
 * mfsmaster 1.6.4 ignores the word and starts a new master. Returns the PID that was running, if any.
 */
export async function stopScratchMaster(scratch: Scratch, timeoutMs = 60_000): Promise<number | undefined> {
  const pid = await runningMasterPid(scratch.dataPath);
  if (pid === undefined) return undefined;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return pid;
  }
  if (await waitGone(pid, timeoutMs)) return pid;
  return killScratchMaster(scratch);
}

/**
 * SIGKILL by the lock's PID, no clean stop: for a scratch about to be removed, whose metadata dump
 * would be thrown away (at 1M files the dump took longer than the restore; npm run bench, case 4).
 */
export async function killScratchMaster(scratch: Scratch): Promise<number | undefined> {
  const pid = await runningMasterPid(scratch.dataPath);
  if (pid === undefined) return undefined;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone meanwhile */
  }
  // Gone within milliseconds of a SIGKILL (its memory freed): asked often, nothing waits on a clean stop here.
  await waitGone(pid, 10_000, 5);
  return pid;
}

/** Scratch run directories under `root` (`<prefix>-*`), oldest first. */
export async function listScratches(root: string, prefix: string): Promise<Scratch[]> {
  const names = await fs.readdir(root).catch(() => [] as string[]);
  return names
    .filter((n) => n.startsWith(`${prefix}-`))
    .sort()
    .map((n) => ({
      dir: path.join(root, n),
      dataPath: path.join(root, n, 'data'),
      configFile: path.join(root, n, 'mfsmaster.cfg'),
    }));
}

export interface Leftover {
  dir: string;
  /** The scratch master that was still running, now stopped. */
  pid?: number;
  /** The scratch belonged to an interrupted run and was removed. */
  removed: boolean;
}

/**
 * What killed runs left in `root`: their scratch masters are stopped, their scratches removed
 * (the caller holds the job's lock, so none is live work). Kept scratches only lose their master.
 */
export async function clearLeftovers(root: string, prefix: string): Promise<Leftover[]> {
  const found: Leftover[] = [];
  for (const scratch of await listScratches(root, prefix)) {
    const pid = await stopScratchMaster(scratch);
    const interrupted = !(await pathExists(path.join(scratch.dir, KEPT)));
    if (interrupted) await fs.rm(scratch.dir, { recursive: true, force: true });
    if (pid !== undefined || interrupted) found.push({ dir: scratch.dir, pid, removed: interrupted });
  }
  return found;
}
