import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { hostList, type Config, type DataPathHost } from './config.js';
import { ConfigError } from './errors.js';
import { octal, pathTrust, trustedOwner } from './trusted-path.js';

/**
 * sshd's StrictModes for mfs-jobs: jobs run as root, so a directory or file another user may write
 * (or owns) lets that user block the jobs, forge their state or snapshots, swap the keys they use, or
 * run code as root; a secret others may read is no secret. Checked before a job takes its lock: each
 * path itself, and every directory leading to it (lib/core/trusted-path.ts: owned by root, not
 * group- or world-writable unless sticky, no link another user owns on the way).
 */
type Kind = 'dir' | 'file' | 'secret';

interface Guarded {
  /** The config key the path came from. */
  key: string;
  path: string;
  kind: Kind;
  /** What a user who may write it could do. */
  risk: string;
}

/** [config key, path] pairs; an unset path is left out. */
type Found = [key: string, path: string | undefined][];

/**
 * Every path a job trusts, one entry per kind of path, in the order an operator would look at them.
 * `secret`: also never readable by group or others (keys, credentials). A new file mfs-jobs trusts is
 * one line here.
 */
const TRUSTED: readonly { kind: Kind; risk: string; find: (c: Config) => Found }[] = [
  { kind: 'file', risk: 'could change what mfs-jobs runs as root', find: (c) => [['config file', path.isAbsolute(c.file) ? c.file : undefined]] },
  { kind: 'dir', risk: 'could forge job state and the daemon socket', find: (c) => [['stateDir', c.stateDir]] },
  { kind: 'dir', risk: 'could block every job with a fake lock', find: (c) => [['lockDir', c.lockDir]] },
  { kind: 'dir', risk: 'could stand in for the daemon and answer a failover hook', find: (c) => [['daemon.socket', c.daemon.socket && path.dirname(c.daemon.socket)]] },
  { kind: 'dir', risk: 'could replace the snapshots a failover restores', find: (c) => [['snapshotStore.path', c.snapshotStore?.path]] },
  { kind: 'secret', risk: 'could swap the key snapshots are sealed with', find: (c) => [['snapshotStore.encryption.keyFile', c.snapshotStore?.encryption?.keyFile]] },
  { kind: 'secret', risk: 'could swap the key mfs-jobs logs in with', find: (c) => [...sshFiles(c, 'privateKey'), ...copyFiles(c, 'identityFile')] },
  { kind: 'file', risk: 'could add a host key and let a man-in-the-middle serve forged metadata', find: (c) => [...sshFiles(c, 'knownHosts'), ...copyFiles(c, 'knownHosts')] },
  { kind: 'secret', risk: 'could swap the credentials an off-site copy is written with', find: (c) => copyFiles(c, 'credentialsFile') },
];

/** Each host's SSH file, named by the key the operator wrote: `ssh.knownHosts` when it comes from the global section. */
function sshFiles(config: Config, which: 'privateKey' | 'knownHosts'): Found {
  const hosts: DataPathHost[] = [...config.masters, ...config.metaloggers, ...config.chunkservers];
  return hosts.flatMap((host): Found => {
    if (!host.ssh) return [];
    const list = hostList(host);
    const index = (config[list] as DataPathHost[]).indexOf(host);
    return [[host.ssh.keys?.[which] ?? `${list}.${index}.ssh.${which}`, host.ssh[which]]];
  });
}

/** A file of each off-site copy that has one (`identityFile`, `knownHosts`: SFTP; `credentialsFile`: S3). */
function copyFiles(config: Config, which: 'identityFile' | 'knownHosts' | 'credentialsFile'): Found {
  return (config.snapshotStore?.copies ?? []).map((copy, i): Found[number] => [`snapshotStore.copies.${i}.${which}`, (copy as Record<string, unknown>)[which] as string | undefined]);
}

/** The problem with one path's owner or mode, or undefined. */
function problemOf(g: Guarded, st: Stats): string | undefined {
  const isKind = g.kind === 'dir' ? st.isDirectory() : st.isFile();
  if (!isKind) return `${g.key} ${g.path} is not a ${g.kind === 'dir' ? 'directory' : 'regular file'}`;
  if (!trustedOwner(st.uid)) return `${g.key} ${g.path} is owned by uid ${st.uid}, not root: that user ${g.risk}`;
  if (st.mode & 0o002) return `${g.key} ${g.path} is world-writable (mode ${octal(st.mode)}): any user ${g.risk}`;
  if (st.mode & 0o020) return `${g.key} ${g.path} is group-writable (mode ${octal(st.mode)}): any user of group ${st.gid} ${g.risk}`;
  if (g.kind === 'secret' && st.mode & 0o004) return `${g.key} ${g.path} is world-readable (mode ${octal(st.mode)}): any user can read it; chmod 600 it`;
  if (g.kind === 'secret' && st.mode & 0o040) return `${g.key} ${g.path} is group-readable (mode ${octal(st.mode)}): any user of group ${st.gid} can read it; chmod 600 it`;
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
  // The way to it: a directory another user may write lets that user replace it, even before it exists.
  const parent = path.dirname(path.resolve(g.path));
  const way = await pathTrust(parent, 'ancestor');
  if (!way.trusted && !way.missing) throw new ConfigError(g.key, `${g.key} ${g.path}: ${way.why}: any user who may write there could replace it and ${g.risk}`);
  // A path not there yet is created by mfs-jobs itself, 0700/0600.
  const st = await statIfExists(g.path);
  const problem = st && problemOf(g, st);
  if (problem) throw new ConfigError(g.key, problem);
}

/** Every path a job trusts, each once (under the first key that names it). */
export function guardedPaths(config: Config): Guarded[] {
  const seen = new Set<string>();
  const out: Guarded[] = [];
  for (const t of TRUSTED) {
    for (const [key, p] of t.find(config)) {
      if (p === undefined || seen.has(p)) continue;
      seen.add(p);
      out.push({ key, path: p, kind: t.kind, risk: t.risk });
    }
  }
  return out;
}

/** Refuse to run (a ConfigError naming the path and its key) when a trusted path is writable by others. */
export async function checkStrictModes(config: Config): Promise<void> {
  for (const g of guardedPaths(config)) await check(g);
}
