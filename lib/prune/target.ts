import type { ChangelogScan } from '../moosefs/changelog.js';
import { ChainError, MfsJobsError } from '../core/errors.js';
import type { PlanChangelog, PlanEntry, PlanImage, PlanOtherFile } from './plan.js';

/**
 * A place prune works on: the snapshot store, or one master's/metalogger's DATA_PATH. `scan` reads
 * everything the plan needs (and throws a ChainError when the chain cannot be established);
 * `remove` deletes planned files, each only after checking it is still the file that was scanned.
 */
export interface PruneTarget {
  /** `store` or the host's name from the config. */
  readonly name: string;
  /** For messages: `store (/srv/mfs-snapshots)` or `ml1 (127.0.0.1:22):/var/lib/mfs`. */
  readonly where: string;
  scan(): Promise<TargetScan>;
  /** Reports every planned file as it is deleted or left alone, so a failure midway still tells what was done. */
  remove(entries: readonly PlanEntry[], signal: AbortSignal, onResult: (r: Removal) => void): Promise<void>;
  close(): Promise<void>;
}

export interface TargetScan {
  images: PlanImage[];
  changelogs: PlanChangelog[];
  others: PlanOtherFile[];
  /** What the target left out of the plan on purpose (another filesystem's snapshots), one line each. */
  warnings?: string[];
}

export interface Removal {
  entry: PlanEntry;
  deleted: boolean;
  /** Why a planned file was left alone (changed since the scan, opened meanwhile, aborted). */
  skipped?: string;
}

/** Files changed while prune read them (MooseFS rotating at the full hour): nothing is deleted, the next run retries. */
export class TargetChanged extends MfsJobsError {}

/**
 * A changelog scan's problems, except a cut last line in the file MooseFS is appending to right now
 * (its writer may be mid-line). Anything else means the chain cannot be established.
 */
export function refuseDamagedChangelog(scan: ChangelogScan, where: string, current: boolean): void {
  const problems = scan.problems.filter((p) => !(current && p.kind === 'cut-last-line'));
  const first = problems[0];
  if (first)
    throw new ChainError(
      where,
      `${where} line ${first.line}: ${first.reason}${problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : ''}`,
    );
}
