import { formatHole, type Hole } from '../moosefs/chain.js';
import { worst, type Metric, type Status } from '../core/job.js';
import { metric } from '../core/metrics.js';
import type { ChangelogScan } from '../moosefs/changelog.js';
import { linesLostBeyond, type ChangelogFacts, type ChangelogUse, type RestorePlan } from '../moosefs/restore-model.js';
import type { DataPathFacts, SnapshotFacts } from './source.js';
import { describeImageVersion } from '../moosefs/metadata.js';

/**
 * The pure half of verify: facts in, status and findings out. Every threshold compares with ">" so
 * the verdict agrees with the Nagios perfdata `value;warn;crit` printed beside it.
 */

export interface VerifyThresholds {
  lagVersionsWarn: number;
  lagVersionsCrit: number;
  lagSecondsWarn: number;
  lagSecondsCrit: number;
  /** An image older than META_DOWNLOAD_FREQ plus this many hours means the downloads stopped. */
  imageAgeSlackHours: number;
  imageAgeCritSlackHours: number;
  snapshotAgeWarnHours: number;
  snapshotAgeCritHours: number;
}

export interface Finding {
  status: Status;
  text: string;
}

export interface SourceVerdict {
  name: string;
  status: Status;
  /** Metadata version a restore from this source reaches (undefined when it cannot restore at all). */
  restorableVersion?: number;
  /** The figures that matter, in one line for humans. */
  headline: string;
  findings: Finding[];
  /** Every figure, for --json and the state file. */
  figures: Record<string, unknown>;
  metrics: Metric[];
}

/** OK / WARNING / CRITICAL for a figure against `warn` and `crit` (alert above them); UNKNOWN for NaN. */
export function level(value: number, warn: number | undefined, crit: number | undefined): Status {
  if (Number.isNaN(value)) return 'UNKNOWN';
  if (crit !== undefined && value > crit) return 'CRITICAL';
  if (warn !== undefined && value > warn) return 'WARNING';
  return 'OK';
}

export function statusOf(findings: readonly Finding[]): Status {
  return worst(...findings.map((f) => f.status));
}

export function describeHoles(holes: readonly Hole[]): string {
  return holes.length === 1 ? `hole ${formatHole(holes[0]!)}` : `holes ${holes.map(formatHole).join(', ')}`;
}

/** "1 h 5 min", "42 s": ages an operator reads at a glance. */
export function formatAge(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown';
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  const h = Math.floor(s / 3600);
  return h < 48 ? `${h} h ${Math.round((s % 3600) / 60)} min` : `${Math.round(h / 24)} d`;
}

/** Strip the `host (where):/path/to/` prefix errors carry, keeping `<file>: reason`. */
function fromFile(name: string, message: string): string {
  const at = message.indexOf(`${name}: `);
  return at >= 0 ? message.slice(at) : `${name}: ${message}`;
}

/** A changelog mfsmaster -a ignores in full or in part: CRITICAL when that costs versions a restore needs. */
function damageFinding(plan: RestorePlan, use: ChangelogUse, scan: ChangelogScan): Finding {
  const what = use.skipped
    ? `${use.skipped}: mfsmaster -a ignores the whole file`
    : `line ${use.cut!.line}: ${use.cut!.reason}: mfsmaster -a stops reading this file ${use.cut!.afterVersion === undefined ? 'at its first line' : `after version ${use.cut!.afterVersion}`}`;
  if (!plan.roll) return { status: 'CRITICAL', text: `${use.name}: ${what}` };
  // Not one readable line, and more wrong than a line being written: the file's content is destroyed,
  // and what it held (the metalogger's newest changes, usually) cannot be known, let alone restored.
  const damaged = scan.problems.find((p) => !(scan.truncatedLastLine && p.line === scan.lines));
  if (scan.last === undefined && damaged) {
    return {
      status: 'CRITICAL',
      text: `${use.name}: not one readable changelog line in ${scan.lines} lines (line ${damaged.line}: ${damaged.reason}): the file is damaged and whatever it held is lost`,
    };
  }
  const lostUpTo = linesLostBeyond(plan, scan);
  if (lostUpTo === undefined)
    return {
      status: 'WARNING',
      text: `${use.name}: ${what} (no version lost: other files hold these lines, or the image is newer)`,
    };
  return {
    status: 'CRITICAL',
    text: `${use.name}: ${what}, so a restore stops at version ${plan.roll.reached} although this file holds lines up to ${lostUpTo}`,
  };
}

