import type { Config } from '../core/config.js';
import { describeError } from '../core/errors.js';
import type { Status } from '../core/job.js';
import { listCopySegments, openArchiveCopy } from '../store/copy/archive.js';
import type { StoreKeys } from '../store/sealed.js';
import { archiveChain, listSegments, type SegmentManifest } from '../store/segments.js';
import { metric } from '../core/metrics.js';
import { level, type Finding, type SourceVerdict, type VerifyThresholds } from './verdict.js';

/**
 * The changelog archive of one destination (the store, or a copy), judged against the master: how far
 * behind its end is (versions, and the age of its newest line while the master has newer ones), and any
 * hole inside it — a hole is CRITICAL: a `--to-time` into it cannot be served, whatever sits around it.
 */
export interface ArchiveFacts {
  /** `store`, or `copy NAME`. */
  destination: string;
  segments: number;
  first?: number;
  last?: number;
  lastTime?: number;
  holes: { from: number; to: number; why?: string }[];
  /** Segments whose manifest or bytes are refused (unsigned, damaged). */
  broken: { id: string; error: string }[];
  error?: string;
}

export function judgeArchive(
  f: ArchiveFacts,
  masterVersion: number | undefined,
  now: number,
  t: VerifyThresholds,
): SourceVerdict {
  const name = `archive (${f.destination})`;
  const labels = { destination: f.destination };
  const findings: Finding[] = [];
  if (f.error) {
    findings.push({ status: 'CRITICAL', text: `cannot read the archive: ${f.error}` });
    return { name, status: 'CRITICAL', headline: f.error, findings, figures: { ...f }, metrics: [] };
  }
  for (const h of f.holes)
    findings.push({
      status: 'CRITICAL',
      text: `gap: versions ${h.from}..${h.to} are not archived${h.why ? ` (${h.why})` : ''}`,
    });
  for (const b of f.broken) findings.push({ status: 'CRITICAL', text: `segment ${b.id} is not usable: ${b.error}` });
  const reaches = f.last === undefined ? undefined : f.last + 1;
  const lagVersions = masterVersion === undefined || reaches === undefined ? NaN : Math.max(0, masterVersion - reaches);
  const lagSeconds =
    lagVersions > 0 && f.lastTime !== undefined
      ? Math.max(0, Math.round(now / 1000 - f.lastTime))
      : lagVersions === 0
        ? 0
        : NaN;
  if (reaches === undefined)
    findings.push({
      status: 'WARNING',
      text: 'the archive is empty (is `mfs-jobs run archive --follow` or the daemon running?)',
    });
  else {
    const lv = level(lagVersions, t.lagVersionsWarn, t.lagVersionsCrit);
    const ls = level(lagSeconds, t.lagSecondsWarn, t.lagSecondsCrit);
    if (lv !== 'OK' || ls !== 'OK') {
      const worse: Status =
        lv === 'CRITICAL' || ls === 'CRITICAL'
          ? 'CRITICAL'
          : lv === 'UNKNOWN' && ls === 'UNKNOWN'
            ? 'UNKNOWN'
            : 'WARNING';
      findings.push({ status: worse, text: `${lagVersions} versions (${lagSeconds} s) behind the master` });
    }
  }
  const rank: Record<Status, number> = { OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };
  const status = findings.reduce<Status>((s, x) => (rank[x.status] > rank[s] ? x.status : s), 'OK');
  const headline =
    reaches === undefined
      ? 'empty'
      : `reaches ${reaches}, ${f.segments} segments, ${f.holes.length} gaps, lag ${lagVersions} versions / ${lagSeconds} s`;
  return {
    name,
    status,
    restorableVersion: f.holes.length ? f.holes[0]!.from : reaches,
    headline,
    findings,
    // status and restorableVersion: what `status` shows in its RPO table (rpoOf) for each destination.
    figures: { ...f, status, restorableVersion: reaches ?? null, lagVersions, lagSeconds },
    metrics: [
      ...(reaches !== undefined ? [metric('archive_version', reaches, { labels })] : []),
      metric('archive_gaps', f.holes.length + f.broken.length, { labels }),
      metric('archive_lag_versions', lagVersions, { labels, warn: t.lagVersionsWarn, crit: t.lagVersionsCrit }),
      metric('archive_lag_seconds', lagSeconds, { labels, warn: t.lagSecondsWarn, crit: t.lagSecondsCrit }),
    ],
  };
}

/** The archive's facts in the store and on each copy (segments' manifests checked; bytes are the sealer's). */
export async function readArchiveFacts(config: Config, keys: StoreKeys, signal: AbortSignal): Promise<ArchiveFacts[]> {
  const out: ArchiveFacts[] = [];
  const chainFacts = (
    destination: string,
    manifests: SegmentManifest[],
    broken: { id: string; error: string }[],
  ): ArchiveFacts => {
    const chain = archiveChain(manifests);
    return {
      destination,
      segments: manifests.length,
      first: chain.first,
      last: chain.last,
      lastTime: chain.lastTime,
      holes: chain.holes,
      broken,
    };
  };
  try {
    const { segments, broken } = await listSegments(config.snapshotStore!.path, keys);
    out.push(
      chainFacts(
        'store',
        segments.map((s) => s.manifest),
        broken,
      ),
    );
  } catch (err) {
    out.push({ destination: 'store', segments: 0, holes: [], broken: [], error: describeError(err) });
  }
  for (const copy of config.snapshotStore!.copies) {
    let repo;
    try {
      repo = await openArchiveCopy(config, copy, signal);
      const listing = await listCopySegments(repo, keys, signal);
      out.push(
        chainFacts(
          `copy ${copy.name}`,
          listing.segments.map((s) => s.manifest),
          listing.broken,
        ),
      );
    } catch (err) {
      if (signal.aborted) throw err;
      out.push({ destination: `copy ${copy.name}`, segments: 0, holes: [], broken: [], error: describeError(err) });
    } finally {
      await repo?.close().catch(() => undefined);
    }
  }
  return out;
}
