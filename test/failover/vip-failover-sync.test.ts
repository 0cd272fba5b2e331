import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FailoverLab, sha256 as sha, writeDurably, type FailoverRound } from '../lab/failover.js';
import { waitFor } from '../lab/proc.js';

/**
 * The seed's hook form, for real (test/lab/failover.ts), with a default config and no daemon: ucarp's
 * up-script on the standby runs `mfs-jobs run promote` in the foreground and waits for it
 * (test/failover/vip-up-sync.sh). ucarp announces the VIP only once that script returns, so promote must
 * return as soon as its master serves and is confirmed — not after watching for the clients, who cannot
 * come back before the announcement (issue 24: 10 s of `clientsWaitSeconds` on every failover). The watch
 * goes on in a detached process, which records its result in the state directory and the textfile.
 */

const VIP = '10.83.0.100';
const ROUNDS = 2;

describe('virtual-IP failover with ucarp, the up-script waiting for `mfs-jobs run promote` (no daemon)', () => {
  let lab: FailoverLab;

  beforeAll(async () => {
    lab = await FailoverLab.start({ prefix: '10.83.0', vip: VIP });
    await lab.prepareRounds('mfs-jobs sync');
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.stop()).toEqual([]);
  }, 120_000);

  test(`${ROUNDS} rounds of kill -9 of the serving machine: the up-script returns once the master serves, the clients come back, the watcher records it, nothing acknowledged is lost`, async () => {
    const written = new Map<string, string>();
    const rounds: FailoverRound[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await lab.failoverRound('mfs-jobs sync', 'mfs-jobs sync', written, `sync-${i + 1}`);
      rounds.push(r);
      const p = r.promote!;
      expect(p.status).toBe('OK');
      expect(p.summary).toMatch(/^promoted: serving metadata version \d+ in [\d.]+ s from ml-c; RPO 0 versions$/);
      expect(p.details?.triggeredBy).toBe('hook');
      expect(await lab.lastHookPromoteLine(r.promoted)).toMatch(
        /^MFS PROMOTE OK - promoted: serving metadata version \d+/,
      );
      // The up-script returned within a few seconds of the master serving (its own start ≈ promote's hook call).
      const hook = (await lab.syncHookTimes(r.promoted))!;
      const rto = p.details!.rtoSeconds!;
      console.log(
        `round ${i + 1} on ${r.standby}: kill -9 → first client write ${r.firstWriteSeconds.toFixed(2)} s; up-script ran ${(hook.end - hook.start).toFixed(2)} s, promote served after ${rto} s`,
      );
      expect(hook.end - hook.start).toBeLessThan(rto + 3);
      // Promote did not wait for the clients: a detached watcher does.
      expect(p.details?.clients?.by).toBe('watcher');
      // The watcher's result lands in the state directory, tied to this promotion, and in the textfile.
      const clients = await waitFor(
        'the clients-back watcher to record its result',
        async () => {
          const s = await lab.readClientsState(r.promoted);
          return s?.details?.promotedAt === p.startedAt ? s : undefined;
        },
        30_000,
      );
      expect(clients.status).toBe('OK');
      expect(clients.details!.clients.mounts).toBeGreaterThanOrEqual(1);
      expect(clients.details!.clients.firstMountMs).toBeGreaterThan(0);
      const prom = await fs.readFile(
        path.join(lab.dir, r.promoted.name, 'textfile', 'mfs_jobs_promote_clients.prom'),
        'utf8',
      );
      expect(prom).toMatch(/^mfs_jobs_clients_back_seconds\{job="promote-clients"\} [\d.]+$/m);
      // check-standby on the promoted machine says it is the master now, and shows the clients' return.
      const check = await lab.runJobs(r.promoted, ['run', 'check-standby']);
      expect(check.stdout).toMatch(/^MFS CHECK-STANDBY OK - this machine's mfsmaster serves \(pid \d+/);
      expect(check.stdout).toContain("last promotion's clients: promotion of");
    }

    // Every acknowledged file, read from a freshly started second mount (no page cache of the first).
    const freshMount = await lab.freshMount('mnt-fresh');
    for (const [name, digest] of written) expect(sha(await fs.readFile(path.join(freshMount.dir, name)))).toBe(digest);
    const more = randomBytes(100_000);
    await writeDurably(path.join(lab.mount!.dir, 'new-after-failover'), more);
    expect(sha(await fs.readFile(path.join(freshMount.dir, 'new-after-failover')))).toBe(sha(more));
  }, 600_000);
});
