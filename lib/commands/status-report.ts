import { DateTime } from 'luxon';
import type { Config } from '../core/config.js';
import { describeError } from '../core/errors.js';
import { jobOverview, type JobOverview } from '../core/job-overview.js';
import { exitCodeOf, worst, type JobEntry, type Status } from '../core/job.js';
import { readJobState, type JobState } from '../core/state.js';
import { formatTable } from '../core/table.js';
import { clusterIdentity } from '../store/identity.js';
import { listSnapshots, type StoredSnapshot } from '../store/manifest.js';
import { storeKeys } from '../store/stored-file.js';
import { listSegments } from '../store/segments.js';
import { newestRecoverable, type Recoverable } from '../backup/incremental.js';
import { formatAge } from '../verify/verdict.js';

/**
 * `mfs-jobs status`: "am I safe right now?" on one screen, like `pgbackrest info`, `barman status` or
 * `patronictl list`. It checks nothing itself: the cluster, the RPO per source and the standby come from
 * what check-master, verify and check-standby last recorded (<stateDir>/state/), the restore points from
 * the store's manifests, the next runs from the schedules. A result that is no longer news (two scheduled
 * runs missed) is a problem of its own.
 */

export interface Problem {
  status: Status;
  text: string;
}

export interface MasterRow {
  name: string;
  host: string;
  answers: boolean | null;
  softwareVersion: string | null;
  generation: string | null;
  metadataVersion: number | null;
  metaid: string | null;
  error: string | null;
}

export interface RestorePointView {
  id: string;
  imageVersion: number;
  reachesVersion: number;
  /** When the image was written (its file's mtime at the source). */
  imageTime: string | null;
  /** The newest change it holds (its newest changelog's mtime at the source), else the image's time. */
  lastChangeTime: string | null;
  source: string;
}

export interface RpoRow {
  source: string;
  kind: 'metalogger' | 'chunkserver' | 'snapshot' | 'copy' | 'archive';
  status: Status;
  restorableVersion: number | null;
  /** Versions the master had that a restore from here lacks (as of verify's run). */
  behindVersions: number | null;
  /** Seconds of changes lost: a metalogger's lag as verify measured it; a snapshot's or copy's counted on to now. */
  rpoSeconds: number | null;
}

export interface LeaseView {
  configured: boolean;
  holder: string | null;
  /** etcd answered from here (when configured). */
  reachable?: boolean;
  note: string;
}

export interface StatusReport {
  status: Status;
  exitCode: number;
  summary: string;
  generatedAt: string;
  config: string;
  cluster: { metaid: string | null; metaidFrom: string | null; masters: MasterRow[]; asOf: string | null };
  restorePoints: {
    store: string | null;
    count: number;
    broken: number;
    oldest: RestorePointView | null;
    newest: RestorePointView | null;
    /** From the oldest image to the newest change a snapshot holds: what --to-time can reach from the store. */
    window: {
      fromTime: string | null;
      toTime: string | null;
      fromVersion: number;
      toVersion: number;
      seconds: number | null;
    } | null;
    /** The newest snapshot rolled forward through the changelog archive (issue #26); null without one. */
    recoverable?: Recoverable | null;
    error: string | null;
  };
  rpo: { asOf: string | null; masterVersion: number | null; sources: RpoRow[] };
  standby: { configured: boolean; status: Status | null; summary: string; asOf: string | null };
  lease: LeaseView;
  jobs: JobOverview[];
  problems: Problem[];
}

/** Jobs whose results the screen is made of: without them it has no answer. */
const EVIDENCE = ['check-master', 'backup', 'verify'];

