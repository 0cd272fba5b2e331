import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import type { Config } from '../core/config.js';
import { StoreError } from '../core/errors.js';
import { printable } from '../core/names.js';

/**
 * The cluster's identity: the metaid of the one filesystem this config serves. Promote restores
 * only restore points of it, `snapshot import` refuses another (without --other-filesystem), prune
 * leaves snapshots of another alone. Known from `cluster.metaid` in the config, else learnt from the
 * first backup of a live master or metalogger and kept in `<stateDir>/cluster-identity.json` — never
 * from an imported archive, so no archive can decide which filesystem is ours.
 */
export interface ClusterIdentity {
  /** 16 upper-case hex digits, as the image header and mfscli show it. */
  metaid: string;
  /** Where it is known from, for messages: `cluster.metaid in FILE` or `FILE (learnt from ml1 at …)`. */
  from: string;
}

export const IDENTITY_FILE = 'cluster-identity.json';

interface IdentityRecord {
  metaid: string;
  learntFrom: string;
  at: string;
}

/** `5010abcd` → `000000005010ABCD`: the form image headers give, so ids compare as strings. */
export function normaliseMetaid(hex: string): string {
  return hex.toUpperCase().padStart(16, '0');
}

export function identityFile(stateDir: string): string {
  return path.join(stateDir, IDENTITY_FILE);
}

type IdentityConfig = Pick<Config, 'file' | 'stateDir'> & { cluster?: { metaid?: string } };

/** The configured identity, else the learnt one, else undefined (no backup of a live source yet). */
export async function clusterIdentity(config: IdentityConfig): Promise<ClusterIdentity | undefined> {
  if (config.cluster?.metaid) return { metaid: normaliseMetaid(config.cluster.metaid), from: `cluster.metaid in ${config.file}` };
  const file = identityFile(config.stateDir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(file, `${file}: cluster identity unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let record: Partial<IdentityRecord>;
  try {
    record = JSON.parse(text) as Partial<IdentityRecord>;
  } catch {
    throw new StoreError(file, `${file}: cluster identity is not valid JSON (remove it to learn it again, or set cluster.metaid in ${config.file})`);
  }
  if (typeof record?.metaid !== 'string' || !/^[0-9A-F]{16}$/.test(record.metaid)) {
    throw new StoreError(file, `${file}: cluster identity has no valid metaid (remove it to learn it again, or set cluster.metaid in ${config.file})`);
  }
  const learnt = typeof record.learntFrom === 'string' ? ` (learnt from ${printable(record.learntFrom).slice(0, 64)}${typeof record.at === 'string' ? ` at ${printable(record.at).slice(0, 32)}` : ''})` : '';
  return { metaid: record.metaid, from: `${file}${learnt}` };
}

/**
 * After a backup of a live source: the identity, recorded from `metaid` when none is known yet. The
 * caller holds the backup lock, so two runs never race to record different ones.
 */
export async function learnClusterIdentity(config: IdentityConfig, metaid: string, source: string, at = new Date()): Promise<{ identity: ClusterIdentity; learnt: boolean }> {
  const known = await clusterIdentity(config);
  if (known) return { identity: known, learnt: false };
  const record: IdentityRecord = { metaid: normaliseMetaid(metaid), learntFrom: source, at: at.toISOString() };
  await writeFileAtomic(identityFile(config.stateDir), JSON.stringify(record, null, 2) + '\n');
  return { identity: (await clusterIdentity(config))!, learnt: true };
}

/** One line naming both ids and where the cluster's is known from. */
export function foreignMetaidMessage(what: string, metaid: string, identity: ClusterIdentity): string {
  return `${what} is of filesystem metaid ${printable(metaid).slice(0, 40) || '-'}, the cluster's is ${identity.metaid} (${identity.from})`;
}
