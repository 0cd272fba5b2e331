import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DIR_MODE, FILE_MODE, ensureDir, pathExists } from '../core/atomic.js';
import type { Config } from '../core/config.js';
import { ConfigError, ProcessError } from '../core/errors.js';
import { generationNamed, type Generation } from './generations/index.js';
import { mfsConfigText, readMfsConfig, runningMasterPid } from './mfsmaster.js';

/**
 * A throw-away mfsmaster on loopback: its own DATA_PATH under a scratch root, its own free ports,
 * never a production port or DATA_PATH. Drill restores into one; tests and promote can reuse it.
 */
export const SCRATCH_HOST = '127.0.0.1';
/** MooseFS's own defaults: a production master (or a standby about to be promoted) listens here. */
export const MOOSEFS_DEFAULT_PORTS = [9419, 9420, 9421] as const;

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

/** Can we bind `host:port` right now? (A master on 0.0.0.0:port makes 127.0.0.1:port busy too.) */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function ephemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Listening ports are picked from here up to the start of the kernel's ephemeral range. */
const FIRST_LISTEN_PORT = 10_000;

/** First port of the kernel's ephemeral range (outgoing connections), 32768 when unreadable. */
async function ephemeralRangeStart(): Promise<number> {
  const text = await fs.readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '');
  const low = Number(text.trim().split(/\s+/)[0]);
  return Number.isInteger(low) && low > 0 ? low : 32_768;
}

/**
 * A free port for a server to listen on, picked below the kernel's ephemeral range: a port from bind(0)
 * lies inside that range, where any outgoing connection on this host can take it between the pick and
 * the server's own bind (mfsmaster then stops: "can't listen on …: EADDRINUSE"). Falls back to bind(0)
 * when no range is left below the ephemeral one.
 */
export async function listenPort(host: string): Promise<number> {
  const end = await ephemeralRangeStart();
  if (end - FIRST_LISTEN_PORT >= 1_000) {
    for (let i = 0; i < 50; i++) {
      const port = FIRST_LISTEN_PORT + Math.floor(Math.random() * (end - FIRST_LISTEN_PORT));
      if (await portIsFree(host, port)) return port;
    }
  }
  return ephemeralPort(host);
}

/**
 * Ports production masters use, by config: MooseFS defaults, every configured master's cliPort, the
 * standby's cliPort and the MATO*_LISTEN_PORTs of its mfsmaster.cfg — a drill must never hold a port a
 * promote is about to need.
 */
export async function productionPorts(config: Config): Promise<Set<number>> {
  const ports = new Set<number>(MOOSEFS_DEFAULT_PORTS);
  for (const m of config.masters) ports.add(m.cliPort);
  if (config.standby) {
    ports.add(config.standby.cliPort);
    const cfg = await readMfsConfig(config.standby.masterConfig).catch((): Record<string, string> => ({}));
    for (const key of ['MATOML_LISTEN_PORT', 'MATOCS_LISTEN_PORT', 'MATOCL_LISTEN_PORT']) {
      const p = Number(cfg[key]);
      if (Number.isInteger(p) && p > 0) ports.add(p);
    }
  }
  return ports;
}

