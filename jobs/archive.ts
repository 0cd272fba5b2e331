import { z } from 'zod';
import { VERSION } from '../lib/core/cli.js';
import { jobOptionsSchema } from '../lib/core/config.js';
import { CARDS } from '../lib/core/job-cards.js';
import { defineJob, worst, type JobResult, type Status } from '../lib/core/job.js';
import { metric } from '../lib/core/metrics.js';
import { runArchive, startDaemonArchiver, type ArchiveOutcome } from '../lib/archive/archiver.js';

/**
 * Continuous changelog archiving (issue #26): the sources' changelog lines, as they are written, sealed
 * into the store's archive as segments and pushed to every copy — the store's newest restore point is
 * then the archive's end, seconds behind the master, not the last hourly snapshot.
 */
const options = jobOptionsSchema({
  /** Hosts read, in this order (default: every metalogger, then the masters; 1.x chunkservers when there is neither). */
  sources: z.array(z.string().min(1)).min(1).optional(),
  /** A segment is sealed when its oldest line has waited this long... */
  segmentSeconds: z.number().positive().default(5),
  /** ...or when it holds this many bytes, whichever comes first. */
  segmentBytes: z
    .number()
    .int()
    .positive()
    .default(16 * 2 ** 20),
  /** How often an up-to-date source is asked again. */
  pollSeconds: z.number().positive().default(1),
  /** At most this much is read from a source per round. */
  readBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 2 ** 20),
});

const iso = (unix: number | undefined) =>
  unix === undefined ? '-' : new Date(unix * 1000).toISOString().replace('.000Z', 'Z');

function toResult(o: ArchiveOutcome): JobResult {
  const sealed = o.sealed.length;
  const range = sealed ? ` (versions ${o.sealed[0]!.manifest.first}..${o.sealed[sealed - 1]!.manifest.last})` : '';
  const end =
    o.last === undefined ? 'the archive is empty' : `the archive ends at version ${o.last} (${iso(o.lastTime)})`;
  const gaps = o.gaps.map(
    (g) => `gap: versions ${g.from}..${g.to} are not in the archive${g.why ? ` (${g.why})` : ''}`,
  );
  const failed = o.copies.filter((c) => !c.ok);
  const status: Status = worst(
    o.gaps.length ? 'CRITICAL' : 'OK',
    o.problems.length || failed.length ? 'WARNING' : 'OK',
  );
  const summary = [
    `sealed ${sealed} segment${sealed === 1 ? '' : 's'}${range}; ${end}`,
    ...gaps,
    ...failed.map((c) => `copy ${c.copy}: ${c.error}`),
  ].join('; ');
  const lines = [
    ...o.sealed.map(
      (s) =>
        `sealed ${s.id}: versions ${s.manifest.first}..${s.manifest.last}${s.manifest.gap ? ` after a gap ${s.manifest.gap.from}..${s.manifest.gap.to}` : ''}`,
    ),
    ...gaps,
    ...o.problems,
    ...o.copies.map(
      (c) =>
        `copy ${c.copy}: ${c.ok ? `pushed ${c.pushed} segment${c.pushed === 1 ? '' : 's'}` : `FAILED: ${c.error}`}`,
    ),
  ];
  const metrics = [
    ...(o.last !== undefined ? [metric('archive_version', o.last + 1)] : []),
    metric('archive_gaps', o.gaps.length),
  ];
  return { status, summary, lines, metrics, details: { ...o, sealed: o.sealed.map((s) => s.manifest) } };
}

const args = z.strictObject({ follow: z.boolean().optional() });

export default defineJob({
  ...CARDS.archive,
  options,
  args,
  async run(ctx) {
    const outcome = await runArchive({
      config: ctx.config,
      options: ctx.options,
      log: ctx.log,
      signal: ctx.signal,
      follow: ctx.args.follow === true,
      mfsJobsVersion: VERSION,
    });
    return toResult(outcome);
  },
  // Runs for as long as the daemon does, when jobs.archive is in the config (and not enabled: false).
  async alongsideDaemon({ config, options: o, log }) {
    if (!config.jobs.archive || !config.snapshotStore) return undefined;
    return startDaemonArchiver({ config, options: o, log, mfsJobsVersion: VERSION });
  },
});
