import type { Config } from '../core/config.js';
import { clusterIdentity, foreignMetaidMessage, normaliseMetaid, type ClusterIdentity } from '../store/identity.js';
import type { PromoteInventory } from './restore-plan.js';

/**
 * Which filesystem a promotion may restore: the cluster's identity (lib/store/identity.ts), never
 * what a restore point says of itself. In order: `jobs.promote.metaid` (this run's pin), the cluster's
 * identity (`cluster.metaid`, or learnt by backup), else the filesystems the live sources (metaloggers,
 * the old master, chunkservers) hold. Snapshots alone decide only when no live source knows its metaid:
 * an imported snapshot never outvotes the metaloggers.
 */
export interface ExpectedFilesystem {
  metaids: string[];
  /** Where that is known from, for messages. */
  from: string;
  /** Known before looking at any source (jobs.promote.metaid, the cluster's identity), not from the live sources. */
  known: boolean;
}

export function expectedFrom(
  identity: ClusterIdentity | undefined,
  pinned: string | undefined,
  inventories: readonly PromoteInventory[],
): ExpectedFilesystem | undefined {
  if (pinned) return { metaids: [normaliseMetaid(pinned)], from: 'jobs.promote.metaid', known: true };
  if (identity) return { metaids: [identity.metaid], from: identity.from, known: true };
  const stored = (i: PromoteInventory) => i.source.kind === 'snapshot' || i.source.kind === 'archive';
  const live = inventories.filter((i) => !stored(i) && !i.error && i.metaid !== undefined);
  const metaids = [...new Set(live.map((i) => i.metaid!))];
  if (metaids.length === 0) return undefined;
  return {
    metaids,
    from: `held by the live sources ${[...new Set(live.map((i) => i.source.name))].join(', ')}`,
    known: false,
  };
}

/**
 * A damaged identity file must not stop a failover: promote then goes by the live sources, and its
 * messages say why. `--other-filesystem`: only the run's pin decides, else the plan that reaches furthest.
 */
export async function expectedFilesystem(
  config: Config,
  pinned: string | undefined,
  inventories: readonly PromoteInventory[],
  otherFilesystem = false,
): Promise<ExpectedFilesystem | undefined> {
  if (otherFilesystem) return pinned ? expectedFrom(undefined, pinned, []) : undefined;
  let identity: ClusterIdentity | undefined;
  let damaged: string | undefined;
  try {
    identity = await clusterIdentity(config);
  } catch (err) {
    damaged = (err as Error).message;
  }
  const expected = expectedFrom(identity, pinned, inventories);
  return expected && damaged
    ? { ...expected, from: `${expected.from}; the cluster identity was not used: ${damaged}` }
    : expected;
}

/** One line per restore point (image) of another filesystem than the expected one: never used. */
export function foreignRestorePoints(
  inventories: readonly PromoteInventory[],
  expected: ExpectedFilesystem | undefined,
): string[] {
  if (!expected) return [];
  const ours = { metaid: expected.metaids.join(' or '), from: expected.from };
  return inventories.flatMap((inv) =>
    inv.images
      .filter((img) => !img.empty && img.metaid && !expected.metaids.includes(img.metaid))
      .map(
        (img) =>
          `${foreignMetaidMessage(`${img.source}:${img.name} (${img.path}, version ${img.version})`, img.metaid, ours)}: not used`,
      ),
  );
}