export async function collectStatus(
  config: Config,
  jobs: readonly JobEntry[],
  now = new Date(),
): Promise<StatusReport> {
  const [overview, checkMaster, verify, checkStandby, restorePoints, identity, lease] = await Promise.all([
    jobOverview(config, jobs, now),
    readJobState(config.stateDir, 'check-master'),
    readJobState(config.stateDir, 'verify'),
    readJobState(config.stateDir, 'check-standby'),
    restorePointsOf(config),
    clusterIdentity(config).then(
      (id) => ({ metaid: id?.metaid ?? null, from: id?.from ?? null, error: null }),
      (err: unknown) => ({ metaid: null, from: null, error: describeError(err) }),
    ),
    failoverLeaseHolder(config),
  ]);
  const problems: Problem[] = [];
  if (identity.error) problems.push({ status: 'WARNING', text: identity.error });
  if (lease.configured && !lease.reachable) problems.push({ status: 'WARNING', text: lease.note });
  problems.push(...restorePointProblems(config, restorePoints));
  problems.push(...jobProblems(config, overview, now));
  const rpo = rpoOf(verify, restorePoints.newest, now);
  const report: Omit<StatusReport, 'status' | 'exitCode' | 'summary'> = {
    generatedAt: now.toISOString(),
    config: config.file,
    cluster: {
      metaid: identity.metaid,
      metaidFrom: identity.from,
      masters: mastersOf(config, checkMaster),
      asOf: checkMaster?.finishedAt ?? null,
    },
    restorePoints,
    rpo,
    standby: standbyOf(config, checkStandby),
    lease,
    jobs: overview,
    problems: sortProblems(problems),
  };
  const status = worst(...problems.map((p) => p.status));
  const bad = report.problems.filter((p) => p.status !== 'OK');
  const summary = bad.length
    ? bad
        .slice(0, 3)
        .map((p) => p.text)
        .join('; ') + (bad.length > 3 ? ` (+${bad.length - 3} more)` : '')
    : safeSummary(report);
  return { status, exitCode: exitCodeOf(status), summary, ...report };
}

/**
 * Who holds the failover lease (issue #25): the leader key in etcd as this host reads it now, with its
 * remaining TTL. etcd unreachable from here is a WARNING: a promotion from here would be refused.
 */
export async function failoverLeaseHolder(config: Config): Promise<LeaseView> {
  if (!config.quorum) return { configured: false, holder: null, note: 'not configured (no quorum: in the config)' };
  const { quorumStatus } = await import('../failover/quorum.js');
  const q = await quorumStatus(config);
  return { configured: true, holder: q.holder ?? null, reachable: q.reachable ?? false, note: q.line };
}

async function restorePointsOf(config: Config): Promise<StatusReport['restorePoints']> {
  const store = config.snapshotStore?.path ?? null;
  const empty = { store, count: 0, broken: 0, oldest: null, newest: null, window: null, error: null };
  if (!store) return empty;
  let listed: { snapshots: StoredSnapshot[]; broken: unknown[] };
  try {
    listed = await listSnapshots(store, await storeKeys(config));
  } catch (err) {
    return { ...empty, error: describeError(err) };
  }
  const { snapshots, broken } = listed;
  const oldest = snapshots[0] ? view(snapshots[0]) : null;
  const newest = snapshots.length ? view(snapshots[snapshots.length - 1]!) : null;
  const window =
    oldest && newest
      ? {
          fromTime: oldest.imageTime,
          toTime: newest.lastChangeTime,
          fromVersion: oldest.imageVersion,
          toVersion: newest.reachesVersion,
          seconds:
            oldest.imageTime && newest.lastChangeTime
              ? Math.round((Date.parse(newest.lastChangeTime) - Date.parse(oldest.imageTime)) / 1000)
              : null,
        }
      : null;
  const segments = config.jobs.archive
    ? await listSegments(store, await storeKeys(config)).then(
        (l) => l.segments.map((x) => x.manifest),
        () => [],
      )
    : [];
  const recoverable = newestRecoverable(snapshots, { segments }) ?? null;
  return { store, count: snapshots.length, broken: broken.length, oldest, newest, window, recoverable, error: null };
}

function view(s: StoredSnapshot): RestorePointView {
  const m = s.manifest;
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const image = m.files.find((f) => f.role === 'image');
  const changes = m.files.filter((f) => f.role === 'changelog').map((f) => f.sourceMtimeMs);
  return {
    id: s.id,
    imageVersion: m.image.version,
    reachesVersion: m.reachesVersion,
    imageTime: iso(image?.sourceMtimeMs),
    lastChangeTime: iso(changes.length ? Math.max(...changes) : image?.sourceMtimeMs),
    source: m.source.name,
  };
}

