import { worst, type Metric, type Status } from '../core/job.js';
import { infoNumber } from '../moosefs/mfscli.js';
import type { PlacedRestorePoint } from './restorepoint.js';
import type { RestoreSource } from './source.js';

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
  return { fsObjects: infoNumber(info, 'all fs objects'), directories: infoNumber(info, 'directories'), files: infoNumber(info, 'files') };
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
  /** Seconds since the restore point was taken (snapshot start, or the copy from a live DATA_PATH). */
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
  if (f.restoredVersion !== f.expectedVersion) found.push({ status: 'CRITICAL', text: `restored metadata version ${f.restoredVersion}, but the chain's newest version is ${f.expectedVersion}` });
  const gap = f.live ? f.live.version - f.restoredVersion : undefined;
  if (f.live && gap !== undefined && gap < 0) found.push({ status: 'WARNING', text: `the restore point (${f.restoredVersion}) is ahead of live master ${f.live.name} (${f.live.version}): did the master lose changes?` });
  if (f.live && gap === 0) {
    const keys = (['fsObjects', 'directories', 'files'] as const).filter((k) => f.restored[k] !== f.live!.counts[k]);
    if (keys.length) found.push({ status: 'CRITICAL', text: `at the same version the restored metadata differs from live master ${f.live.name}: ${keys.map((k) => `${k} ${f.restored[k]} vs ${f.live!.counts[k]}`).join(', ')}` });
  }
  for (const d of f.damage ?? []) found.push({ status: 'WARNING', text: `damaged changelog ${d}: mfsmaster -a left those lines out` });
  const rpoVersions = gap === undefined ? undefined : Math.max(0, gap);
  const rpoSeconds = rpoVersions === 0 ? 0 : Math.max(0, Math.round(f.restorePointAgeSeconds));
  if (t.warnRpoVersions !== undefined && rpoVersions !== undefined && rpoVersions > t.warnRpoVersions) found.push({ status: 'WARNING', text: `RPO ${rpoVersions} versions exceeds ${t.warnRpoVersions} (jobs.drill.warnRpoVersions)` });
  if (rpoSeconds > t.warnRpoSeconds) found.push({ status: 'WARNING', text: `RPO ${rpoSeconds} s exceeds ${t.warnRpoSeconds} s (jobs.drill.warnRpoSeconds)` });
  if (t.warnRtoSeconds !== undefined && f.rtoSeconds > t.warnRtoSeconds) found.push({ status: 'WARNING', text: `RTO ${f.rtoSeconds.toFixed(1)} s exceeds ${t.warnRtoSeconds} s (jobs.drill.warnRtoSeconds)` });
  return { status: worst(...found.map((p) => p.status)), problems: found.map((p) => p.text), rpoVersions, rpoSeconds };
}

export function metricsOf(placed: PlacedRestorePoint, expectedVersion: number, restoredVersion: number, restored: Counts, t: Timings, v: DrillVerdict, ageSeconds: number): Metric[] {
  const m: Metric[] = [
    { name: 'restored_version', value: restoredVersion, help: 'Metadata version the scratch master served after mfsmaster -a.' },
    { name: 'expected_version', value: expectedVersion, help: 'Newest metadata version the restore point\'s chain offers.' },
    { name: 'rto_seconds', value: seconds(t.copyMs + t.restoreMs + t.servingMs), unit: 's', help: 'Copy + restore + until mfscli -SIM answers.' },
    { name: 'copy_seconds', value: seconds(t.copyMs), unit: 's', help: 'Copying (and checksumming) the restore point.' },
    { name: 'restore_seconds', value: seconds(t.restoreMs), unit: 's', help: 'mfsmaster -a start until it daemonised.' },
    { name: 'serving_seconds', value: seconds(t.servingMs), unit: 's', help: 'Until mfscli -SIM answered.' },
    { name: 'copied_bytes', value: placed.bytes, unit: 'B', help: 'Bytes of image and changelogs copied.' },
    { name: 'rpo_seconds', value: v.rpoSeconds, unit: 's', help: 'Changes of this many seconds would be lost (0 when the live master has nothing newer).' },
    { name: 'restore_point_age_seconds', value: Math.round(ageSeconds), unit: 's', help: 'Age of the restore point.' },
  ];
  if (v.rpoVersions !== undefined) m.push({ name: 'rpo_versions', value: v.rpoVersions, help: 'Metadata versions the live master has beyond the restore point.' });
  if (restored.files !== undefined) m.push({ name: 'restored_files', value: restored.files, help: 'Files in the restored metadata (mfscli -SIG).' });
  if (restored.directories !== undefined) m.push({ name: 'restored_directories', value: restored.directories, help: 'Directories in the restored metadata (mfscli -SIG).' });
  return m;
}

/** When the restore point was current: a snapshot's start, or now for a copy from a live DATA_PATH. */
export function restorePointTime(source: RestoreSource, copyStartedMs: number): number {
  const at = source.kind === 'snapshot' ? Date.parse(source.snapshot.manifest.startedAt) : NaN;
  return Number.isFinite(at) ? at : copyStartedMs;
}
