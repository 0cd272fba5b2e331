import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FailoverLab, sha256 as sha, writeDurably, writeFiles } from '../lab/failover.js';
import type { LabMount } from '../lab/moosefs.js';
import type { Machine, NsMaster } from '../lab/netns.js';
import { waitFor } from '../lab/proc.js';

/**
 * The redundant-master recipe, for real (test/lab/failover.ts): A dies (kill -9 of mfsmaster and
 * ucarp, link down); B's ucarp runs the shipped up-script, which runs `bin/mfs-jobs run promote`.
 * The client must carry on and lose nothing it was told was written.
 */

describe('virtual-IP failover with ucarp in network namespaces', () => {
  let lab: FailoverLab;
  let A: Machine, B: Machine;
  let masterA: NsMaster;
  let standbyB: NsMaster;
  let mount: LabMount;
  const VIP = '10.77.0.100';

  beforeAll(async () => {
    lab = await FailoverLab.start({ prefix: '10.77.0', vip: VIP });
    [A, B] = [lab.A, lab.B];
    [masterA, standbyB, mount] = [lab.master(A), lab.master(B), lab.mount!];
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.stop()).toEqual([]);
  }, 120_000);

  test('kill -9 of A (master and ucarp, link down): B promotes via ucarp, the client carries on, nothing acknowledged is lost', async () => {
    // Files with content, each fsynced: acknowledged by MooseFS.
    const written = new Map<string, string>();
    await writeFiles(mount, 'before', 60, written);
    const target = (await masterA.info()).metadataVersion - 1;
    await waitFor(`metalogger to reach version ${target}`, async () => ((await lab.metalogger!.lastVersion()) ?? 0) >= target, 20_000);
    const lastPromoteBefore = await lab.readPromoteState(B);

    // A dies like a machine: master and ucarp killed, link down.
    const killedAt = Date.now();
    await lab.crash(A);

    await waitFor('VIP on B', async () => (await B.addresses()).includes(VIP), 30_000, 50);
    const vipAt = Date.now();
    const info = await waitFor('master on B to serve', async () => standbyB.info().catch(() => undefined), 60_000, 50);
    const servingAt = Date.now();
    const state = await lab.waitPromoteAfter(B, killedAt, lastPromoteBefore);
    expect(state.status).toBe('OK');
    expect(state.summary).toMatch(/^promoted: serving metadata version \d+ in [\d.]+ s from ml-c; RPO 0 versions$/);
    expect(state.details?.plan?.reached).toBeGreaterThanOrEqual(target + 1);
    expect(info.metadataVersion).toBeGreaterThanOrEqual(target + 1);

    // The client mount carries on: its first write through the VIP after the crash.
    const after = randomBytes(4096);
    await waitFor('a write through the old mount', async () => {
      await writeDurably(path.join(mount.dir, 'after-failover'), after);
      return true;
    }, 60_000, 200);
    const writeAt = Date.now();
    written.set('after-failover', sha(after));
    const s = (ms: number) => (ms / 1000).toFixed(2);
    console.log(
      `RTO (kill -9 of A at t=0): VIP on B ${s(vipAt - killedAt)} s, master on B serving ${s(servingAt - killedAt)} s, ` +
        `first client write ${s(writeAt - killedAt)} s; promote's own RTO ${state.details?.rtoSeconds} s (hook call to serving; ms: ${JSON.stringify(state.details?.timings)})`,
    );

    // Every acknowledged file, read from a freshly started second mount (no page cache of the first).
    const freshMount = await lab.freshMount('mnt-fresh');
    for (const [name, digest] of written) expect(sha(await fs.readFile(path.join(freshMount.dir, name)))).toBe(digest);

    // New writes succeed, and the fresh mount sees them.
    const more = randomBytes(100_000);
    await writeDurably(path.join(mount.dir, 'new-after-failover'), more);
    expect(sha(await fs.readFile(path.join(freshMount.dir, 'new-after-failover')))).toBe(sha(more));
  }, 180_000);
});
