import { worst, type Metric, type Status } from '../core/job.js';
import { metric } from '../core/metrics.js';
import { infoNumber } from '../moosefs/mfscli.js';
import type { PlacedRestorePoint } from '../restore/restorepoint.js';
import type { RestoreSource } from '../restore/source.js';

/** What a drill measured and what it means: pure, so every verdict is unit-tested. */

/** jobs.drill.warn*: when a drill that worked is still a WARNING. */
export interface DrillThresholds {
  warnRpoVersions?: number;
  warnRpoSeconds: number;
  warnRtoSeconds?: number;
}

export const seconds = (ms: number) => Math.round(ms) / 1000;

export interface LiveMaster {
  name: string;
  version: number;
  counts: Counts;
}

export interface Timings {
  copyMs: number;
  restoreMs: number;
  servingMs: number;
}

export interface Counts {
  fsObjects?: number;
  directories?: number;
  files?: number;
}

/** Counts from `mfscli -SIG` (a master asked through mfscli). */
export function countsFromInfo(info: Record<string, string>): Counts {
  return {
    fsObjects: infoNumber(info, 'all fs objects'),
    directories: infoNumber(info, 'directories'),
    files: infoNumber(info, 'files'),
  };
}

export function formatCounts(c: Counts): string {
  return `${c.fsObjects ?? '?'} fs objects, ${c.directories ?? '?'} directories, ${c.files ?? '?'} files`;
}

export interface DrillFacts {
  expectedVersion: number;
  restoredVersion: number;
  restored: Counts;
  live?: LiveMaster;
  rtoSeconds: number;
  /**
   * Seconds since the state restored stopped being current: the restore point's time (snapshot start, or
   * the copy from a live DATA_PATH), or a cut's (`--to-time T`: T).
   */
  restorePointAgeSeconds: number;
  /** Damaged changelog lines in the restore point (`file:line: reason`): the restore worked without them. */
  damage?: string[];
}

export interface DrillVerdict {
  status: Status;
  problems: string[];
  /** Versions the live master has that the restore point lacks; undefined without a live master. */
  rpoVersions?: number;
  /** 0 when nothing would be lost, else the restore point's age (its worst case without a live master). */
  rpoSeconds: number;
}

/** Pure: what the measured facts mean for an operator. */
export function drillVerdict(f: DrillFacts, t: DrillThresholds): DrillVerdict {
  const found: { status: Status; text: string }[] = [];
  if (f.restoredVersion !== f.expectedVersion)
    found.push({
      status: 'CRITICAL',
      text: `restored metadata version ${f.restoredVersion}, but the chain's newest version is ${f.expectedVersion}`,
    });
  const gap = f.live ? f.live.version - f.restoredVersion : undefined;
  if (f.live && gap !== undefined && gap < 0)
    found.push({
      status: 'WARNING',
      text: `the restore point (${f.restoredVersion}) is ahead of live master ${f.live.name} (${f.live.version}): did the master lose changes?`,
    });
  if (f.live && gap === 0) {
    const keys = (['fsObjects', 'directories', 'files'] as const).filter((k) => f.restored[k] !== f.live!.counts[k]);
    if (keys.length)
      found.push({
        status: 'CRITICAL',
        text: `at the same version the restored metadata differs from live master ${f.live.name}: ${keys.map((k) => `${k} ${f.restored[k]} vs ${f.live!.counts[k]}`).join(', ')}`,
      });
  }
  for (const d of f.damage ?? [])
    found.push({ status: 'WARNING', text: `damaged changelog ${d}: mfsmaster -a left those lines out` });
  const rpoVersions = gap === undefined ? undefined : Math.max(0, gap);
  const rpoSeconds = rpoVersions === 0 ? 0 : Math.max(0, Math.round(f.restorePointAgeSeconds));
  if (t.warnRpoVersions !== undefined && rpoVersions !== undefined && rpoVersions > t.warnRpoVersions)
    found.push({
      status: 'WARNING',
      text: `RPO ${rpoVersions} versions exceeds ${t.warnRpoVersions} (jobs.drill.warnRpoVersions)`,
    });
  if (rpoSeconds > t.warnRpoSeconds)
    found.push({
      status: 'WARNING',
      text: `RPO ${rpoSeconds} s exceeds ${t.warnRpoSeconds} s (jobs.drill.warnRpoSeconds)`,
    });
  if (t.warnRtoSeconds !== undefined && f.rtoSeconds > t.warnRtoSeconds)
    found.push({
      status: 'WARNING',
      text: `RTO ${f.rtoSeconds.toFixed(1)} s exceeds ${t.warnRtoSeconds} s (jobs.drill.warnRtoSeconds)`,
    });
  return { status: worst(...found.map((p) => p.status)), problems: found.map((p) => p.text), rpoVersions, rpoSeconds };
}

export function metricsOf(
  placed: PlacedRestorePoint,
  expectedVersion: number,
  restoredVersion: number,
  restored: Counts,
  t: Timings,
  v: DrillVerdict,
  ageSeconds: number,
): Metric[] {
  const m: Metric[] = [
    metric('restored_version', restoredVersion),
    metric('expected_version', expectedVersion),
    metric('rto_seconds', seconds(t.copyMs + t.restoreMs + t.servingMs)),
    metric('copy_seconds', seconds(t.copyMs)),
    metric('restore_seconds', seconds(t.restoreMs)),
    metric('serving_seconds', seconds(t.servingMs)),
    metric('copied_bytes', placed.bytes),
    metric('rpo_seconds', v.rpoSeconds),
    metric('restore_point_age_seconds', Math.round(ageSeconds)),
  ];
  if (v.rpoVersions !== undefined) m.push(metric('rpo_versions', v.rpoVersions));
  if (restored.files !== undefined) m.push(metric('restored_files', restored.files));
  if (restored.directories !== undefined) m.push(metric('restored_directories', restored.directories));
  return m;
}

/** When the restore point was current: a snapshot's start, or now for a copy from a live DATA_PATH. */
export function restorePointTime(source: RestoreSource, copyStartedMs: number): number {
  const snapshot = source.kind === 'snapshot' ? source.snapshot : source.kind === 'copy' ? source.fetched : undefined;
  const at = snapshot ? Date.parse(snapshot.manifest.startedAt) : NaN;
  return Number.isFinite(at) ? at : copyStartedMs;
}
