// The failover hook: ucarp's up-script or keepalived's notify_master calls `mfs-jobs run promote`.
// The runbook of a MooseFS master failover, step by step; each step lives in lib/failover/promotion.ts.
import { z } from 'zod';
import { jobOptionsSchema } from '../lib/core/config.js';
import { defineJob, type JobResult } from '../lib/core/job.js';
import { StandbyCompanion } from '../lib/failover/companion.js';
import type { Timings } from '../lib/failover/report.js';
import {
  checkBeforePromoting,
  collected,
  fenceVerdict,
  place,
  plan,
  refuse,
  releasePrepared,
  report,
  start,
  startCollecting,
  startFence,
  triggeredAt,
  settleLease,
  takeQuorum,
  withDaemonHeld,
  withQuorum,
  type Collecting,
  type FenceVerdict,
  type Prepared,
  type PromoteContext,
  type Standby,
} from '../lib/failover/promotion.js';
import { CARDS } from '../lib/core/job-cards.js';

const options = jobOptionsSchema({
  /** A live master accepts TCP at once (the kernel answers); a dead machine never does. */
  fenceTimeoutSeconds: z.number().positive().default(2),
  /**
   * ARP beside the connect, for a master on this machine's own link: no reply to any of
   * `fenceArpProbes` requests within this many milliseconds means its host is down, without waiting
   * out fenceTimeoutSeconds. A live kernel answers in about a millisecond. 0 turns it off.
   */
  fenceArpMilliseconds: z.number().int().min(0).max(10_000).default(150),
  fenceArpProbes: z.number().int().min(1).max(10).default(3),
  /**
   * With `mfs-jobs daemon` running on this standby: probe the other masters this often, all the time,
   * so that a master already seen dead needs no probe when the hook fires (master-watch.ts). 0 turns it off.
   */
  fenceAheadMilliseconds: z.number().int().min(0).max(10_000).default(250),
  /**
   * Time to open and list one source; a source slower than this is left out (a dead host must not stall a
   * failover). An off-site copy (the store is gone) too: connected to and listed within it, then fetched.
   */
  sourceTimeoutSeconds: z.number().positive().default(5),
  /** mfsmaster -a and the first mfscli answer. */
  startTimeoutSeconds: z.number().positive().default(600),
  /** Restore only this filesystem (hex metaid as in the image header), whatever else sources hold. */
  metaid: z
    .string()
    .regex(/^[0-9A-Fa-f]{1,16}$/, 'expected a hex metaid')
    .optional(),
  /**
   * When fencing refuses because the old master still serves (a partition: this standby stopped hearing
   * its adverts), take standby.vip off this host again, so that clients keep reaching the live master.
   */
  releaseVipOnRefusal: z.boolean().default(true),
  /**
   * After the master serves, watch this long for the clients to come back (mounts reconnecting to the
   * sessions the master restored, chunkservers registering) and record when they did. Promote does not
   * wait for it (the daemon or a detached watcher does: lib/failover/clients-watch.ts). 0: do not watch.
   */
  clientsWaitSeconds: z.number().min(0).max(600).default(10),
  /**
   * The lag gate (issue #25): refuse a restore point more than this many versions / seconds behind the
   * newest any source or the leader key's last report saw (lib/failover/lag-gate.ts); --force overrides.
   */
  maximumLagVersions: z.number().int().min(0).optional(),
  maximumLagSeconds: z.number().min(0).optional(),
});
/** The command line (flags and help: its card in lib/core/job-cards.ts). */
const args = z.strictObject({ force: z.boolean().optional(), otherFilesystem: z.boolean().optional() });

/** Fence, then collect, plan, place, start, report; collecting runs while the fence is out, staging after it. */
async function promote(ctx: PromoteContext, s: Standby): Promise<JobResult> {
  const began = Date.now();
  const timings: Timings = {
    startupMs: Math.round(ctx.startedAt.getTime() - triggeredAt(ctx)),
    checkMs: began - ctx.startedAt.getTime(),
  };
  // 1. Fence, and 2. collect, side by side; nothing is changed (nor staged) before fencing says go.
  const fencing = startFence(ctx, s.others);
  const collecting = await startCollecting(ctx, s, fencing, began);
  try {
    const fence = await fenceVerdict(ctx, fencing, timings, began);
    if (!fence.go) return await refuse(ctx, s.standby, collecting, fence);
    // 2b. The power-fence hook and the leader key in etcd, when configured (issue #25).
    const quorum = await takeQuorum(ctx, s.standby, collecting, fence, timings, began);
    if ('stop' in quorum) return quorum.stop;
    // Proven: only now may staging write into DATA_PATH (collecting read while the fence was out).
    collecting.proceed();
    let result: JobResult | undefined;
    try {
      const prepared = await collected(collecting, timings);
      try {
        result = await restoreAndStart(ctx, s, fence, collecting, prepared, timings);
        return withQuorum(ctx, result, quorum);
      } finally {
        await releasePrepared(prepared);
      }
    } finally {
      await settleLease(quorum, result);
    }
  } finally {
    await collecting.releaseSources();
  }
}

/** 3. Plan (a dry run ends here), 4. place into DATA_PATH, 5. start the master, 6. report. */
async function restoreAndStart(
  ctx: PromoteContext,
  s: Standby,
  fence: FenceVerdict,
  collecting: Collecting,
  prepared: Prepared,
  timings: Timings,
): Promise<JobResult> {
  const planned = await plan(ctx, fence, collecting, prepared, timings);
  if ('stop' in planned) return planned.stop;
  const placed = await place(ctx, s.standby, prepared, planned);
  if ('stop' in placed) return placed.stop;
  const started = await start(ctx, s.standby, placed);
  if ('stop' in started) return started.stop;
  return await report(ctx, s.standby, started);
}

export default defineJob<typeof options, typeof args, StandbyCompanion>({
  ...CARDS.promote,
  options,
  args,
  lockName: 'failover',
  lockWaitSeconds: 900,
  async run(ctx) {
    const standby = await checkBeforePromoting(ctx);
    if ('stop' in standby) return standby.stop;
    return withDaemonHeld(ctx, () => promote(ctx, standby));
  },
  // Promotions run in the daemon from then on: its watch, mirror, SYN hold and clients-back watches with them.
  alongsideDaemon: ({ config, options, log }) => StandbyCompanion.start(config, options, log),
});
