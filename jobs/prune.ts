import { z } from 'zod';
import { allHosts, jobOptionsSchema, type Config } from '../lib/core/config.js';
import { ConfigError, describeError } from '../lib/core/errors.js';
import { defineJob, worst, type JobContext, type JobResult, type Metric, type Status } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import { DataPathTarget } from '../lib/prune/datapath.js';
import {
  describeFile,
  formatBytes,
  planLine,
  planPrune,
  type PlanEntry,
  type PrunePlan,
  type PruneRules,
} from '../lib/prune/plan.js';
import { SnapshotStoreTarget } from '../lib/prune/store.js';
import { storeKeys, storeWriteSettings } from '../lib/store/stored-file.js';
import { acquireLock } from '../lib/core/lock.js';
import { LockBusyError } from '../lib/core/errors.js';
import { restoreFrom } from '../lib/moosefs/metadata.js';
import { listSnapshots } from '../lib/store/manifest.js';
import { archiveDir, pruneStoreSegments, type ArchiveCompaction, type ArchivePruning } from '../lib/store/segments.js';
import { compactArchive, pruneCopyArchive } from '../lib/store/copy/archive.js';
import { pathExists } from '../lib/core/atomic.js';
import { VERSION } from '../lib/core/cli.js';
import { clusterIdentity, type ClusterIdentity } from '../lib/store/identity.js';
import { TargetChanged, type PruneTarget, type Removal } from '../lib/prune/target.js';

const options = jobOptionsSchema({
  /** Prune the snapshot store (when `snapshotStore:` is configured). */
  snapshotStore: z.boolean().default(true),
  /** Names of masters/metaloggers whose DATA_PATH prune may thin out (none unless listed). */
  dataPaths: z.array(z.string().min(1)).default([]),
  /** Restore points older than this stop being retained; the changelogs only they needed go. */
  maxAgeHours: z.number().positive().optional(),
  /** Release the oldest restore points until what is kept in a target fits (MiB, as MooseFS counts). */
  maxTotalSizeMB: z.number().positive().optional(),
  /** The newest K restore points are retained whatever maxAgeHours / maxTotalSizeMB say. */
  keepRestorePoints: z.number().int().min(1).default(1),
  /** The K newest rotated changelog.N/changelog_ml.N files of a DATA_PATH stay even when unneeded. */
  keepRotated: z.number().int().min(0).default(2),
  /** Nothing modified more recently is deleted: MooseFS may be rotating it (the only guard for remote hosts besides `.0`). */
  minAgeMinutes: z.number().min(0).default(10),
});
type PruneOptions = z.infer<typeof options>;

interface TargetOutcome {
  target: string;
  where: string;
  status: Status;
  /** Why nothing (more) was deleted in this target. */
  error?: string;
  plan?: PrunePlan;
  removals: Removal[];
}

type TargetOpener = { name: string; open: (signal: AbortSignal) => Promise<PruneTarget> };

function selectTargets(
  config: Config,
  o: PruneOptions,
  dryRun: boolean,
  identity: ClusterIdentity | undefined,
): TargetOpener[] {
  const out: TargetOpener[] = [];
  const store = config.snapshotStore;
  if (o.snapshotStore && store)
    out.push({
      name: 'store',
      open: async () => new SnapshotStoreTarget(store.path, dryRun, identity, await storeKeys(config)),
    });
  o.dataPaths.forEach((name, i) => {
    const host = allHosts(config).find((h) => h.name === name);
    if (!host)
      throw new ConfigError(
        `jobs.prune.dataPaths.${i}`,
        `${config.file}: jobs.prune.dataPaths.${i}: no master or metalogger named "${name}"`,
      );
    out.push({ name, open: (signal) => DataPathTarget.open(config, host, signal) });
  });
  return out;
}

function rulesOf(o: PruneOptions): PruneRules {
  return {
    maxAgeMs: o.maxAgeHours === undefined ? undefined : o.maxAgeHours * 3_600_000,
    maxTotalBytes: o.maxTotalSizeMB === undefined ? undefined : Math.floor(o.maxTotalSizeMB * 1024 * 1024),
    keepRestorePoints: o.keepRestorePoints,
    keepRotated: o.keepRotated,
    minAgeMs: o.minAgeMinutes * 60_000,
  };
}

