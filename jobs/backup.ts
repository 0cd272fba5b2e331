import { z } from 'zod';
import { backupSource, type BackupOutcome, type Host } from '../lib/backup/source.js';
import { VERSION } from '../lib/core/cli.js';
import { jobOptionsSchema, type Config } from '../lib/core/config.js';
import { ConfigError, describeError } from '../lib/core/errors.js';
import { defineJob, worst, type JobResult, type Metric, type Status } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import type { StoredSnapshot } from '../lib/store/manifest.js';
import { formatBytes } from '../lib/core/progress.js';
import { foreignMetaidMessage, identityFile, learnClusterIdentity } from '../lib/store/identity.js';
import { formatReasons, planStoreRetention, windowMs, type StoreRetentionPlan } from '../lib/store/retention.js';
import type { Covered } from '../lib/backup/incremental.js';
import { readPins } from '../lib/store/pins.js';
import { pushToCopy, type CopyRun } from '../lib/store/copy/push.js';
import { storeWriteSettings, type StoreWriteSettings } from '../lib/store/stored-file.js';
import { compactArchive, pruneCopyArchive } from '../lib/store/copy/archive.js';
import { listSegments, pruneStoreSegments } from '../lib/store/segments.js';
import {
  leftoverTemps,
  prepareStore,
  refreshLatest,
  removeLeftoverTemps,
  removeSnapshot,
  viewStore,
} from '../lib/store/snapshot-store.js';
import { describeImageVersion, restoreFrom } from '../lib/moosefs/metadata.js';

/**
 * The hourly metadata backup, done the way a backup manager does it: for each source, the newest
 * metadata image and the changelogs that roll it forward, copied over SFTP into a snapshot that
 * appears only once complete and checked; then retention (keep-last/hourly/daily/weekly).
 */

function snapshotStorePath(config: Config): string {
  if (!config.snapshotStore)
    throw new ConfigError(
      'snapshotStore.path',
      `${config.file}: snapshotStore.path is needed by the backup job (where snapshots are kept)`,
    );
  return config.snapshotStore.path;
}

/** `jobs.backup.sources` by name; by default every master, or every metalogger when no master is configured. */
function backupSources(config: Config, names: string[] | undefined): Host[] {
  const all: Host[] = [...config.masters, ...config.metaloggers];
  if (!names) {
    const chosen = config.masters.length ? config.masters : config.metaloggers;
    if (!chosen.length)
      throw new ConfigError('masters', `${config.file}: no masters or metaloggers configured: nothing to back up`);
    return chosen;
  }
  return names.map((name, i) => {
    const host = all.find((h) => h.name === name);
    if (!host)
      throw new ConfigError(
        `jobs.backup.sources.${i}`,
        `${config.file}: jobs.backup.sources.${i}: no master or metalogger named "${name}" (known: ${all.map((h) => h.name).join(', ') || 'none'})`,
      );
    return host;
  });
}

function newestOf(snapshots: StoredSnapshot[], source: string): StoredSnapshot | undefined {
  return snapshots.filter((s) => s.manifest.source.name === source).pop();
}

type SourceResult = { host: Host; outcome: BackupOutcome } | { host: Host; error: string };

// A metalogger with only its bootstrap image (until its first download) is as restorable as its changelogs
// are: OK, with the image described in its line; verify judges how far the chain reaches.
function sourceStatus(r: SourceResult): Status {
  return 'error' in r ? 'CRITICAL' : 'OK';
}

function sourceLine(r: SourceResult): string {
  const name = r.host.name;
  if ('error' in r) return `${name}: ${r.error}`;
  const o = r.outcome;
  if (o.kind === 'snapshot') {
    const m = o.manifest;
    const logs = m.files.length - 1;
    const range = m.changelogs.first !== undefined ? ` (${m.changelogs.first}..${m.changelogs.last})` : '';
    return `${name}: snapshot ${m.id}: ${m.image.name} ${describeImageVersion(m.image)} + ${logs} changelog${logs === 1 ? '' : 's'}${range}, reaches version ${m.reachesVersion}; ${formatBytes(o.bytes)} in ${o.seconds.toFixed(1)} s`;
  }
  if (o.kind === 'already') {
    const m = o.snapshot.manifest;
    const ahead = o.sourceReaches > m.reachesVersion ? `; source changelogs now reach ${o.sourceReaches}` : '';
    return `${name}: already have version ${m.reachesVersion} (snapshot ${o.snapshot.id}, ${o.why})${ahead}`;
  }
  if (o.kind === 'covered') return `${name}: ${coveredText(o.covered)}`;
  const bytes = o.image.entry.size + o.changelogs.reduce((s, c) => s + c.entry.size, 0);
  const logs = o.changelogs.map((c) => c.entry.name).join(', ') || 'no changelogs';
  return `${name}: would copy ${o.image.entry.name} ${describeImageVersion(o.image.header)} + ${logs} (${formatBytes(bytes)}), reaching version ${o.sourceReaches}`;
}

