import { DateTime } from 'luxon';
import type { Retention } from '../core/config.js';

/**
 * Which snapshots to keep, the way restic's `forget --keep-*` decides: walk the snapshots newest
 * first; each rule keeps the newest snapshot of each of its next N buckets (the snapshot itself for
 * keep-last, an hour, a day, an ISO week). A snapshot any rule keeps stays. Pure: no clock, no disk.
 */
export interface RetentionCandidate {
  id: string;
  /** When the snapshot was taken. */
  time: Date;
}

export type KeepReason = 'last' | 'hourly' | 'daily' | 'weekly' | 'pinned' | 'window';

export interface RetentionDecision {
  id: string;
  time: Date;
  keep: boolean;
  /** Why it stays (empty when it goes). */
  reasons: KeepReason[];
}

interface Rule {
  setting: keyof Retention;
  reason: KeepReason;
  bucket: (at: DateTime, id: string) => string;
}

const RULES: readonly Rule[] = [
  { setting: 'keepLast', reason: 'last', bucket: (_at, id) => id },
  // The offset keeps the two 02:00 hours of a DST change apart.
  { setting: 'keepHourly', reason: 'hourly', bucket: (at) => at.toFormat("yyyy-LL-dd'T'HHZZ") },
  { setting: 'keepDaily', reason: 'daily', bucket: (at) => at.toFormat('yyyy-LL-dd') },
  { setting: 'keepWeekly', reason: 'weekly', bucket: (at) => at.toFormat("kkkk-'W'WW") },
];

/** Newest first; ties broken by id so the result never depends on input order. */
function newestFirst<T extends RetentionCandidate>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/**
 * Decide keep/remove for one group of snapshots (one source). Buckets are cut in `zone` (the
 * config's timezone), like restic uses local time. Never returns an empty keep set for a
 * non-empty input: the newest snapshot always stays.
 */
export function selectRetention(
  candidates: readonly RetentionCandidate[],
  policy: Retention,
  zone = 'UTC',
): RetentionDecision[] {
  const left: Record<KeepReason, number> = {
    last: policy.keepLast,
    hourly: policy.keepHourly,
    daily: policy.keepDaily,
    weekly: policy.keepWeekly,
    pinned: 0,
    window: 0,
  };
  const lastBucket = new Map<KeepReason, string>();
  const decisions = newestFirst(candidates).map((c) => {
    // The buckets are numbers only: a fixed locale spares luxon asking ICU for the system's, whose first use
    // cost the backup tens of ms (issue 28); a UTC zone then needs no Intl at all.
    const at = DateTime.fromMillis(c.time.getTime(), { zone, locale: 'en-US' });
    const reasons: KeepReason[] = [];
    for (const rule of RULES) {
      if (left[rule.reason] <= 0) continue;
      const bucket = rule.bucket(at, c.id);
      if (bucket === lastBucket.get(rule.reason)) continue;
      lastBucket.set(rule.reason, bucket);
      left[rule.reason] -= 1;
      reasons.push(rule.reason);
    }
    return { id: c.id, time: c.time, keep: reasons.length > 0, reasons };
  });
  const newest = decisions[0];
  if (newest && !decisions.some((d) => d.keep)) {
    newest.keep = true;
    newest.reasons = ['last'];
  }
  return decisions;
}

/** `last,hourly` — what an operator reads next to a kept snapshot. */
export function formatReasons(reasons: readonly KeepReason[]): string {
  return reasons.join(',');
}

/** The little a retention plan needs to know about a stored snapshot. */
export interface RetainedSnapshot {
  id: string;
  manifest: { source: { name: string }; startedAt: string };
}

export interface StoreRetentionPlan {
  /** Per source, newest first. */
  groups: { source: string; decisions: RetentionDecision[] }[];
  remove: string[];
}

/**
 * Retention over a snapshot store, one group per source (restic groups by host the same way).
 * Only the named sources are considered: a source whose backup failed this run keeps everything.
 * Callers pass healthy snapshots only, so a damaged one never counts as the one that is kept.
 */
export function planStoreRetention(
  snapshots: readonly RetainedSnapshot[],
  sources: readonly string[],
  policy: Retention,
  zone = 'UTC',
  pinned: ReadonlySet<string> = new Set(),
  now = Date.now(),
): StoreRetentionPlan {
  const windowStart = policy.recoveryWindow ? now - windowMs(policy.recoveryWindow) : undefined;
  const keep = (d: RetentionDecision, reason: KeepReason): RetentionDecision => ({
    ...d,
    keep: true,
    reasons: [...d.reasons, reason],
  });
  const groups = sources.map((source) => {
    const members = snapshots
      .filter((s) => s.manifest.source.name === source)
      .map((s) => ({ id: s.id, time: new Date(s.manifest.startedAt) }));
    // A pinned snapshot stays whatever the rules say (snapshot pin); it still counts for them as any other.
    let decisions = selectRetention(members, policy, zone).map((d) => (pinned.has(d.id) ? keep(d, 'pinned') : d));
    if (windowStart !== undefined) {
      // The window's first moment is reached from the newest image before it: that one stays too.
      const before = decisions.find((d) => d.time.getTime() < windowStart);
      decisions = decisions.map((d) => (d.time.getTime() >= windowStart || d === before ? keep(d, 'window') : d));
    }
    return { source, decisions };
  });
  const remove = groups.flatMap((g) => g.decisions.filter((d) => !d.keep).map((d) => d.id));
  return { groups, remove };
}

/** `14d` → milliseconds (the config's recoveryWindow form). */
export function windowMs(window: string): number {
  const unit = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[window.slice(-1) as 'h' | 'd' | 'w'];
  return Number(window.slice(0, -1)) * unit;
}