/** Findings about images and changelogs: what mfsmaster -a would choke on or silently drop. */
export function chainFindings(plan: RestorePlan, changelogs: readonly ChangelogFacts[]): Finding[] {
  const findings: Finding[] = [];
  const { choice } = plan;
  const bad = choice.invalid.map((i) => fromFile(i.name, i.error ?? 'invalid'));
  if (!choice.image) {
    const why = bad.length ? bad.join('; ') : 'no metadata image at all';
    findings.push({
      status: 'CRITICAL',
      text: `no valid metadata image, mfsmaster -a would stop with "can't find valid metadata file" (${why})`,
    });
  } else if (bad.length) {
    findings.push({
      status: 'WARNING',
      text: `${bad.join('; ')}; a restore falls back to ${choice.image.name} (version ${plan.startVersion})`,
    });
  }
  if (choice.metaidConflict) {
    findings.push({
      status: 'CRITICAL',
      text: `images of different filesystems, mfsmaster -a would refuse them ("different id number"): ${choice.metaidConflict.join(', ')}`,
    });
  }
  const byName = new Map(changelogs.map((c) => [c.name, c.scan]));
  for (const use of plan.uses)
    if (use.skipped || use.cut) findings.push(damageFinding(plan, use, byName.get(use.name)!));
  if (plan.roll && plan.roll.holes.length) {
    findings.push({
      status: 'CRITICAL',
      text: `${describeHoles(plan.roll.holes)} (mfsmaster -a would stop: "hole in change files")`,
    });
  }
  return findings;
}

/**
 * Unix time of the newest change a restore reaches (version reached-1): exact when a file ends there,
 * otherwise the newest file that ends below it (an older time: the lag then reads larger, never smaller).
 */
export function reachedTimestamp(facts: DataPathFacts | SnapshotFacts): number | undefined {
  const reached = facts.plan.roll?.reached;
  if (reached === undefined) return undefined;
  const ends = facts.changelogs.filter(
    (c) => c.scan.last !== undefined && c.scan.lastTimestamp !== undefined && c.scan.last <= reached - 1,
  );
  const exact = ends.filter((c) => c.scan.last === reached - 1 && !facts.plan.uses.find((u) => u.name === c.name)?.cut);
  const pool = exact.length ? exact : ends;
  return pool.length ? Math.max(...pool.map((c) => c.scan.lastTimestamp!)) : undefined;
}

export interface MetaloggerInput {
  name: string;
  metaDownloadFreqHours: number;
  facts?: DataPathFacts;
  /** Why the DATA_PATH could not be read (host unreachable, permission, …). */
  error?: string;
  masterVersion?: number;
  connected?: boolean;
  /** Address the master is expected to list, for the message. */
  host: string;
  now: number;
  /** How the headline names the image, given its version's wording (default: its name and age). */
  imageHeadline?: (version: string) => string;
}