/** Scan, plan, delete (unless --dry-run). Any doubt about the chain stops this target before the first delete. */
async function pruneTarget(ctx: JobContext<PruneOptions>, opener: TargetOpener): Promise<TargetOutcome> {
  let target: PruneTarget | undefined;
  let plan: PrunePlan | undefined;
  const removals: Removal[] = [];
  try {
    target = await opener.open(ctx.signal);
    const scan = await target.scan();
    plan = planPrune({ ...scan, rules: rulesOf(ctx.options), now: Date.now() });
    plan.warnings.unshift(...(scan.warnings ?? []));
    if (!ctx.dryRun && plan.delete.length > 0) {
      const name = target.name;
      await target.remove(plan.delete, ctx.signal, (r) => {
        removals.push(r);
        const e = r.entry;
        if (r.deleted)
          ctx.log.info(`deleted ${name}: ${describeFile(e)}`, {
            target: name,
            file: e.name,
            versions: e.versions,
            bytes: e.size,
          });
        else ctx.log.warn(`left ${name}: ${describeFile(e)}: ${r.skipped}`, { target: name, file: e.name });
      });
    }
    const skipped = removals.filter((r) => r.skipped);
    const status: Status = plan.warnings.length > 0 || skipped.length > 0 ? 'WARNING' : 'OK';
    return { target: opener.name, where: target.where, status, plan, removals };
  } catch (err) {
    const done = removals.filter((r) => r.deleted).length;
    if (err instanceof TargetChanged)
      return {
        target: opener.name,
        where: target?.where ?? '',
        status: 'WARNING',
        error: `${err.message}: nothing deleted, the next run retries`,
        plan,
        removals,
      };
    const what =
      plan && !ctx.dryRun
        ? `stopped while deleting (${done} files deleted before)`
        : 'refusing to prune, nothing deleted';
    return {
      target: opener.name,
      where: target?.where ?? '',
      status: 'CRITICAL',
      error: `${what}: ${describeError(err)}`,
      plan,
      removals,
    };
  } finally {
    await target?.close().catch(() => undefined);
  }
}

function freedBytes(o: TargetOutcome): number {
  return o.removals.filter((r) => r.deleted).reduce((s, r) => s + r.entry.size, 0);
}

function report(outcomes: TargetOutcome[], dryRun: boolean, archive: ArchiveStep): JobResult {
  const failed = [...archive.pruned, ...(archive.compacted ?? [])].some((p) => p.errors.length);
  const archiveStatus: Status = failed ? 'WARNING' : 'OK';
  const status = worst(...outcomes.map((o) => o.status), archiveStatus);
  const lines = [...outcomes.flatMap((o) => targetLines(o, dryRun)), ...archive.lines];
  const metrics: Metric[] = outcomes.flatMap((o) => {
    const labels = { target: o.target };
    return [
      metric('freed_bytes', freedBytes(o), { labels }),
      metric('deleted_files', o.removals.filter((r) => r.deleted).length, { labels }),
      metric(
        'kept_bytes',
        o.plan ? o.plan.bytesKept + o.removals.filter((r) => !r.deleted).reduce((s, r) => s + r.entry.size, 0) : NaN,
        { labels },
      ),
      metric('retained_restore_points', o.plan ? o.plan.restorePoints.filter((r) => r.retained).length : NaN, {
        labels,
      }),
    ];
  });
  const details = {
    dryRun,
    targets: outcomes.map(targetDetails),
    // Per destination (`store`, `copy NAME`): the segments removed (dry run: that a run would remove).
    archive: archive.pruned.map((p) => ({
      destination: p.destination,
      [dryRun ? 'wouldRemoveSegments' : 'removedSegments']: p.removed,
      errors: p.errors,
    })),
    ...(archive.skipped ? { archiveSkipped: archive.skipped } : {}),
    ...(archive.compacted?.length
      ? {
          archiveCompaction: archive.compacted.map((c) => ({
            destination: c.destination,
            [dryRun ? 'wouldMerge' : 'merged']: c.merged,
            [dryRun ? 'wouldRemoveParts' : 'removedParts']: c.removed,
            errors: c.errors,
          })),
        }
      : {}),
  };
  const summary = [summaryOf(outcomes, dryRun, status), archiveSummary(archive, dryRun)].filter(Boolean).join('; ');
  return { status, summary, details, metrics, lines };
}

