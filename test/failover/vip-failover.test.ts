import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { FailoverLab, sha256 as sha, writeDurably, type FailoverRound, type Promoter } from '../lab/failover.js';
import { waitFor } from '../lab/proc.js';

/**
 * The redundant-master recipe, for real (test/lab/failover.ts): the serving machine dies (kill -9 of
 * mfsmaster, ucarp and its mfs-jobs daemon, link down); the other machine's ucarp runs its up-script.
 * Rounds alternate between the seed's up-script (bench/baseline/vip-up-seed.sh: cp the metalogger's
 * files, `mfsmaster -a`) and the shipped one (`mfs-jobs run promote`, which joins the promotion the
 * standby's daemon started when the VIP appeared, `standby.promoteOnVip`), in the same lab, each machine once with each: both RTOs side by side. Both read the
 * metalogger's DATA_PATH as a directory (the seed with `cp`, promote as a `local` source). The client
 * must carry on and lose nothing it was told was written, whichever script promoted. (The speed goal is
 * `npm run bench`'s failover case, with more rounds; this test prints the figures and checks the outcome.)
 */

const ROUNDS: Promoter[] = ['seed script', 'mfs-jobs', 'mfs-jobs', 'seed script'];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

describe('virtual-IP failover with ucarp in network namespaces: the seed script and mfs-jobs, alternating', () => {
  let lab: FailoverLab;
  const VIP = '10.77.0.100';

  beforeAll(async () => {
    lab = await FailoverLab.start({ prefix: '10.77.0', vip: VIP, metaloggerLocal: true, promoteOnVip: true });
    await lab.prepareRounds(ROUNDS[0]!);
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.stop()).toEqual([]);
  }, 120_000);

  test(`${ROUNDS.length} rounds of kill -9 of the serving machine: each script promotes, the client carries on, nothing acknowledged is lost`, async () => {
    const written = new Map<string, string>();
    const rounds: FailoverRound[] = [];
    const clientsOf = new Map<FailoverRound, { firstMountMs?: number; firstChunkserverMs?: number } | undefined>();
    for (const [i, promoter] of ROUNDS.entries()) {
      const r = await lab.failoverRound(promoter, ROUNDS[i + 1] ?? 'mfs-jobs', written, `round-${i + 1}`);
      if (promoter === 'mfs-jobs') {
        expect(r.promote?.status).toBe('OK');
        expect(r.promote?.summary).toMatch(
          /^promoted: serving metadata version \d+ in [\d.]+ s from ml-c; RPO 0 versions$/,
        );
        // The standby's daemon started it the moment the VIP landed (standby.promoteOnVip); the up-script's
        // own `run promote` joined that run and printed its result.
        expect(r.promote?.details?.triggeredBy).toBe('vip');
        // Its daemon held the clients' SYNs to the VIP until mfsmaster had started (lib/failover/syn-hold.ts).
        expect(r.promote?.details?.clientsHeld).toBe(true);
        expect(await lab.lastHookPromoteLine(r.promoted)).toMatch(
          /^MFS PROMOTE OK - promoted: serving metadata version \d+/,
        );
        // The daemon watched the clients come back after promote returned: C's mount and chunkserver
        // connected to the promoted master, recorded for this promotion.
        expect(r.promote?.details?.clients?.by).toBe('daemon');
        const recorded = await waitFor(
          'the clients-back result of this promotion',
          async () => {
            const c = await lab.readClientsState(r.promoted);
            return c?.details?.promotedAt === r.promote?.startedAt ? c : undefined;
          },
          30_000,
        );
        const clients = recorded.details?.clients;
        clientsOf.set(r, clients);
        expect(clients?.mounts).toBeGreaterThanOrEqual(1);
        expect(clients?.chunkservers).toBeGreaterThanOrEqual(1);
        expect(clients?.firstMountMs).toBeGreaterThan(0);
        expect(clients?.firstChunkserverMs).toBeGreaterThan(0);
      }
      rounds.push(r);
    }

    const s = (x: number) => x.toFixed(2);
    for (const [i, r] of rounds.entries()) {
      const c = clientsOf.get(r);
      const own = r.promote
        ? `; promote's own RTO ${r.promote.details?.rtoSeconds} s (ms: ${JSON.stringify(r.promote.details?.timings)}), clients back (ms after the hook): mount ${c?.firstMountMs ?? '-'}, chunkserver ${c?.firstChunkserverMs ?? '-'}`
        : '';
      console.log(
        `round ${i + 1} (${r.promoter} on ${r.standby}): kill -9 → VIP ${s(r.vipSeconds)} s, → first client write ${s(r.firstWriteSeconds)} s${own}`,
      );
    }
    const med = (p: Promoter) => median(rounds.filter((r) => r.promoter === p).map((r) => r.firstWriteSeconds));
    console.log(
      `kill -9 → first client write, median: seed script ${s(med('seed script'))} s, mfs-jobs ${s(med('mfs-jobs'))} s (${(med('mfs-jobs') / med('seed script')).toFixed(2)}×)`,
    );

    // Every acknowledged file, read from a freshly started second mount (no page cache of the first).
    const freshMount = await lab.freshMount('mnt-fresh');
    for (const [name, digest] of written) expect(sha(await fs.readFile(path.join(freshMount.dir, name)))).toBe(digest);
    // New writes succeed, and the fresh mount sees them.
    const more = randomBytes(100_000);
    await writeDurably(path.join(lab.mount!.dir, 'new-after-failover'), more);
    expect(sha(await fs.readFile(path.join(freshMount.dir, 'new-after-failover')))).toBe(sha(more));
  }, 600_000);

  test("a partition: the standby stops hearing the master's adverts while that master still serves — promote refuses, gives the VIP back, no second master starts, the clients carry on", async () => {
    const serving = lab.serving();
    const standby = serving === lab.A ? lab.B : lab.A;
    const before = await lab.readPromoteState(standby);
    const since = Date.now();
    await lab.deafToAdverts(standby, true);
    try {
      const p = await lab.waitPromoteAfter(standby, since, before);
      expect(p.status).toBe('CRITICAL');
      expect(p.summary).toMatch(
        new RegExp(
          `^refusing to promote: master-[ab] \\(${serving.ip.replace(/\./g, '\\.')}:9421\\) answers at metadata version \\d+ \\(split brain; --force overrides\\); virtual IP ${VIP.replace(/\./g, '\\.')} released here`,
        ),
      );
      expect(await runningMasterPid(lab.master(standby).dataPath)).toBeUndefined();
      await waitFor(
        'the VIP to be gone from the standby',
        async () => !(await standby.addresses()).includes(VIP),
        10_000,
      );
      // The live master keeps the VIP and its clients.
      expect(await serving.addresses()).toContain(VIP);
      const data = randomBytes(10_000);
      await writeDurably(path.join(lab.mount!.dir, 'during-partition'), data);
      expect(sha(await fs.readFile(path.join(lab.mount!.dir, 'during-partition')))).toBe(sha(data));
    } finally {
      await lab.deafToAdverts(standby, false);
    }
    await lab.waitVipOnlyOn(serving);
  }, 120_000);
});
