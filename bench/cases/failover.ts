import {
  FailoverLab,
  SEED_NOTIFY,
  SEED_UP,
  type ClientsState,
  type FailoverRound,
  type Promoter,
} from '../../test/lab/failover.js';
import { summarize } from '../measure.js';
import { FigureSamples, verdict, type BenchContext, type CaseResult } from '../bench-case.js';

/**
 * Case 6: a real VIP failover end to end, from the kill to the clients writing again — what the seed
 * promises takes "only a few seconds". Three network namespaces on a bridge (test/lab/failover.ts):
 * master + ucarp on A, standby + ucarp on B (each with `mfs-jobs daemon`), metalogger, chunkserver and a
 * client mount through the VIP on C. Each round kills the serving machine like a power cut (kill -9 of
 * mfsmaster, ucarp and the daemon; link down) and times the client's first durable write through its old
 * mount. Rounds alternate the promoting up-script in ABBA order — the seed's (cp the metalogger's files,
 * `mfsmaster -a`) and the shipped one (its `mfs-jobs run promote` joins the promotion the standby's daemon
 * started when the VIP appeared: `standby.promoteOnVip`) — so each machine and each moment of the run
 * gets both. Both read the metalogger's DATA_PATH as a directory.
 * 'keepalived': keepalived instead of ucarp on A and B, no daemon; the sides are the shipped notify script
 * (examples/keepalived/mfs-jobs-notify.sh: `master` runs `mfs-jobs run promote` detached) and the seed's
 * up-script in its notify_master form (bench/baseline/keepalived-notify-seed.sh: keepalived has added the
 * VIP, so only cp + `mfsmaster -a`), each machine's keepalived restarted with the next round's script.
 */