function restorePointProblems(config: Config, r: StatusReport['restorePoints']): Problem[] {
  if (!r.store)
    return [
      { status: 'CRITICAL', text: `no snapshotStore in ${config.file}: no restore point outside the running cluster` },
    ];
  if (r.error) return [{ status: 'CRITICAL', text: `snapshot store ${r.store} unreadable: ${r.error}` }];
  const out: Problem[] = [];
  if (r.count === 0)
    out.push({ status: 'CRITICAL', text: `no restore point in the snapshot store ${r.store} (has backup run?)` });
  if (r.broken)
    out.push({
      status: 'WARNING',
      text: `${r.broken} snapshot director${r.broken === 1 ? 'y' : 'ies'} in ${r.store} without a usable manifest (verify names them)`,
    });
  return out;
}

function jobProblems(config: Config, jobs: readonly JobOverview[], now: Date): Problem[] {
  const out: Problem[] = [];
  for (const j of jobs) {
    // Hooks and manual jobs (promote, demote, restore) keep their last result for history, not as a verdict.
    if (!j.schedule) continue;
    const evidence = EVIDENCE.includes(j.job) || (j.job === 'check-standby' && config.standby !== undefined);
    if (!j.last) {
      if (evidence) out.push({ status: 'WARNING', text: `${j.job} has never run: nothing it checks is known` });
      continue;
    }
    if (j.last.status !== 'OK') out.push({ status: j.last.status, text: `${j.job}: ${j.last.summary}` });
    if (j.missedRuns) {
      const ago = formatAge((now.getTime() - Date.parse(j.last.finishedAt)) / 1000);
      out.push({
        status: 'WARNING',
        text: `${j.job} last ran ${ago} ago and has missed runs since (schedule ${j.schedule}): is the daemon or cron running it?`,
      });
    }
  }
  return out;
}

function sortProblems(problems: readonly Problem[]): Problem[] {
  const rank: Record<Status, number> = { CRITICAL: 0, WARNING: 1, UNKNOWN: 2, OK: 3 };
  return [...problems].sort((a, b) => rank[a.status] - rank[b.status]);
}

interface CheckMasterAnswer {
  name: string;
  info?: { softwareVersion?: string; metadataVersion?: number; metaid?: string; generation?: { name?: string } };
  error?: string;
}

function mastersOf(config: Config, state: JobState | undefined): MasterRow[] {
  const answers = ((state?.details?.masters ?? []) as CheckMasterAnswer[]).filter((a) => typeof a?.name === 'string');
  return config.masters.map((m) => {
    const a = answers.find((x) => x.name === m.name);
    return {
      name: m.name,
      host: m.host,
      answers: a ? a.info !== undefined : null,
      softwareVersion: a?.info?.softwareVersion ?? null,
      generation: a?.info?.generation?.name ?? null,
      metadataVersion: a?.info?.metadataVersion ?? null,
      metaid: a?.info?.metaid ?? null,
      error: a?.error ?? null,
    };
  });
}

type Figures = Record<string, unknown> & { status?: Status };

/**
 * Verify's figures per source (lib/verify/verdict.ts), as RPO rows. A snapshot or copy does not change
 * after verify read it, so its RPO is counted on to now: 0 while it is not behind the master, else from
 * the newest snapshot's last change (from a copy's age for a copy).
 */