/** Fixed ports are checked (not production, not busy); "auto" ones are picked free and distinct. */
export async function pickPorts(requested: RequestedPorts, reserved: ReadonlySet<number>, keyPrefix: string, host = SCRATCH_HOST): Promise<ScratchPorts> {
  const chosen = new Set<number>();
  const out = {} as ScratchPorts;
  for (const role of PORT_ROLES) {
    const want = requested[role];
    const key = `${keyPrefix}.${role}`;
    if (want !== 'auto') {
      if (reserved.has(want)) throw new ConfigError(key, `${key}: port ${want} is a production master port (MooseFS default or configured): refusing to drill on it`);
      if (chosen.has(want)) throw new ConfigError(key, `${key}: port ${want} is used twice`);
      if (!(await portIsFree(host, want))) throw new ConfigError(key, `${key}: port ${want} on ${host} is busy (another process listens there): choose a free port or "auto"`);
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

/** Is `inner` the same path as `outer` or inside it? */
export function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(path.resolve(outer), path.resolve(inner));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Every DATA_PATH a production daemon uses, with the config key that names it. */
export async function productionDataPaths(config: Config): Promise<{ key: string; dataPath: string }[]> {
  const out = [
    ...config.masters.map((m, i) => ({ key: `masters.${i}.dataPath`, dataPath: m.dataPath })),
    ...config.metaloggers.map((m, i) => ({ key: `metaloggers.${i}.dataPath`, dataPath: m.dataPath })),
  ];
  if (config.standby) {
    out.push({ key: 'standby.dataPath', dataPath: config.standby.dataPath });
    const cfg = await readMfsConfig(config.standby.masterConfig).catch((): Record<string, string> => ({}));
    if (cfg.DATA_PATH) out.push({ key: `${config.standby.masterConfig} DATA_PATH`, dataPath: cfg.DATA_PATH });
  }
  return out;
}

/** Refuse a scratch root that is, or lies inside, a production DATA_PATH. */
export async function checkScratchRoot(config: Config, root: string, key: string): Promise<void> {
  for (const p of await productionDataPaths(config)) {
    if (isWithin(root, p.dataPath)) throw new ConfigError(key, `${key}: scratch directory ${root} lies in a production DATA_PATH (${p.key} = ${p.dataPath}): choose another`);
  }
}

/** Room for the copy plus the image mfsmaster dumps at its clean stop, and a margin for stats.mfs & co. */
export const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

/** Refuse to start a copy that would fill the filesystem (a drill must not hurt the machine it runs on). */
export async function ensureFreeSpace(dir: string, bytes: number): Promise<void> {
  const st = await fs.statfs(dir);
  const free = st.bavail * st.bsize;
  const need = bytes + SPACE_MARGIN_BYTES;
  if (free < need) throw new ProcessError(dir, `not enough free space in ${dir}: the drill needs about ${Math.ceil(need / 2 ** 20)} MiB, ${Math.floor(free / 2 ** 20)} MiB are free`);
}

/** The group name of this process (WORKING_GROUP); undefined lets mfsmaster pick its default. */
async function groupName(gid: number): Promise<string | undefined> {
  const text = await fs.readFile('/etc/group', 'utf8').catch(() => '');
  return text.split('\n').map((l) => l.split(':')).find((f) => f[2] === String(gid))?.[0];
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
  if (!generation.exportsWithPassword) return `# ${generation.label} has no exports: any client reaching the client port may mount\n`;
  const md5pass = createHash('md5').update(randomBytes(32)).digest('hex');
  return `${SCRATCH_HOST}\t/\tro,md5pass=${md5pass}\n`;
}

/**
 * mfsmaster.cfg for the scratch master: loopback only, no usable export (scratchExports), and run as
 * this process's user (a root-owned 0700 DATA_PATH is unreadable to Debian's default `mfs` user).
 */
export async function writeScratchConfig(scratch: Scratch, ports: ScratchPorts, generation: Generation = generationNamed('3.0'), extra: Record<string, string | number> = {}): Promise<void> {
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

async function waitGone(pid: number, dataPath: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await runningMasterPid(dataPath)) !== pid) return true;
    await new Promise((r) => setTimeout(r, 50));
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
  if (await waitGone(pid, scratch.dataPath, timeoutMs)) return pid;
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
  await waitGone(pid, scratch.dataPath, 10_000);
  return pid;
}

/** Scratch run directories under `root` (`<prefix>-*`), oldest first. */
export async function listScratches(root: string, prefix: string): Promise<Scratch[]> {
  const names = await fs.readdir(root).catch(() => [] as string[]);
  return names
    .filter((n) => n.startsWith(`${prefix}-`))
    .sort()
    .map((n) => ({ dir: path.join(root, n), dataPath: path.join(root, n, 'data'), configFile: path.join(root, n, 'mfsmaster.cfg') }));
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