export async function failoverCase(
  ctx: BenchContext,
  variant: 'default' | 'tuned' | 'sync' | 'detached' | 'keepalived' = 'default',
): Promise<CaseResult> {
  // 'sync': the seed's own hook form — the up-script runs `mfs-jobs run promote` and waits for it, no daemon
  // (issue 24); 'detached': the shipped up-script (examples/ucarp/vip-up.sh, promote detached), no daemon;
  // 'keepalived': the notify script, no daemon (the lab's 'mfs-jobs sync' there); the other
  // variants join the standby daemon's promotion (promoteOnVip).
  const keepalived = variant === 'keepalived';
  const ours: Promoter =
    variant === 'sync' || keepalived ? 'mfs-jobs sync' : variant === 'detached' ? 'mfs-jobs detached' : 'mfs-jobs';
  const order: Promoter[] = [];
  for (let k = 0; k < ctx.reps; k++)
    order.push(...(k % 2 === 0 ? (['seed script', ours] as const) : ([ours, 'seed script'] as const)));
  const result = {
    id: variant === 'default' ? 'failover' : `failover-${variant}`,
    title: `VIP failover end to end (${keepalived ? 'keepalived' : 'ucarp'}, 3 namespaces, kill -9 + link down${variant === 'tuned' ? ', chunkserver MASTER_RECONNECTION_DELAY = 1' : ''}${variant === 'sync' ? ', up-script waits for mfs-jobs run promote, no daemon' : ''}${variant === 'detached' ? ', shipped up-script (promote detached), no daemon' : ''}${keepalived ? ', notify_master, no daemon' : ''}): kill → first client write, ${ctx.reps} rounds each`,
    target: { text: '≤ 1.1× seed script', maxRatio: 1.1 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  // 'tuned': the chunkserver retries its master every second instead of every 5 s (its default), the
  // setting an operator tunes for fast failover; it also shrinks the step that hides a promotion's speed.
  const chunkserverConfig: Record<string, string> = variant === 'tuned' ? { MASTER_RECONNECTION_DELAY: '1' } : {};
  const reconnectMs = variant === 'tuned' ? 1_000 : 5_000;
  const prefix = { default: '10.76.0', tuned: '10.75.0', sync: '10.74.0', detached: '10.71.0', keepalived: '10.72.0' }[
    variant
  ];
  const lab = await FailoverLab.start({
    prefix,
    vip: `${prefix}.100`,
    metaloggerLocal: true,
    promoteOnVip: ours === 'mfs-jobs',
    chunkserverConfig,
    vrrp: keepalived ? 'keepalived' : 'ucarp',
  });
  const rounds: FailoverRound[] = [];
  const clientsBack = new Map<FailoverRound, ClientsState['details']>();
  try {
    await lab.prepareRounds(order[0]!);
    const written = new Map<string, string>();
    for (const [i, promoter] of order.entries()) {
      // Both rounds of a pair are killed at the same phase of the chunkserver's reconnection timer; the
      // pairs' phases are spread over its period (golden-ratio steps), so no phase favours either script.
      const killPhase = {
        periodMs: reconnectMs,
        phaseMs: Math.round(((Math.floor(i / 2) * 0.618034) % 1) * reconnectMs),
      };
      const startedAt = Date.now();
      const r = await lab.failoverRound(promoter, order[i + 1] ?? ours, written, `bench-${i + 1}`, { killPhase });
      if (promoter !== 'seed script') clientsBack.set(r, await clientsWatched(lab, r, startedAt));
      if (r.promote && r.promote.status !== 'OK')
        throw new Error(`round ${i + 1}: promote ${r.promote.status}: ${r.promote.summary}`);
      ctx.log(
        `failover round ${i + 1}/${order.length} (${promoter} on ${r.standby}): VIP ${r.vipSeconds.toFixed(2)} s, first write ${r.firstWriteSeconds.toFixed(2)} s`,
      );
      rounds.push(r);
    }
  } finally {
    const leftovers = await lab.stop();
    if (leftovers.length) ctx.log(`failover lab left ${leftovers.join(', ')}`);
  }
  const sample = (r: FailoverRound) => ({ seconds: r.firstWriteSeconds, code: 0, stdout: '', stderr: '' });
  const of = (p: Promoter) => rounds.filter((r) => r.promoter === p);
  const subject = keepalived
    ? summarize(
        'mfs-jobs run promote from notify_master (detached, no daemon)',
        'examples/keepalived/mfs-jobs-notify.sh master → mfs-jobs run promote',
        of(ours).map(sample),
      )
    : variant === 'detached'
      ? summarize(
          'mfs-jobs run promote detached by the up-script (no daemon)',
          'examples/ucarp/vip-up.sh → mfs-jobs run promote',
          of(ours).map(sample),
        )
      : variant === 'sync'
        ? summarize(
            'mfs-jobs run promote in the up-script (no daemon)',
            'test/failover/vip-up-sync.sh → mfs-jobs run promote',
            of(ours).map(sample),
          )
        : summarize(
            'mfs-jobs promote (daemon, promoteOnVip)',
            'examples/ucarp/vip-up.sh → mfs-jobs run promote',
            of(ours).map(sample),
          );
  const baseline = summarize(
    keepalived ? 'seed up-script as notify_master (cp + mfsmaster -a)' : 'seed up-script (cp + mfsmaster -a)',
    (keepalived ? SEED_NOTIFY : SEED_UP).replace(/.*\/bench\//, 'bench/'),
    of('seed script').map(sample),
  );
  const own = new FigureSamples();
  for (const r of of(ours)) {
    const d = r.promote?.details;
    const overheadSeconds =
      d?.rtoSeconds !== undefined && d.restoreSeconds !== undefined ? d.rtoSeconds - d.restoreSeconds : undefined;
    own.add({
      rtoSeconds: d?.rtoSeconds,
      overheadSeconds,
      ...(d?.timings ?? {}),
      clientsMountMs: clientsBack.get(r)?.clients.firstMountMs,
      clientsChunkserverMs: clientsBack.get(r)?.clients.firstChunkserverMs,
    });
  }
  Object.assign(result.figures, own.medians(0));
  result.figures.vipSecondsMedian = summarize(
    '',
    '',
    rounds.map((r) => ({ seconds: r.vipSeconds, code: 0, stdout: '', stderr: '' })),
  ).medianSeconds;
  result.notes.push(
    'seconds from kill -9 to the first fsynced write through the client’s old mount; rtoSeconds and *Ms: promote’s own report (VIP added → master serving; startup 0: the daemon starts it); overheadSeconds = RTO minus its own mfsmaster -a (local sources); clients*Ms: the clients watch after promote returned (daemon or detached watcher, state/promote-clients.json), from the VIP added, of the first mount and chunkserver back',
    `per round: ${rounds.map((r) => `${r.promoter === 'seed script' ? 'S' : 'M'} ${r.firstWriteSeconds.toFixed(2)}`).join(', ')}`,
  );
  // No profile: the mfs-jobs side is a ucarp hook inside a namespace, not a command to rerun.
  return verdict({ ...result, status: 'measured', subject, baseline });
}

/** The clients watch of round `r` (promote no longer waits for it): its record once written after the round began. */
async function clientsWatched(lab: FailoverLab, r: FailoverRound, since: number): Promise<ClientsState['details']> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const s = await lab.readClientsState(r.promoted);
    if (s && Date.parse(s.finishedAt) >= since) return s.details;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return undefined;
}