function rpoOf(state: JobState | undefined, newest: RestorePointView | null, now: Date): StatusReport['rpo'] {
  if (!state?.details) return { asOf: state?.finishedAt ?? null, masterVersion: null, sources: [] };
  const details = state.details as { master?: { version?: number }; sources?: Record<string, Figures> };
  const master = typeof details.master?.version === 'number' ? details.master.version : null;
  const since = Math.max(0, (now.getTime() - Date.parse(state.finishedAt)) / 1000);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const behind = (reached: number | null) =>
    reached !== null && master !== null ? Math.max(0, master - reached) : null;
  const rows: RpoRow[] = [];
  for (const [source, f] of Object.entries(details.sources ?? {})) {
    const status = f.status ?? 'UNKNOWN';
    if (source === 'older snapshots') continue;
    if ('destination' in f) {
      // The changelog archive of the store or a copy (lib/verify/archive-verdict.ts): its lag as verify measured it.
      rows.push({
        source,
        kind: 'archive',
        status,
        restorableVersion: num(f.restorableVersion),
        behindVersions: num(f.lagVersions),
        rpoSeconds: num(f.lagSeconds),
      });
    } else if (source.startsWith('copy:')) {
      const reached = num(f.newestReaches);
      const age = num(f.newestAgeSeconds);
      rows.push({
        source,
        kind: 'copy',
        status,
        restorableVersion: reached,
        behindVersions: behind(reached),
        rpoSeconds: age === null ? null : Math.round(age + since),
      });
    } else if ('store' in f) {
      const reached = num(f.restorableVersion);
      const age = num(f.ageSeconds);
      const lastChange = newest?.lastChangeTime && f.id === newest.id ? Date.parse(newest.lastChangeTime) : undefined;
      const rpoSeconds =
        behind(reached) === 0
          ? 0
          : lastChange !== undefined
            ? Math.round((now.getTime() - lastChange) / 1000)
            : age === null
              ? null
              : Math.round(age + since);
      rows.push({
        source,
        kind: 'snapshot',
        status,
        restorableVersion: reached,
        behindVersions: behind(reached),
        rpoSeconds,
      });
    } else {
      const kind = 'snapshot' in f ? 'chunkserver' : 'metalogger';
      rows.push({
        source,
        kind,
        status,
        restorableVersion: num(f.restorableVersion),
        behindVersions: num(f.lagVersions),
        rpoSeconds: num(f.lagSeconds),
      });
    }
  }
  return { asOf: state.finishedAt, masterVersion: master, sources: rows };
}

function standbyOf(config: Config, state: JobState | undefined): StatusReport['standby'] {
  if (!config.standby)
    return { configured: false, status: null, summary: `not configured (no standby: in ${config.file})`, asOf: null };
  if (!state) return { configured: true, status: null, summary: 'check-standby has not run', asOf: null };
  return { configured: true, status: state.status, summary: state.summary, asOf: state.finishedAt };
}

function safeSummary(r: Omit<StatusReport, 'status' | 'exitCode' | 'summary'>): string {
  const rp = r.restorePoints;
  const newest = rp.newest ? `, newest reaches ${rp.newest.reachesVersion}` : '';
  const worstRpo = Math.max(0, ...r.rpo.sources.filter((s) => s.kind !== 'copy').map((s) => s.behindVersions ?? 0));
  const ready = r.standby.configured ? `; standby ${r.standby.status === 'OK' ? 'ready' : 'not known ready'}` : '';
  return `${rp.count} restore point(s)${newest}; every source within its limits (at most ${worstRpo} version(s) behind)${ready}`;
}

