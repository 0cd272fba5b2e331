import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { hostList, type Config, type DataPathHost } from './config.js';
import { ConfigError } from './errors.js';

/**
 * sshd's StrictModes for mfs-jobs: jobs run as root, so a directory or file another user may write
 * (or owns) lets that user block the jobs, forge their state or snapshots, or run code as root.
 * Checked before a job takes its lock; like sshd, the path itself, and for the lock directory its
 * parent when that is world-writable without the sticky bit.
 */
interface Guarded {
  /** The config key the path came from. */
  key: string;
  path: string;
  kind: 'dir' | 'file';
  /** What a user who may write it could do. */
  risk: string;
  /** Check the parent directory too (the lock directory: a writable parent lets anyone replace it). */
  parent?: boolean;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

function trusted(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

/** The problem with one path's owner or mode, or undefined. */
function problemOf(g: Guarded, st: Stats): string | undefined {
  if ((g.kind === 'dir') !== st.isDirectory()) return `${g.key} ${g.path} is not a ${g.kind === 'dir' ? 'directory' : 'regular file'}`;
  if (!trusted(st.uid)) return `${g.key} ${g.path} is owned by uid ${st.uid}, not root: that user ${g.risk}`;
  if (st.mode & 0o002) return `${g.key} ${g.path} is world-writable (mode ${octal(st.mode)}): any user ${g.risk}`;
  if (st.mode & 0o020) return `${g.key} ${g.path} is group-writable (mode ${octal(st.mode)}): any user of group ${st.gid} ${g.risk}`;
  return undefined;
}

async function statIfExists(p: string): Promise<Stats | undefined> {
  try {
    return await fs.stat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function check(g: Guarded): Promise<void> {
  if (g.parent) {
    const parent = path.dirname(g.path);
    const pst = await statIfExists(parent);
    if (pst && pst.mode & 0o002 && !(pst.mode & 0o1000)) {
      throw new ConfigError(g.key, `${g.key} ${g.path}: its parent ${parent} is world-writable without the sticky bit (mode ${octal(pst.mode)}): any user could replace it and ${g.risk}`);
    }
  }
  // A path not there yet is created by mfs-jobs itself, 0700/0600.
  const st = await statIfExists(g.path);
  const problem = st && problemOf(g, st);
  if (problem) throw new ConfigError(g.key, problem);
}

function sshPaths(config: Config): Guarded[] {
  const out: Guarded[] = [];
  const hosts: DataPathHost[] = [...config.masters, ...config.metaloggers, ...config.chunkservers];
  for (const host of hosts) {
    if (!host.ssh) continue;
    const list = hostList(host);
    const index = (config[list] as DataPathHost[]).indexOf(host);
    // The key the operator wrote: `ssh.knownHosts` when the file comes from the global section.
    const keys = host.ssh.keys ?? { privateKey: `${list}.${index}.ssh.privateKey`, knownHosts: `${list}.${index}.ssh.knownHosts` };
    out.push(
      { key: keys.privateKey, path: host.ssh.privateKey, kind: 'file', risk: 'could swap the key mfs-jobs logs in with' },
      { key: keys.knownHosts, path: host.ssh.knownHosts, kind: 'file', risk: 'could add a host key and let a man-in-the-middle serve forged metadata' },
    );
  }
  return out;
}

/** Every path a job trusts, in the order an operator would look at them. */
export function guardedPaths(config: Config): Guarded[] {
  const out: Guarded[] = [];
  if (path.isAbsolute(config.file)) out.push({ key: 'config file', path: config.file, kind: 'file', risk: 'could change what mfs-jobs runs as root' });
  out.push(
    { key: 'stateDir', path: config.stateDir, kind: 'dir', risk: 'could forge job state and the daemon socket' },
    { key: 'lockDir', path: config.lockDir, kind: 'dir', risk: 'could block every job with a fake lock', parent: true },
  );
  if (config.snapshotStore) out.push({ key: 'snapshotStore.path', path: config.snapshotStore.path, kind: 'dir', risk: 'could replace the snapshots a failover restores' });
  const signing = config.snapshotStore?.signingKeyFile;
  const risk = 'could swap the key and sign forged snapshots';
  if (signing) out.push({ key: 'snapshotStore.signingKeyFile', path: signing, kind: 'file', risk });
  const seen = new Set<string>();
  return [...out, ...sshPaths(config)].filter((g) => !seen.has(g.path) && Boolean(seen.add(g.path)));
}

/** Refuse to run (a ConfigError naming the path and its key) when a trusted path is writable by others. */
export async function checkStrictModes(config: Config): Promise<void> {
  for (const g of guardedPaths(config)) await check(g);
}