/** `restore point: image 2026…-v120 (version 120) + the archive through version 480 (…Z); no new image stored`. */
function coveredText(c: Covered): string {
  const at = c.archiveTime === undefined ? '' : ` (${new Date(c.archiveTime * 1000).toISOString()})`;
  const through = `the archive through version ${c.archiveReaches - 1}${at}`;
  const image = `image ${c.snapshot} (version ${c.imageVersion})`;
  return `restore point: ${image} + ${through}, ${c.rollForward} changes to roll forward; no new image stored`;
}

/** jobs.archive configured: the store's archive and the image bounds, for backupSource to decide (issue #26). */
async function incrementalOf(config: Config, store: string, keys: StoreWriteSettings) {
  const archive = config.jobs.archive;
  if (!archive || archive.enabled === false) return undefined;
  const s = config.snapshotStore!;
  // An archive that cannot be listed covers nothing: full images, as without one (the run's notes say why).
  const listed = await listSegments(store, keys).then(
    ({ segments, broken }) => ({ segments: segments.map((x) => x.manifest), broken: broken.length }),
    (err: unknown) => ({ segments: [], broken: 0, error: describeError(err) }),
  );
  return {
    archive: listed,
    bounds: { intervalMs: windowMs(s.imageInterval), changes: s.imageChanges },
  };
}

async function applyRetention(
  store: string,
  plan: StoreRetentionPlan,
  dryRun: boolean,
): Promise<{ removed: string[]; errors: string[] }> {
  const removed: string[] = [];
  const errors: string[] = [];
  if (dryRun) return { removed, errors };
  for (const id of plan.remove) {
    try {
      await removeSnapshot(store, id);
      removed.push(id);
    } catch (err) {
      errors.push(`could not remove snapshot ${id}: ${describeError(err)}`);
    }
  }
  return { removed, errors };
}

/** Every decision when something goes (or would go); otherwise one line per source, to keep cron mail short. */
function retentionLines(plan: StoreRetentionPlan, dryRun: boolean): string[] {
  return plan.groups.flatMap((g) => {
    if (!dryRun && g.decisions.every((d) => d.keep))
      return g.decisions.length
        ? [`retention ${g.source}: keeps all ${g.decisions.length} snapshot${g.decisions.length === 1 ? '' : 's'}`]
        : [];
    return g.decisions.map((d) =>
      d.keep
        ? `retention ${g.source}: keep ${d.id} (${formatReasons(d.reasons)})`
        : `retention ${g.source}: ${dryRun ? 'would remove' : 'remove'} ${d.id}`,
    );
  });
}

function sourceMetrics(results: SourceResult[], healthy: StoredSnapshot[], now: Date): Metric[] {
  const metrics: Metric[] = [];
  for (const r of results) {
    const labels = { source: r.host.name };
    const newest = newestOf(healthy, r.host.name);
    if (newest) {
      metrics.push(metric('snapshot_version', newest.manifest.reachesVersion, { labels }));
      metrics.push(
        metric('snapshot_age_seconds', Math.round((now.getTime() - Date.parse(newest.manifest.startedAt)) / 1000), {
          labels,
        }),
      );
    }
    if ('outcome' in r && r.outcome.kind === 'snapshot') {
      metrics.push(metric('transferred_bytes', r.outcome.bytes, { labels }));
    }
  }
  return metrics;
}

interface RunReport {
  results: SourceResult[];
  plan: StoreRetentionPlan;
  retention: { removed: string[]; errors: string[] };
  after: { healthy: StoredSnapshot[]; broken: { id: string; error: string }[] };
  latest: string | undefined;
  housekeeping: string[];
  copies: CopyRun[];
}

/** `copy offsite: sent 2 files (1.2 MiB), 3 already there; removed 1 old snapshot; 4 complete there`. */
function copyLine(c: CopyRun): string {
  if (c.error) return `copy ${c.copy}: FAILED (the local snapshot is not affected): ${c.error}`;
  if (c.wouldPush)
    return `copy ${c.copy}: would push ${c.wouldPush.join(', ') || 'nothing'}; would remove ${c.wouldRemove?.join(', ') || 'nothing'}; ${c.complete.length} complete snapshot${c.complete.length === 1 ? '' : 's'} there`;
  const removed = c.removed.length
    ? `; removed ${c.removed.length} old snapshot${c.removed.length === 1 ? '' : 's'} (${c.removed.join(', ')})`
    : '';
  const leftovers = c.removedIncomplete.length
    ? `; removed ${c.removedIncomplete.length} incomplete upload${c.removedIncomplete.length === 1 ? '' : 's'}`
    : '';
  return `copy ${c.copy}: sent ${c.sentFiles} file${c.sentFiles === 1 ? '' : 's'} (${formatBytes(c.sentBytes)}), ${c.skippedFiles} already there${removed}${leftovers}; ${c.complete.length} complete snapshot${c.complete.length === 1 ? '' : 's'} there`;
}