/** The screen: a Nagios-style first line, then one short block per question. */
export function formatStatus(r: StatusReport): string {
  const zone = r.jobs[0]?.timezone ?? 'UTC';
  const when = (iso: string | null) => (iso ? DateTime.fromISO(iso, { zone }).toFormat('yyyy-LL-dd HH:mm:ss') : '-');
  const ago = (iso: string | null) =>
    iso ? `${formatAge((Date.parse(r.generatedAt) - Date.parse(iso)) / 1000)} ago` : 'never';
  const seen = (job: string, iso: string | null) => (iso ? `as ${job} saw it ${ago(iso)}` : `${job} has not run`);
  const dash = (v: string | number | boolean | null | undefined) => (v === null || v === undefined ? '-' : String(v));
  const out: string[] = [`MFS STATUS ${r.status} - ${r.summary}`, ''];

  out.push(
    `CLUSTER  metaid ${r.cluster.metaid ?? 'unknown'}${r.cluster.metaidFrom ? ` (${r.cluster.metaidFrom})` : ''}; ${seen('check-master', r.cluster.asOf)}`,
  );
  out.push(
    formatTable(
      ['MASTER', 'HOST', 'ANSWERS', 'MOOSEFS', 'GENERATION', 'VERSION', 'METAID'],
      r.cluster.masters.map((m) => [
        m.name,
        m.host,
        m.answers === null ? '?' : m.answers ? 'yes' : `no: ${m.error ?? ''}`,
        dash(m.softwareVersion),
        dash(m.generation),
        dash(m.metadataVersion),
        dash(m.metaid),
      ]),
    ),
  );

  const rp = r.restorePoints;
  out.push(
    '',
    `RESTORE POINTS  ${rp.store ? `${rp.count} in ${rp.store}${rp.broken ? `, ${rp.broken} unusable` : ''}` : 'no snapshot store configured'}`,
  );
  if (rp.error) out.push(`  unreadable: ${rp.error}`);
  const point = (p: RestorePointView) =>
    `${p.id} from ${p.source}: image version ${p.imageVersion} (${when(p.imageTime)}), reaches ${p.reachesVersion} (${when(p.lastChangeTime)})`;
  if (rp.oldest) out.push(`  oldest  ${point(rp.oldest)}`);
  if (rp.newest) out.push(`  newest  ${point(rp.newest)}`);
  if (rp.recoverable?.throughArchive) {
    const r = rp.recoverable;
    const at = r.time === undefined ? '' : ` (${when(new Date(r.time * 1000).toISOString())})`;
    out.push(`  archive newest recoverable moment: version ${r.version}${at}, ${r.snapshot}'s image rolled forward`);
  }
  if (rp.window) {
    const span = rp.window.seconds === null ? '' : ` (${formatAge(rp.window.seconds)})`;
    out.push(
      `  window  ${when(rp.window.fromTime)} .. ${when(rp.window.toTime)}${span}, versions ${rp.window.fromVersion}..${rp.window.toVersion}`,
    );
  }

  out.push('', `RPO  ${seen('verify', r.rpo.asOf)}; master at ${dash(r.rpo.masterVersion)}`);
  if (r.rpo.sources.length) {
    out.push(
      formatTable(
        ['SOURCE', 'KIND', 'STATUS', 'RESTORES TO', 'BEHIND (VERSIONS)', 'RPO'],
        r.rpo.sources.map((s) => [
          s.source,
          s.kind,
          s.status,
          dash(s.restorableVersion),
          dash(s.behindVersions),
          s.rpoSeconds === null ? '-' : formatAge(s.rpoSeconds),
        ]),
      ),
    );
  }

  out.push(
    '',
    `STANDBY  ${r.standby.status ? `${r.standby.status} - ` : ''}${r.standby.summary}${r.standby.asOf ? ` (check-standby, ${ago(r.standby.asOf)})` : ''}`,
  );
  out.push(`FAILOVER LEASE  ${r.lease.note}`);

  out.push('', `JOBS (${zone})`);
  out.push(
    formatTable(
      ['JOB', 'SCHEDULE', 'NEXT RUN', 'LAST RUN', 'LAST RESULT'],
      r.jobs.map((j) => [
        j.enabled ? j.job : `${j.job} (disabled)`,
        j.schedule ?? (j.enabled ? 'hook/manual' : '-'),
        j.enabled ? when(j.nextRun) : '-',
        j.last ? `${when(j.last.finishedAt)}${j.missedRuns ? ' (missed runs)' : ''}` : 'never',
        j.last ? oneLine(`${j.last.status} - ${j.last.summary}`) : '-',
      ]),
    ),
  );
  const bad = r.problems.filter((p) => p.status !== 'OK');
  if (bad.length) out.push('', 'PROBLEMS', ...bad.map((p) => `  ${p.status}: ${p.text}`));
  return out.join('\n') + '\n';
}

/** A job's summary can run to hundreds of characters: the table keeps one line each (PROBLEMS has it whole). */
function oneLine(text: string, max = 100): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
