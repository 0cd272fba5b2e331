import { worst } from '../core/job.js';
import { metric } from '../core/metrics.js';
import type { CopyCheck } from '../store/copy/check.js';
import { level, type Finding, type SourceVerdict, type VerifyThresholds } from './verdict.js';

/**
 * Verify's verdict on an off-site copy. A copy is the second line of defence: whatever is wrong with
 * it (unreachable, damaged, stale, empty) is a WARNING, never CRITICAL — the cluster can still be
 * restored from the local store and the metaloggers, and those have their own verdicts.
 */
export function judgeCopy(
  c: CopyCheck,
  t: Pick<VerifyThresholds, 'snapshotAgeWarnHours' | 'snapshotAgeCritHours'>,
): SourceVerdict {
  const name = `copy:${c.copy}`;
  const findings: Finding[] = [];
  if (c.error) findings.push({ status: 'WARNING', text: `unreachable or refused: ${c.error}` });
  else if (!c.newest) findings.push({ status: 'WARNING', text: `no complete snapshot on ${c.label}` });
  for (const p of c.problems) findings.push({ status: 'WARNING', text: p });
  for (const b of c.broken)
    findings.push({ status: 'WARNING', text: `snapshot ${b.id}: unusable manifest: ${b.error}` });
  if (c.incomplete.length)
    findings.push({
      status: 'OK',
      text: `incomplete (an interrupted upload the next backup finishes or removes): ${c.incomplete.join(', ')}`,
    });
  if (c.newestAgeSeconds !== undefined) {
    const age = level(c.newestAgeSeconds / 3600, t.snapshotAgeWarnHours, t.snapshotAgeCritHours);
    if (age !== 'OK')
      findings.push({
        status: 'WARNING',
        text: `newest snapshot ${c.newest} is ${(c.newestAgeSeconds / 3600).toFixed(1)} h old`,
      });
  }
  const status = worst(...findings.map((f) => f.status));
  const labels = { copy: c.copy };
  const headline = c.error
    ? 'unreachable'
    : c.newest
      ? `${c.complete.length} complete snapshot(s), newest ${c.newest} (${Math.round(c.newestAgeSeconds ?? 0)} s old), ${c.checksummed ? `checksums of ${c.checksummed} ${c.problems.length ? 'DO NOT match' : 'match'}` : `not re-read (copyChecksums: false)${c.problems.length ? ', files missing or of the wrong size' : ''}`}`
      : 'empty';
  return {
    name,
    status,
    restorableVersion: status === 'OK' ? c.newestReaches : undefined,
    headline,
    findings,
    figures: { ...c, status },
    metrics: [
      metric('copy_ok', status === 'OK' ? 1 : 0, { labels }),
      metric('copy_snapshots', c.complete.length, { labels }),
      ...(c.newestAgeSeconds !== undefined
        ? [metric('copy_snapshot_age_seconds', c.newestAgeSeconds, { labels })]
        : []),
    ],
  };
}
