import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import type { Config } from '../core/config.js';
import { ChainError, StoreError } from '../core/errors.js';
import { printable } from '../core/names.js';

/**
 * The cluster's identity: the metaid of the one filesystem this config serves. Drill, restore and
 * promote restore only restore points of it (`restorePointProblem`), `snapshot import` refuses another
 * (each without --other-filesystem), prune leaves snapshots of another alone. Known from `cluster.metaid`
 * in the config, else learnt from the first backup of a live master or metalogger and kept in
 * `<stateDir>/cluster-identity.json` — never from an imported archive or a copy, so nothing others may
 * write can decide which filesystem is ours. Only when neither exists do the live sources tell (promote:
 * the metaloggers and old master it reads; drill and restore: a live master that reports its metaid).
 * The recorded word goes first: a live host may lie, and one that disagrees with what backup learnt from
 * it means a recreated filesystem or a config pointing elsewhere — for the operator to settle.
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
  if (config.cluster?.metaid)
    return { metaid: normaliseMetaid(config.cluster.metaid), from: `cluster.metaid in ${config.file}` };
  const file = identityFile(config.stateDir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(
      file,
      `${file}: cluster identity unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  let record: Partial<IdentityRecord>;
  try {
    record = JSON.parse(text) as Partial<IdentityRecord>;
  } catch {
    throw new StoreError(
      file,
      `${file}: cluster identity is not valid JSON (remove it to learn it again, or set cluster.metaid in ${config.file})`,
    );
  }
  if (typeof record?.metaid !== 'string' || !/^[0-9A-F]{16}$/.test(record.metaid)) {
    throw new StoreError(
      file,
      `${file}: cluster identity has no valid metaid (remove it to learn it again, or set cluster.metaid in ${config.file})`,
    );
  }
  const learnt =
    typeof record.learntFrom === 'string'
      ? ` (learnt from ${printable(record.learntFrom).slice(0, 64)}${typeof record.at === 'string' ? ` at ${printable(record.at).slice(0, 32)}` : ''})`
      : '';
  return { metaid: record.metaid, from: `${file}${learnt}` };
}

/**
 * After a backup of a live source: the identity, recorded from `metaid` when none is known yet. The
 * caller holds the backup lock, so two runs never race to record different ones.
 */
export async function learnClusterIdentity(
  config: IdentityConfig,
  metaid: string,
  source: string,
  at = new Date(),
): Promise<{ identity: ClusterIdentity; learnt: boolean }> {
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

/** The flag that lets drill, restore and promote use a restore point of another filesystem (as import's). */
export const OTHER_FILESYSTEM_FLAG = '--other-filesystem';

/**
 * Where a restore point lies: `copy`, an off-site copy anyone holding its credentials may write; `local`,
 * the store (written by backup, or imported past the same check) or a metalogger's / master's DATA_PATH.
 */
export type RestorePointOrigin = 'copy' | 'local';

/**
 * The one rule drill, restore and promote apply to a restore point's image (docs/reliability.md, "cluster
 * identity"): undefined when it may be used, else why not, in one line. An image without a metaid (1.x
 * `MFSM 1.5`, or an empty `MFSM NEW`) has nothing to compare and passes. With the cluster's metaid known,
 * another metaid is refused. Unknown (no config, nothing recorded, no live source tells), a copy's image is
 * refused too — nothing of root's vouches for what others may write — and a local one is used.
 */
export function restorePointProblem(
  what: string,
  metaid: string,
  origin: RestorePointOrigin,
  identity: ClusterIdentity | undefined,
  unknownBecause = 'no cluster identity known',
): string | undefined {
  if (!metaid) return undefined;
  if (identity) return metaid === identity.metaid ? undefined : foreignMetaidMessage(what, metaid, identity);
  if (origin === 'local') return undefined;
  const shown = printable(metaid).slice(0, 40);
  const unknown = `the cluster's metaid is not known (${unknownBecause})`;
  return `${what} is of filesystem metaid ${shown} and ${unknown}: a copy is writable by others`;
}

/** A restore point the cluster identity refuses: nothing failed, so nothing of it is kept as evidence. */
export class RestorePointRefused extends ChainError {
  constructor(subject: string, message: string) {
    super(subject, message);
    // Said as the ChainError it is: one of the few error names an operator sees.
    this.name = 'ChainError';
  }
}

/** What a drill or restore knows before it places a restore point: the cluster's identity and the run's flag. */
export interface IdentityGate {
  identity?: ClusterIdentity;
  /** Why the identity is unknown, for the refusal (set when `identity` is not). */
  unknownBecause?: string;
  otherFilesystem: boolean;
}

/**
 * The rule as drill and restore apply it: a ChainError naming the restore point when refused, a line for
 * the report when `--other-filesystem` let it through, else undefined.
 */
export function admitRestorePoint(
  gate: IdentityGate,
  what: string,
  metaid: string,
  origin: RestorePointOrigin,
): string | undefined {
  const problem = restorePointProblem(what, metaid, origin, gate.identity, gate.unknownBecause);
  if (!problem) return undefined;
  if (gate.otherFilesystem) return `${problem}: used anyway (${OTHER_FILESYSTEM_FLAG})`;
  throw new RestorePointRefused(what, `${problem}: not used (${OTHER_FILESYSTEM_FLAG} to use it anyway)`);
}