function toResult(config: Config, store: string, dryRun: boolean, r: RunReport): JobResult {
  const { results, plan, retention, after } = r;
  const lines = [
    ...results.flatMap((x) => [
      sourceLine(x),
      ...('outcome' in x ? x.outcome.notes.map((n) => `${x.host.name}: note: ${n}`) : []),
    ]),
    ...r.housekeeping,
    ...retentionLines(plan, dryRun),
    ...retention.errors,
    ...after.broken.map((b) => `snapshot ${b.id} is not usable (${b.error}); left in place for inspection`),
    ...r.copies.map(copyLine),
  ];
  // A copy that fails never fails the local snapshot: WARNING, naming the copy.
  const failedCopies = r.copies.filter((c) => c.error);
  const status = worst(
    ...results.map(sourceStatus),
    retention.errors.length || after.broken.length || failedCopies.length ? 'WARNING' : 'OK',
  );
  const failedFirst = [...results].sort((a, b) => Number('outcome' in a) - Number('outcome' in b));
  const gone = dryRun ? plan.remove.length : retention.removed.length;
  const extra = [
    gone ? `${dryRun ? 'would remove' : 'removed'} ${gone} old snapshot${gone === 1 ? '' : 's'}` : '',
    after.broken.length
      ? `${after.broken.length} unusable snapshot${after.broken.length === 1 ? '' : 's'} in the store`
      : '',
    retention.errors[0] ?? '',
    ...failedCopies.map((c) => `copy ${c.copy} failed: ${c.error}`),
  ].filter(Boolean);
  const metrics: Metric[] = [
    ...sourceMetrics(results, after.healthy, new Date()),
    metric('snapshots', after.healthy.length),
    metric('snapshots_removed', retention.removed.length),
    metric('broken_snapshots', after.broken.length),
    ...r.copies.flatMap((c) => [
      metric('copy_ok', c.ok ? 1 : 0, { labels: { copy: c.copy } }),
      metric('copy_snapshots', c.complete.length, { labels: { copy: c.copy } }),
    ]),
  ];
  const details = {
    store,
    latest: r.latest,
    sources: results.map((x) =>
      'error' in x ? { source: x.host.name, error: x.error } : { source: x.host.name, ...describeOutcome(x.outcome) },
    ),
    retention: {
      policy: config.snapshotStore!.retention,
      remove: plan.remove,
      removed: retention.removed,
      errors: retention.errors,
      groups: plan.groups,
    },
    broken: after.broken,
    copies: r.copies.map((c) => ({ ...c, status: c.ok ? 'OK' : 'WARNING' })),
  };
  return { status, summary: [...failedFirst.map(sourceLine), ...extra].join('; '), details, metrics, lines };
}

/** Record the cluster's metaid when none is known yet; a snapshot of another filesystem fails its source. */
async function checkIdentity(config: Config, results: SourceResult[]): Promise<void> {
  for (const [i, r] of results.entries()) {
    if (!('outcome' in r) || r.outcome.kind === 'plan' || r.outcome.kind === 'covered') continue;
    const m = r.outcome.kind === 'snapshot' ? r.outcome.manifest : r.outcome.snapshot.manifest;
    if (m.image.empty || !m.image.metaid) continue;
    const { identity } = await learnClusterIdentity(config, m.image.metaid, r.host.name);
    if (identity.metaid !== m.image.metaid) {
      results[i] = {
        host: r.host,
        error: `${foreignMetaidMessage(`snapshot ${m.id}`, m.image.metaid, identity)}: promote and prune will not use it (a recreated filesystem? set cluster.metaid, or remove ${identityFile(config.stateDir)})`,
      };
    }
  }
}

function describeOutcome(o: BackupOutcome): Record<string, unknown> {
  if (o.kind === 'snapshot')
    return {
      result: 'snapshot',
      snapshot: o.manifest.id,
      imageVersion: o.manifest.image.version,
      reachesVersion: o.manifest.reachesVersion,
      bytes: o.bytes,
      seconds: o.seconds,
      attempts: o.attempts,
      notes: o.notes,
    };
  if (o.kind === 'already')
    return {
      result: 'already',
      snapshot: o.snapshot.id,
      reachesVersion: o.snapshot.manifest.reachesVersion,
      why: o.why,
      sourceReaches: o.sourceReaches,
      notes: o.notes,
    };
  if (o.kind === 'covered')
    return {
      result: 'covered',
      ...o.covered,
      sourceImageVersion: o.sourceImageVersion,
      sourceReaches: o.sourceReaches,
      notes: o.notes,
    };
  return {
    result: 'plan',
    image: o.image.entry.name,
    imageVersion: o.image.header.version,
    changelogs: o.changelogs.map((c) => c.entry.name),
    sourceReaches: o.sourceReaches,
    notes: o.notes,
  };
}

