import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FailoverLab, SEED_UP, UP, sha256 as sha, writeDurably, writeFiles } from '../lab/failover.js';
import type { LabMount } from '../lab/moosefs.js';
import type { Machine } from '../lab/netns.js';
import { waitFor } from '../lab/proc.js';

/**
 * The redundant-master recipe, for real (test/lab/failover.ts): the serving machine dies (kill -9 of
 * mfsmaster, ucarp and its mfs-jobs daemon, link down); the other machine's ucarp runs its up-script.
 * Rounds alternate between the seed's up-script (bench/baseline/vip-up-seed.sh: cp the metalogger's
 * files, `mfsmaster -a`) and the shipped one (`mfs-jobs run promote`, handed to the standby's running
 * daemon), in the same lab, each machine once with each: both RTOs side by side. Both read the
 * metalogger's DATA_PATH as a directory (the seed with `cp`, promote as a `local` source). The client must carry on
 * and lose nothing it was told was written, whichever script promoted. (The speed goal itself is
 * `npm run bench`'s; this test prints the figures and checks the outcome.)
 */

type Method = 'seed script' | 'mfs-jobs';
const ROUNDS: Method[] = ['seed script', 'mfs-jobs', 'mfs-jobs', 'seed script'];
const SKEW = 50;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

describe('virtual-IP failover with ucarp in network namespaces: the seed script and mfs-jobs, alternating', () => {
  let lab: FailoverLab;
  let mount: LabMount;
  const VIP = '10.77.0.100';
  const script = (m: Method) => (m === 'seed script' ? SEED_UP : UP);

  beforeAll(async () => {
    lab = await FailoverLab.start({ prefix: '10.77.0', vip: VIP, metaloggerLocal: true });
    mount = lab.mount!;
    for (const m of [lab.A, lab.B]) await lab.startDaemon(m);
    // A real image first, as on any cluster older than a few minutes: a clean restart writes one, and the
    // metalogger downloads it when it connects (a new one holds only metadata_ml.tmp, which the seed's
    // `cp metadata_ml.mfs.back` would not find).
    await lab.master(lab.A).restart();
    await lab.metalogger!.stop();
    await lab.metalogger!.start({ wrap: lab.C.wrap });
    await waitFor('the metalogger to download the image', async () => fs.stat(path.join(lab.metalogger!.dataPath, 'metadata_ml.mfs.back')).then(() => true, () => false), 30_000);
    // Round 1's standby (B) gets round 1's up-script.
    await lab.switchUpScript(lab.B, SKEW, script(ROUNDS[0]!));
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.stop()).toEqual([]);
  }, 120_000);

  test(`${ROUNDS.length} rounds of kill -9 of the serving machine: each script promotes, the client carries on, nothing acknowledged is lost`, async () => {
    const written = new Map<string, string>();
    const rows: { round: number; method: Method; standby: string; vip: number; write: number; promote?: string }[] = [];
    let serving: Machine = lab.A;
    for (const [i, method] of ROUNDS.entries()) {
      const standby = serving === lab.A ? lab.B : lab.A;
      // Files with content, each fsynced: acknowledged by MooseFS, and on the metalogger.
      await writeFiles(mount, `round-${i + 1}`, 20, written);
      const target = (await lab.master(serving).info()).metadataVersion - 1;
      await waitFor(`metalogger to reach version ${target}`, async () => ((await lab.metalogger!.lastVersion()) ?? 0) >= target, 20_000);
      const lastPromote = await lab.readPromoteState(standby);

      const killedAt = Date.now();
      await lab.crash(serving);
      await waitFor(`VIP on ${standby.name}`, async () => (await standby.addresses()).includes(VIP), 30_000, 20);
      const vipAt = Date.now();
      // The client's first write through the VIP after the crash (its mount reconnects by itself).
      const after = randomBytes(4096);
      await waitFor('a write through the old mount', async () => {
        await writeDurably(path.join(mount.dir, `after-round-${i + 1}`), after);
        return true;
      }, 60_000, 50);
      const writeAt = Date.now();
      written.set(`after-round-${i + 1}`, sha(after));
      let promote: string | undefined;
      if (method === 'mfs-jobs') {
        const state = await lab.waitPromoteAfter(standby, killedAt, lastPromote);
        expect(state.status).toBe('OK');
        expect(state.summary).toMatch(/^promoted: serving metadata version \d+ in [\d.]+ s from ml-c; RPO 0 versions$/);
        expect(state.details?.plan?.reached).toBeGreaterThanOrEqual(target + 1);
        expect(state.details?.handedOff).toBe(true);
        promote = `promote's own RTO ${state.details?.rtoSeconds} s (ms: ${JSON.stringify(state.details?.timings)})`;
      }
      rows.push({ round: i + 1, method, standby: standby.name, vip: (vipAt - killedAt) / 1000, write: (writeAt - killedAt) / 1000, promote });

      // The dead machine boots again as the next round's standby, with that round's up-script.
      const next = ROUNDS[i + 1];
      await lab.reboot(serving, SKEW, { upScript: script(next ?? 'mfs-jobs'), daemon: true });
      await lab.waitVipOnlyOn(standby);
      await lab.chunkserverFollow(standby);
      serving = standby;
    }

    const s = (x: number) => x.toFixed(2);
    for (const r of rows) console.log(`round ${r.round} (${r.method} on ${r.standby}): kill -9 → VIP ${s(r.vip)} s, → first client write ${s(r.write)} s${r.promote ? `; ${r.promote}` : ''}`);
    const med = (m: Method) => median(rows.filter((r) => r.method === m).map((r) => r.write));
    console.log(`kill -9 → first client write, median: seed script ${s(med('seed script'))} s, mfs-jobs ${s(med('mfs-jobs'))} s (${(med('mfs-jobs') / med('seed script')).toFixed(2)}×)`);

    // Every acknowledged file, read from a freshly started second mount (no page cache of the first).
    const freshMount = await lab.freshMount('mnt-fresh');
    for (const [name, digest] of written) expect(sha(await fs.readFile(path.join(freshMount.dir, name)))).toBe(digest);
    // New writes succeed, and the fresh mount sees them.
    const more = randomBytes(100_000);
    await writeDurably(path.join(mount.dir, 'new-after-failover'), more);
    expect(sha(await fs.readFile(path.join(freshMount.dir, 'new-after-failover')))).toBe(sha(more));
  }, 600_000);
});