function summaryOf(outcomes: TargetOutcome[], dryRun: boolean, status: Status): string {
  const problems = outcomes.filter((o) => o.error).map((o) => `${o.target}: ${o.error}`);
  const planned = outcomes.flatMap((o) => o.plan?.delete ?? []);
  const freed = dryRun ? planned.reduce((s, e) => s + e.size, 0) : outcomes.reduce((s, o) => s + freedBytes(o), 0);
  const count = dryRun ? planned.length : outcomes.reduce((s, o) => s + o.removals.filter((r) => r.deleted).length, 0);
  const perTarget = outcomes
    .filter((o) => !o.error)
    .map(
      (o) =>
        `${o.target} ${dryRun ? (o.plan?.delete.length ?? 0) : o.removals.filter((r) => r.deleted).length} deleted, ${o.plan?.keep.length ?? 0} kept`,
    )
    .join('; ');
  const done =
    count === 0
      ? `nothing to prune (${perTarget})`
      : `${dryRun ? 'would free' : 'freed'} ${formatBytes(freed)} in ${count} files (${perTarget})`;
  if (problems.length > 0) return `${problems.join('; ')}${perTarget ? `; ${done}` : ''}`;
  const warning = outcomes.flatMap((o) => [
    ...(o.plan?.warnings ?? []).map((w) => `${o.target}: ${w}`),
    ...o.removals.filter((r) => r.skipped).map((r) => `${o.target}: left ${r.entry.name}: ${r.skipped}`),
  ]);
  return status === 'WARNING' && warning[0] ? `${done}; ${warning[0]}` : done;
}

/** The exact plan, one line per file: what an operator reads after --dry-run. */
function targetLines(o: TargetOutcome, dryRun: boolean): string[] {
  const head = o.where || o.target;
  if (!o.plan) return [`${head}: ${o.error ?? 'no plan'}`];
  const removal = new Map(o.removals.map((r) => [r.entry.name, r]));
  const verb = (e: PlanEntry) =>
    dryRun
      ? 'would delete'
      : removal.get(e.name)?.deleted
        ? 'deleted'
        : `left (${removal.get(e.name)?.skipped ?? 'not reached'})`;
  return [
    `${head}: newest version ${o.plan.newest}${o.error ? `; ${o.error}` : ''}`,
    ...o.plan.restorePoints.map(
      (r) =>
        `  restore point ${r.name} v${r.version}: ${r.retained ? 'retained' : 'not retained'}, ${r.reason}; reaches ${r.reaches}`,
    ),
    ...o.plan.delete.map((e) => `  ${planLine(e, verb(e))}`),
    ...o.plan.keep.map((e) => `  ${planLine(e, 'keep')}`),
    ...o.plan.warnings.map((w) => `  warning: ${w}`),
  ];
}

function targetDetails(o: TargetOutcome): Record<string, unknown> {
  const entry = (e: PlanEntry) => ({
    name: e.name,
    kind: e.kind,
    versions: e.versions,
    bytes: e.size,
    reason: e.reason,
  });
  return {
    target: o.target,
    where: o.where,
    status: o.status,
    error: o.error,
    newest: o.plan?.newest,
    freedBytes: freedBytes(o),
    deleted: o.removals.filter((r) => r.deleted).map((r) => entry(r.entry)),
    skipped: o.removals.filter((r) => r.skipped).map((r) => ({ ...entry(r.entry), skipped: r.skipped })),
    planned: o.plan?.delete.map(entry) ?? [],
    kept: o.plan?.keep.map(entry) ?? [],
    restorePoints: o.plan?.restorePoints ?? [],
    holes: o.plan?.holes ?? [],
    warnings: o.plan?.warnings ?? [],
  };
}

interface ArchiveStep {
  pruned: ArchivePruning[];
  /** Compaction after the pruning: merged segments and the parts removed, per destination. */
  compacted?: ArchiveCompaction[];
  lines: string[];
  /** Why the archive was not looked at this run. */
  skipped?: string;
}

function archiveSummary(a: ArchiveStep, dryRun: boolean): string {
  const counted = a.pruned.filter((p) => p.removed.length);
  if (!counted.length) return '';
  const n = counted.reduce((sum, p) => sum + p.removed.length, 0);
  const where = counted.map((p) => `${p.destination} ${p.removed.length}`).join(', ');
  return `archive: ${dryRun ? 'would remove' : 'removed'} ${n} segment${n === 1 ? '' : 's'} (${where})`;
}

