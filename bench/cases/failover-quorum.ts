import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EtcdCluster } from '../../test/lab/etcd.js';
import { FailoverLab, type FailoverRound } from '../../test/lab/failover.js';
import type { Machine } from '../../test/lab/netns.js';
import { waitFor } from '../../test/lab/proc.js';
import { summarize } from '../measure.js';
import { FigureSamples, verdict, type BenchContext, type CaseResult } from '../bench-case.js';

const TTL = 10;
const PREFIX = '10.73.0';
const KEY = '/mfs-jobs/bq/leader';

/**
 * The price of the quorum lease (issue #25) in RTO: kill -9 failover rounds of the shipped up-script
 * (`standby.promoteOnVip`, the failover case's mfs-jobs side) with `quorum:` off and on, alternating in
 * ABBA order in one lab (test/lab/failover.ts) with a 3-member etcd (one member each on A, B and C) and the
 * documented defaults (TTL 10 s, loop 2 s, retry 4 s, failsafe). With the quorum on, promote takes the leader
 * key only once the killed master's lease has ended: up to a TTL after its last renewal. Between modes both
 * configs are rewritten and both daemons restarted; a stale key from an earlier "on" round is deleted before
 * the next one, and that round starts once the serving master's daemon holds the key.
 */
export async function failoverQuorumCase(ctx: BenchContext): Promise<CaseResult> {
  const order: boolean[] = [];
  for (let k = 0; k < ctx.reps; k++) order.push(...(k % 2 === 0 ? [false, true] : [true, false]));
  const result = {
    id: 'failover-quorum',
    title: `VIP failover end to end with the etcd quorum lease on against off (ucarp, 3 namespaces, 3 etcd members, TTL ${TTL} s): kill → first client write, ${ctx.reps} rounds each`,
    target: { text: `quorum on ≤ off + TTL (${TTL} s)` },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  const keyDir = await fs.mkdtemp(path.join(ctx.runDir, 'quorum-keys-'));
  const keyFile = path.join(keyDir, 'failsafe.key');
  await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const quorumDoc = (m: Machine, l: FailoverLab) => ({
    quorum: {
      name: l.masterName(m),
      etcd: {
        endpoints: [l.A, l.B, l.C].map((x) => `http://${x.ip}:2379`),
        prefix: path.dirname(KEY),
        ttlSeconds: TTL,
        loopWaitSeconds: 2,
        retryTimeoutSeconds: 4,
      },
      failsafe: { port: 9482, keyFile },
    },
  });
  const lab = await FailoverLab.start({
    prefix: PREFIX,
    vip: `${PREFIX}.100`,
    metaloggerLocal: true,
    promoteOnVip: true,
    tag: 'bq',
  });
  const etcd = EtcdCluster.start([lab.A, lab.B, lab.C], lab.dir);
  const rounds: { on: boolean; r: FailoverRound }[] = [];
  try {
    await waitFor('etcd to answer', async () => (await etcd.get(lab.C, KEY)) !== undefined, 30_000);
    await lab.prepareRounds('mfs-jobs');
    await lab.startDaemon(lab.A);
    let on = false;
    const written = new Map<string, string>();
    for (const [i, want] of order.entries()) {
      if (want !== on) {
        on = want;
        await lab.rewriteConfigs(on ? quorumDoc : undefined);
        for (const m of [lab.A, lab.B]) await lab.daemons.get(m)?.stop();
        if (on) await etcd.del(lab.C, KEY);
        for (const m of [lab.A, lab.B]) await lab.startDaemon(m);
      }
      const serving = lab.masterName(lab.serving());
      if (on)
        await waitFor(
          `${serving}'s daemon to hold the key`,
          async () => (await etcd.get(lab.C, KEY)) === serving,
          30_000,
        );
      const r = await lab.failoverRound('mfs-jobs', 'mfs-jobs', written, `bq-${i + 1}`);
      if (r.promote?.status !== 'OK')
        throw new Error(`round ${i + 1}: promote ${r.promote?.status}: ${r.promote?.summary}`);
      ctx.log(
        `failover-quorum round ${i + 1}/${order.length} (quorum ${on ? 'on' : 'off'}, on ${r.standby}): VIP ${r.vipSeconds.toFixed(2)} s, first write ${r.firstWriteSeconds.toFixed(2)} s`,
      );
      rounds.push({ on, r });
    }
  } finally {
    await etcd.kill9();
    const leftovers = await lab.stop();
    if (leftovers.length) ctx.log(`failover-quorum lab left ${leftovers.join(', ')}`);
    await fs.rm(keyDir, { recursive: true, force: true });
  }
  const sample = (x: { r: FailoverRound }) => ({ seconds: x.r.firstWriteSeconds, code: 0, stdout: '', stderr: '' });
  const subject = summarize(
    'quorum on (etcd lease, TTL 10 s)',
    'quorum: in both configs',
    rounds.filter((x) => x.on).map(sample),
  );
  const baseline = summarize('quorum off', 'no quorum: (today’s probes only)', rounds.filter((x) => !x.on).map(sample));
  for (const on of [false, true]) {
    const own = new FigureSamples();
    for (const x of rounds.filter((y) => y.on === on))
      own.add({ rtoSeconds: x.r.promote?.details?.rtoSeconds, quorumMs: x.r.promote?.details?.timings?.quorumMs });
    for (const [k, v] of Object.entries(own.medians(0))) result.figures[`${k}${on ? 'On' : 'Off'}`] = v;
  }
  result.figures.priceSeconds = Math.round((subject.medianSeconds - baseline.medianSeconds) * 100) / 100;
  result.notes.push(
    'seconds from kill -9 to the first fsynced write through the client’s old mount; priceSeconds = median on − median off; rtoSeconds*: promote’s own report (VIP added → master serving), quorumMs*: what the key took (waiting out the killed master’s lease)',
    `per round: ${rounds.map((x) => `${x.on ? 'Q' : '-'} ${x.r.firstWriteSeconds.toFixed(2)}`).join(', ')}`,
  );
  const met = subject.medianSeconds <= baseline.medianSeconds + TTL;
  return { ...verdict({ ...result, status: 'measured', subject, baseline }), met };
}
