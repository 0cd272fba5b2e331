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
 * Every path a job trusts, in the order an operator would look at them: its kind, the config key that
 * names it (`*`: each element of that list), what a user who may write it could do. `secret`: also never
 * readable by group or others (keys, credentials). A new file mfs-jobs trusts is one line here.
 */
const LOGIN_KEY = 'could swap the key mfs-jobs logs in with';
const HOST_KEYS = 'could add a host key and let a man-in-the-middle serve forged metadata';
const TRUSTED: readonly (readonly [Kind, string, string])[] = [
  ['file', 'config file', 'could change what mfs-jobs runs as root'],
  ['dir', 'stateDir', 'could forge job state and the daemon socket'],
  ['dir', 'lockDir', 'could block every job with a fake lock'],
  ['dir', 'daemon.socket', 'could stand in for the daemon and answer a failover hook'],
  ['dir', 'snapshotStore.path', 'could replace the snapshots a failover restores'],
  ['secret', 'snapshotStore.encryption.keyFile', 'could swap the key snapshots are sealed with'],
  ['secret', 'snapshotStore.signingKeyFile', 'could swap the key and sign forged snapshots'],
  ['secret', 'ssh.privateKey', LOGIN_KEY],
  ['secret', 'snapshotStore.copies.*.identityFile', LOGIN_KEY],
  ['file', 'ssh.knownHosts', HOST_KEYS],
  ['file', 'snapshotStore.copies.*.knownHosts', HOST_KEYS],
  ['secret', 'snapshotStore.copies.*.credentialsFile', 'could swap the credentials an off-site copy is written with'],
  ['file', 'quorum.etcd.caFile', 'could make mfs-jobs trust a forged etcd and take the leader key from it'],
  ['file', 'quorum.etcd.certFile', 'could swap the certificate mfs-jobs shows etcd'],
  ['secret', 'quorum.etcd.keyFile', 'could swap the key mfs-jobs authenticates to etcd with'],
  ['secret', 'quorum.failsafe.keyFile', 'could answer for a standby that it is not promoting'],
  ['file', 'fence.command.0', 'could run any program as root when a failover fences'],
];

/**
 * The paths a key names. Three keys are not plain lookups: `config file` (the file read), `daemon.socket`
 * (its directory: where another user could put a socket of theirs) and `ssh.*` (each host's, named by
 * the key the operator wrote: `ssh.knownHosts` when it comes from the global section).
 */
function pathsAt(config: Config, key: string): Found {
  if (key === 'config file') return [[key, path.isAbsolute(config.file) ? config.file : undefined]];
  if (key === 'daemon.socket') return [[key, config.daemon.socket && path.dirname(config.daemon.socket)]];
  if (key === 'ssh.privateKey') return sshFiles(config, 'privateKey');
  if (key === 'ssh.knownHosts') return sshFiles(config, 'knownHosts');
  const walk = (value: unknown, parts: string[], at: string[]): Found => {
    if (parts.length === 0) return typeof value === 'string' ? [[at.join('.'), value]] : [];
    const [part, ...rest] = parts as [string, ...string[]];
    if (part === '*') return Array.isArray(value) ? value.flatMap((v, i) => walk(v, rest, [...at, String(i)])) : [];
    const inner = value && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    return walk(inner, rest, [...at, part]);
  };
  return walk(config, key.split('.'), []);
}

/** Each host's SSH file, named by the key that set it. */
function sshFiles(config: Config, which: 'privateKey' | 'knownHosts'): Found {
  const hosts: DataPathHost[] = [...config.masters, ...config.metaloggers, ...config.chunkservers];
  return hosts.flatMap((host): Found => {
    if (!host.ssh) return [];
    const list = hostList(host);
    const index = (config[list] as DataPathHost[]).indexOf(host);
    return [[host.ssh.keys?.[which] ?? `${list}.${index}.ssh.${which}`, host.ssh[which]]];
  });
}

/** The problem with one path's owner or mode, or undefined. */
function problemOf(g: Guarded, st: Stats): string | undefined {
  const what = `${g.key} ${g.path}`;
  const mode = `mode ${octal(st.mode)}`;
  const kindOk = g.kind === 'dir' ? st.isDirectory() : st.isFile();
  if (!kindOk) return `${what} is not a ${g.kind === 'dir' ? 'directory' : 'regular file'}`;
  if (!trustedOwner(st.uid)) return `${what} is owned by uid ${st.uid}, not root: that user ${g.risk}`;
  if (st.mode & 0o002) return `${what} is world-writable (${mode}): any user ${g.risk}`;
  if (st.mode & 0o020) return `${what} is group-writable (${mode}): any user of group ${st.gid} ${g.risk}`;
  if (g.kind !== 'secret') return undefined;
  if (st.mode & 0o004) return `${what} is world-readable (${mode}): any user can read it; chmod 600 it`;
  const group = `any user of group ${st.gid}`;
  if (st.mode & 0o040) return `${what} is group-readable (${mode}): ${group} can read it; chmod 600 it`;
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
  if (!way.trusted && !way.missing) {
    const why = `${way.why}: any user who may write there could replace it and ${g.risk}`;
    throw new ConfigError(g.key, `${g.key} ${g.path}: ${why}`);
  }
  // A path not there yet is created by mfs-jobs itself, 0700/0600.
  const st = await statIfExists(g.path);
  const problem = st && problemOf(g, st);
  if (problem) throw new ConfigError(g.key, problem);
}

/** Every path a job trusts, each once (under the first key that names it). */
export function guardedPaths(config: Config): Guarded[] {
  const seen = new Set<string>();
  const out: Guarded[] = [];
  for (const [kind, name, risk] of TRUSTED) {
    for (const [key, p] of pathsAt(config, name)) {
      if (p === undefined || seen.has(p)) continue;
      seen.add(p);
      out.push({ key, path: p, kind, risk });
    }
  }
  return out;
}

/** Refuse to run (a ConfigError naming the path and its key) when a trusted path is writable by others. */
export async function checkStrictModes(config: Config): Promise<void> {
  for (const g of guardedPaths(config)) await check(g);
}