export function judgeMetalogger(input: MetaloggerInput, t: VerifyThresholds): SourceVerdict {
  const labels = { metalogger: input.name };
  const ageWarn = (input.metaDownloadFreqHours + t.imageAgeSlackHours) * 3600;
  const ageCrit = (input.metaDownloadFreqHours + t.imageAgeCritSlackHours) * 3600;
  const findings: Finding[] = [];
  const facts = input.facts;
  if (!facts)
    findings.push({ status: 'CRITICAL', text: `cannot read its DATA_PATH: ${input.error ?? 'unknown error'}` });
  const plan = facts?.plan;
  const image = plan?.choice.image;
  const reached = plan?.roll?.reached;
  if (facts && plan) findings.push(...chainFindings(plan, facts.changelogs));
  if (facts?.unsettled) findings.push({ status: 'WARNING', text: facts.unsettled });

  const imageAge = image ? (input.now - image.mtimeMs) / 1000 : NaN;
  const ageStatus = image ? level(imageAge, ageWarn, ageCrit) : 'OK';
  if (ageStatus !== 'OK') {
    findings.push({
      status: ageStatus,
      text: `image ${image!.name} is ${formatAge(imageAge)} old (META_DOWNLOAD_FREQ ${input.metaDownloadFreqHours} h + ${ageStatus === 'CRITICAL' ? t.imageAgeCritSlackHours : t.imageAgeSlackHours} h slack): metadata downloads have stopped`,
    });
  }

  const lagVersions =
    input.masterVersion !== undefined && reached !== undefined ? Math.max(0, input.masterVersion - reached) : NaN;
  const reachedAt = facts ? reachedTimestamp(facts) : undefined;
  const lagSeconds =
    lagVersions === 0
      ? 0
      : lagVersions > 0 && reachedAt !== undefined
        ? Math.max(0, Math.round(input.now / 1000 - reachedAt))
        : NaN;
  const lagStatus = worst(
    level(lagVersions, t.lagVersionsWarn, t.lagVersionsCrit),
    level(lagSeconds, t.lagSecondsWarn, t.lagSecondsCrit),
  );
  if ((lagStatus === 'WARNING' || lagStatus === 'CRITICAL') && reached !== undefined) {
    const age = Number.isNaN(lagSeconds) ? '' : `, newest change it holds is ${formatAge(lagSeconds)} old`;
    findings.push({
      status: lagStatus,
      text: `${lagVersions} versions behind the master (restores to ${reached}, master at ${input.masterVersion}${age})`,
    });
  }
  const ahead = input.masterVersion !== undefined && reached !== undefined ? reached - input.masterVersion : 0;
  if (ahead > t.lagVersionsCrit) {
    // Read after the master it may be a little ahead; this far ahead it holds changes the master never had.
    findings.push({
      status: 'WARNING',
      text: `${ahead} versions ahead of the master (restores to ${reached}, master at ${input.masterVersion}): does it follow another master, or did the master lose changes?`,
    });
  }
  if (input.connected === false)
    findings.push({
      status: 'WARNING',
      text: `not connected to the master (the master does not list ${input.host} among its metaloggers)`,
    });

  const status = statusOf(findings);
  const holes = plan?.roll?.holes ?? [];
  const problems = facts ? facts.changelogs.reduce((n, c) => n + c.scan.problems.length, 0) : NaN;
  const metrics: Metric[] = [
    metric('lag_versions', lagVersions, { warn: t.lagVersionsWarn, crit: t.lagVersionsCrit, labels }),
    metric('lag_seconds', lagSeconds, { warn: t.lagSecondsWarn, crit: t.lagSecondsCrit, labels }),
    metric('image_age_seconds', Number.isNaN(imageAge) ? NaN : Math.round(imageAge), {
      warn: ageWarn,
      crit: ageCrit,
      labels,
    }),
    metric('image_version', plan?.startVersion ?? NaN, { labels }),
    metric('restorable_version', reached ?? NaN, { labels }),
    metric('holes', facts ? holes.length : NaN, { crit: 0, labels }),
    metric('changelog_problems', problems, { crit: 0, labels }),
    metric('connected', input.connected === undefined ? NaN : input.connected ? 1 : 0, { labels }),
    metric('metalogger_status', ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'].indexOf(status), { labels }),
  ];
  const figures = {
    status,
    dataPath: facts?.dataPath,
    error: input.error,
    image: image
      ? {
          name: image.name,
          version: plan.startVersion,
          metaid: image.header.metaid,
          empty: image.header.empty,
          ageSeconds: Math.round(imageAge),
        }
      : undefined,
    invalidImages: plan?.choice.invalid.map((i) => ({ name: i.name, error: i.error })),
    changelogs: facts?.changelogs.map((c) => ({
      name: c.name,
      bytes: c.scan.bytes,
      lines: c.scan.lines,
      first: c.scan.first,
      last: c.scan.last,
      lastTimestamp: c.scan.lastTimestamp,
      segments: c.scan.segments,
      problems: c.scan.problems,
      truncatedLastLine: c.scan.truncatedLastLine,
    })),
    restorableVersion: reached,
    newestVersion: plan?.roll?.newest,
    holes,
    filesUsed: plan?.roll?.filesUsed,
    masterVersion: input.masterVersion,
    lagVersions: Number.isNaN(lagVersions) ? null : lagVersions,
    lagSeconds: Number.isNaN(lagSeconds) ? null : lagSeconds,
    connected: input.connected ?? null,
    findings,
  };
  const imageHeadline =
    input.imageHeadline ?? ((version: string) => `image ${image!.name} ${version} (${formatAge(imageAge)} old)`);
  const headline = [
    image
      ? imageHeadline(describeImageVersion({ empty: image.header.empty, version: plan.startVersion ?? 0 }))
      : undefined,
    reached !== undefined ? `restores to ${reached}` : undefined,
    Number.isNaN(lagVersions)
      ? undefined
      : `lag ${lagVersions} versions / ${Number.isNaN(lagSeconds) ? '?' : lagSeconds} s`,
    input.connected === undefined ? undefined : input.connected ? 'connected' : 'NOT connected',
  ]
    .filter(Boolean)
    .join(', ');
  return { name: input.name, status, restorableVersion: reached, headline, findings, figures, metrics };
}

export interface SnapshotInput {
  store: string;
  facts?: SnapshotFacts;
  /** Snapshot directories without a readable manifest. */
  broken: { id: string; error: string; untrusted?: boolean }[];
  /** listSnapshots itself failed. */
  error?: string;
  masterVersion?: number;
  now: number;
}

export function judgeSnapshot(input: SnapshotInput, t: VerifyThresholds): SourceVerdict {
  const findings: Finding[] = [];
  const facts = input.facts;
  const name = facts ? `snapshot ${facts.snapshot.id}` : 'snapshot store';
  if (input.error) findings.push({ status: 'CRITICAL', text: `cannot read ${input.store}: ${input.error}` });
  else if (!facts) findings.push({ status: 'WARNING', text: `no complete snapshot in ${input.store} yet` });
  // A manifest refused for trust (forged, edited, unsigned with a key configured, a wrong key) is a restore
  // point lost, or someone at work in the store: named with why.
  for (const b of input.broken.filter((x) => x.untrusted))
    findings.push({ status: 'CRITICAL', text: `snapshot ${b.id} refused: ${b.error}` });
  const unreadable = input.broken.filter((x) => !x.untrusted);
  if (unreadable.length)
    findings.push({
      status: 'WARNING',
      text: `snapshot directories without a readable manifest: ${unreadable.map((b) => b.id).join(', ')}`,
    });
  let ageSeconds = NaN;
  let reached: number | undefined;
  if (facts) {
    const m = facts.snapshot.manifest;
    for (const f of facts.files) if (f.problem) findings.push({ status: 'CRITICAL', text: `${f.name}: ${f.problem}` });
    const image = facts.images.find((i) => i.name === m.image.name);
    if (!image) findings.push({ status: 'CRITICAL', text: `manifest lists no image file named ${m.image.name}` });
    else if (image.header && (image.header.version !== m.image.version || image.header.metaid !== m.image.metaid)) {
      findings.push({
        status: 'CRITICAL',
        text: `${m.image.name}: header says version ${image.header.version} metaid ${image.header.metaid}, manifest says version ${m.image.version} metaid ${m.image.metaid}`,
      });
    }
    findings.push(...chainFindings(facts.plan, facts.changelogs));
    reached = facts.plan.roll?.reached;
    if (reached !== undefined && reached !== m.reachesVersion) {
      findings.push({
        status: reached < m.reachesVersion ? 'CRITICAL' : 'WARNING',
        text: `restores to version ${reached}, manifest promises ${m.reachesVersion}`,
      });
    }
    ageSeconds = (input.now - Date.parse(m.finishedAt)) / 1000;
    const ageStatus = level(ageSeconds, t.snapshotAgeWarnHours * 3600, t.snapshotAgeCritHours * 3600);
    if (ageStatus !== 'OK')
      findings.push({
        status: ageStatus === 'UNKNOWN' ? 'WARNING' : ageStatus,
        text: `newest snapshot is ${formatAge(ageSeconds)} old (limit ${ageStatus === 'CRITICAL' ? t.snapshotAgeCritHours : t.snapshotAgeWarnHours} h): is backup running?`,
      });
  }
  const status = statusOf(findings);
  const metrics: Metric[] = [
    metric('snapshot_age_seconds', Number.isNaN(ageSeconds) ? NaN : Math.round(ageSeconds), {
      warn: t.snapshotAgeWarnHours * 3600,
      crit: t.snapshotAgeCritHours * 3600,
    }),
    metric('snapshot_restorable_version', reached ?? NaN),
    metric(
      'snapshot_lag_versions',
      reached !== undefined && input.masterVersion !== undefined ? Math.max(0, input.masterVersion - reached) : NaN,
    ),
    metric('snapshot_status', ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'].indexOf(status)),
  ];
  const figures = {
    status,
    store: input.store,
    id: facts?.snapshot.id,
    dir: facts?.snapshot.dir,
    ageSeconds: Number.isNaN(ageSeconds) ? null : Math.round(ageSeconds),
    imageVersion: facts?.plan.startVersion,
    restorableVersion: reached,
    manifestReachesVersion: facts?.snapshot.manifest.reachesVersion,
    holes: facts?.plan.roll?.holes ?? [],
    files: facts?.files,
    broken: input.broken,
    error: input.error,
    findings,
  };
  const headline = facts
    ? `image ${facts.snapshot.manifest.image.name} ${facts.plan.startVersion === undefined ? 'version ?' : describeImageVersion({ empty: facts.snapshot.manifest.image.empty, version: facts.plan.startVersion })}, restores to ${reached ?? '?'}, ${formatAge(ageSeconds)} old`
    : '';
  return { name, status, restorableVersion: reached, headline, findings, figures, metrics };
}

const RANK: Record<Status, number> = { CRITICAL: 0, WARNING: 1, UNKNOWN: 2, OK: 3 };

/** `ml2: hole 50..50; ml1: 230 versions behind …` — the worst first, at most `max` findings. */
export function summarize(sources: readonly { name: string; findings: readonly Finding[] }[], max = 4): string {
  const all = sources.flatMap((s) =>
    s.findings.filter((f) => f.status !== 'OK').map((f) => ({ ...f, text: s.name ? `${s.name}: ${f.text}` : f.text })),
  );
  all.sort((a, b) => RANK[a.status] - RANK[b.status]);
  const shown = all.slice(0, max).map((f) => f.text);
  if (all.length > max) shown.push(`(+${all.length - max} more)`);
  return shown.join('; ');
}

export interface ChunkserverInput {
  name: string;
  host: string;
  /** The chunkserver's changelog_csback files, with the newest snapshot's image and changelogs as the image side. */
  facts?: DataPathFacts;
  error?: string;
  /** Id of the snapshot whose image the chain starts from; undefined when the store has none. */
  snapshotId?: string;
  masterVersion?: number;
  now: number;
}

/**
 * Before 1.6.5 a chunkserver's changelog_csback files are the only copy of the changes since the hourly
 * image: can the newest snapshot's image be rolled forward with them to the master's version, gap-free?
 * Judged like a metalogger (holes, damage, lag), except the image's age: the snapshot's own verdict says it.
 */
export function judgeChunkserver(input: ChunkserverInput, t: VerifyThresholds): SourceVerdict {
  const noImage =
    input.facts && input.snapshotId === undefined
      ? [
          {
            status: 'CRITICAL' as const,
            text: 'no snapshot in the store to roll forward: changelog_csback files restore nothing without an image (run backup hourly)',
          },
        ]
      : [];
  const imageHeadline = (version: string) => `snapshot ${input.snapshotId ?? '-'} ${version} + changelog_csback`;
  const v = judgeMetalogger(
    {
      name: input.name,
      host: input.host,
      metaDownloadFreqHours: Infinity,
      facts: input.facts,
      error: input.error,
      masterVersion: input.masterVersion,
      now: input.now,
      imageHeadline,
    },
    t,
  );
  const findings = [...noImage, ...v.findings];
  const status = statusOf(findings);
  const metrics = v.metrics
    .filter((m) => m.name !== 'image_age_seconds' && m.name !== 'connected')
    .map((m) => ({
      ...m,
      labels: { chunkserver: input.name },
      ...(m.name === 'metalogger_status'
        ? metric('chunkserver_status', ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'].indexOf(status))
        : {}),
    }));
  return {
    ...v,
    status,
    findings,
    metrics,
    figures: { ...v.figures, status, snapshot: input.snapshotId ?? null, findings },
  };
}

export interface RetainedInput {
  store: string;
  /** Every snapshot but the newest (which has its own verdict), oldest first. */
  facts: readonly SnapshotFacts[];
  rechecked: readonly string[];
  cached: readonly string[];
}

/**
 * The older snapshots of the store: each is a restore point promote, drill and restore may pick, so a
 * damaged one (checksum, unreadable key, broken chain) is named, CRITICAL. Their age is no finding.
 */
export function judgeRetained(input: RetainedInput, t: VerifyThresholds): SourceVerdict {
  const findings: Finding[] = [];
  const broken: { id: string; findings: Finding[] }[] = [];
  for (const facts of input.facts) {
    const own = judgeSnapshot(
      { store: input.store, facts, broken: [], now: Date.parse(facts.snapshot.manifest.finishedAt) },
      t,
    ).findings.filter((f) => f.status !== 'OK');
    if (!own.length) continue;
    broken.push({ id: facts.snapshot.id, findings: own });
    for (const f of own)
      findings.push({
        status: f.status === 'WARNING' ? 'WARNING' : 'CRITICAL',
        text: `snapshot ${facts.snapshot.id}: ${f.text}`,
      });
  }
  const status = statusOf(findings);
  const checked = input.facts.length;
  const headline = `${checked} older snapshot${checked === 1 ? '' : 's'} checked (${input.rechecked.length} read, ${input.cached.length} unchanged since verified)${broken.length ? `, ${broken.length} damaged` : ''}`;
  const figures = {
    status,
    store: input.store,
    checked,
    rechecked: input.rechecked.length,
    cached: input.cached.length,
    recheckedIds: input.rechecked,
    broken,
    findings,
  };
  return {
    name: 'older snapshots',
    status,
    headline,
    findings,
    figures,
    metrics: [metric('retained_snapshots', checked), metric('retained_snapshots_damaged', broken.length)],
  };
}