export default defineJob({
  ...CARDS.backup,
  options: jobOptionsSchema({
    /** Host names (masters or metaloggers) to back up; default: every master, or every metalogger if there is none. */
    sources: z.array(z.string().min(1)).min(1).optional(),
    /** Also take a new snapshot when the image is unchanged but the source's changelogs reach further. */
    snapshotOnNewChangelogs: z.boolean().default(false),
  }),
  async run(ctx) {
    const { config, options, dryRun, log } = ctx;
    const store = snapshotStorePath(config);
    const hosts = backupSources(config, options.sources);
    // An unusable key file (readable by others, wrong size) fails the run before anything is copied.
    // The same keys check every manifest read back (a StoreKeys without problems).
    const storage = await storeWriteSettings(config);

    // 1. What a killed run left behind goes first (we hold the backup lock: nothing in .tmp is live).
    if (!dryRun) await prepareStore(store);
    const leftovers = dryRun ? await leftoverTemps(store) : await removeLeftoverTemps(store);
    const housekeeping = leftovers.map(
      (t) => `${dryRun ? 'would remove' : 'removed'} leftover temp ${t} (from an interrupted run)`,
    );

    // 2. Each source in turn: a verified snapshot, "already have", covered by an image + the archive, or the
    //    reason it failed.
    const incremental = await incrementalOf(config, store, storage);
    const results: SourceResult[] = [];
    for (const host of hosts) {
      ctx.signal.throwIfAborted();
      const { healthy } = await viewStore(store, storage);
      try {
        const outcome = await backupSource({
          config,
          host,
          store,
          newest: newestOf(healthy, host.name),
          snapshotOnNewChangelogs: options.snapshotOnNewChangelogs,
          dryRun,
          log,
          signal: ctx.signal,
          mfsJobsVersion: VERSION,
          storage,
          incremental,
        });
        results.push({ host, outcome });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        results.push({ host, error: describeError(err) });
      }
    }

    // The cluster's identity: learnt from the first live source backed up; a source of another filesystem is named.
    if (!dryRun) await checkIdentity(config, results);

    // 3. Retention only for sources that just proved they can be backed up: a failing source keeps all it has.
    const succeeded = results.filter((r) => 'outcome' in r).map((r) => r.host.name);
    const before = await viewStore(store, storage);
    const pinned = new Set(Object.keys(await readPins(store)));
    const plan = planStoreRetention(
      before.healthy,
      succeeded,
      config.snapshotStore!.retention,
      config.timezone,
      pinned,
    );
    const retention = await applyRetention(store, plan, dryRun);
    const latest = dryRun ? undefined : await refreshLatest(store, storage);
    const after = dryRun ? before : await viewStore(store, storage);
    // With a recovery window, the changelog archive keeps only what the retained images need (issue #26).
    if (config.snapshotStore!.retention.recoveryWindow && !dryRun) {
      const starts = after.healthy.map((s) => restoreFrom(s.manifest.image));
      housekeeping.push(...(await pruneStoreSegments(store, storage, starts, false)).lines);
    }

    // 4. Off-site copies get what the store now holds (verified snapshots only), one after another
    //    (a dry run lists each copy and says what it would send and remove).
    const copies: CopyRun[] = [];
    for (const copy of config.snapshotStore!.copies) {
      ctx.signal.throwIfAborted();
      const run = await pushToCopy(config, copy, after.healthy, log, ctx.signal, dryRun);
      if (run.error) log.warn('copy failed', { copy: copy.name, error: run.error });
      // The copy's archive keeps only what the images it keeps need, as the store's does (issue #26).
      if (run.ok && (copy.retention ?? config.snapshotStore!.retention).recoveryWindow) {
        const pruned = await pruneCopyArchive(config, copy, storage, run.retainedStarts ?? [], ctx.signal, dryRun);
        if (!dryRun && !pruned.errors.length) run.removedSegments = pruned.removed;
        housekeeping.push(...pruned.lines);
      }
      copies.push(run);
    }
    // A short segmentSeconds stays a bounded count: old hours merged, in the store and the copies reached.
    if (!dryRun) {
      const reached = config.snapshotStore!.copies.filter((c) => copies.some((r) => r.copy === c.name && r.ok));
      const compacted = await compactArchive(config, storage, reached, ctx.signal, { dryRun, mfsJobsVersion: VERSION });
      housekeeping.push(...compacted.flatMap((c) => c.lines));
    }
    return toResult(config, store, dryRun, { results, plan, retention, after, latest, housekeeping, copies });
  },
});