/**
 * The changelog archive's side of retention (issue #26), as backup does it after its own (the same code): in
 * the store and in each copy whose retention has a recoveryWindow, the segments older than every image kept
 * there (after this run's deletions; pinned snapshots are kept, so their segments stay). Under the backup
 * lock: backup prunes the archive too and pushes snapshots to copies (an older one pushed while the starts
 * were read would lose the segments it needs); when backup runs, this run leaves the archive to it.
 */
async function pruneArchive(
  ctx: JobContext<PruneOptions>,
  storeOutcome: TargetOutcome | undefined,
): Promise<ArchiveStep> {
  const { config, dryRun, signal } = ctx;
  const store = config.snapshotStore;
  if (!store || !ctx.options.snapshotStore) return { pruned: [], lines: [] };
  const windowed = store.copies.filter((c) => (c.retention ?? store.retention).recoveryWindow);
  const archived = await pathExists(archiveDir(store.path));
  if (!store.retention.recoveryWindow && !windowed.length && !archived) return { pruned: [], lines: [] };
  let lock;
  try {
    lock = await acquireLock(config.lockDir, 'backup', { signal });
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err;
    const skipped = 'not pruned this run: backup holds its lock (it prunes the archive after its retention)';
    return { pruned: [], lines: [`archive: ${skipped}`], skipped };
  }
  try {
    const keys = await storeKeys(config);
    const pruned: ArchivePruning[] = [];
    if (store.retention.recoveryWindow) {
      // A dry run deleted nothing: the snapshots it would delete are not counted as kept.
      const going = new Set(dryRun ? (storeOutcome?.plan?.delete ?? []).map((e) => e.unit) : []);
      const { snapshots } = await listSnapshots(store.path, keys);
      const starts = snapshots.filter((s) => !going.has(s.id)).map((s) => restoreFrom(s.manifest.image));
      pruned.push(await pruneStoreSegments(store.path, keys, starts, dryRun));
    }
    for (const copy of windowed) {
      signal.throwIfAborted();
      pruned.push(await pruneCopyArchive(config, copy, keys, undefined, signal, dryRun));
    }
    for (const p of pruned)
      for (const id of p.removed)
        ctx.log.info(`${dryRun ? 'would remove' : 'removed'} archive segment ${id} (${p.destination})`, {
          target: p.destination,
          segment: id,
        });
    // After the window's removals (nothing merged that was about to go), old hours merged: the store, every copy.
    const compacted = await storeWriteSettings(config).then(
      (settings) => compactArchive(config, settings, store.copies, signal, { dryRun, mfsJobsVersion: VERSION }),
      (err: unknown): ArchiveCompaction[] => {
        const line = `archive: not compacted: ${describeError(err)}`;
        return [{ destination: 'store', merged: [], removed: [], lines: [line], errors: [line] }];
      },
    );
    return { pruned, compacted, lines: [...pruned.flatMap((p) => p.lines), ...compacted.flatMap((c) => c.lines)] };
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/**
 * Thin out changelogs and snapshots without ever cutting the path from a retained restore point
 * to the newest version. Runs at :30 by default, away from MooseFS's rotation at the full hour.
 */
export default defineJob({
  ...CARDS.prune,
  options,
  async run(ctx) {
    const targets = selectTargets(ctx.config, ctx.options, ctx.dryRun, await clusterIdentity(ctx.config));
    if (targets.length === 0)
      return {
        status: 'UNKNOWN',
        summary: 'nothing to prune: no snapshotStore configured and jobs.prune.dataPaths is empty',
      };
    const outcomes: TargetOutcome[] = [];
    for (const open of targets) {
      // Stopped (SIGTERM, timeout): finish nothing new; what is done is reported.
      if (ctx.signal.aborted)
        outcomes.push({
          target: open.name,
          where: '',
          status: 'WARNING',
          error: 'not started: the run was aborted',
          removals: [],
        });
      else outcomes.push(await pruneTarget(ctx, open));
    }
    const archive = ctx.signal.aborted
      ? { pruned: [], lines: [] }
      : await pruneArchive(
          ctx,
          outcomes.find((o) => o.target === 'store'),
        );
    return report(outcomes, ctx.dryRun, archive);
  },
});
