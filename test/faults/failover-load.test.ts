import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable } from '../../lib/core/table.js';
import { FailoverLab, sha256, type PromoteState } from '../lab/failover.js';
import type { Machine } from '../lab/netns.js';
import { Daemon, sleep, waitFor } from '../lab/proc.js';
import { iterations, SEED, seededRandom } from './faults.js';
import { printOwnRowsUnlessReported, recordFaults } from './results.js';
import { LedgerReader, type LedgerEntry } from './writer-client.js';

/**
 * Repeated failover under load: a client on C writes file after file through the VIP (each fsynced and
 * closed: acknowledged) while the serving master is killed -9 with its ucarp and its link, over and over,
 * A→B→A…; each time the other machine's ucarp takes the VIP and its up-script promotes it, and the dead
 * machine comes back as the standby. Afterwards every acknowledged file is read from a fresh mount.
 *
 * What must hold: every promotion OK and serving at least the metalogger's last version at the kill (no
 * restore point lost), the client writing again after each failover, and no acknowledged file lost whose
 * changes had reached the metalogger before the kill. Two kinds of file may not have reached it, and their
 * loss is reported with its versions, not hidden: one acknowledged in the last moments before a kill (the
 * master streams changes to metaloggers asynchronously), and one whose write was in flight at a kill and
 * acknowledged by the next master (its changes were split between the two).
 */

const VIP = '10.78.0.100';
const CYCLES = iterations('FAILOVER', 10, 30);
/** How long the writer gets to finish a write caught by the last kill (seen: about 130 s, and once over 230 s). */
const STALL_BOUND_MS = 200_000;
const WRITER = fileURLToPath(new URL('./writer-client.js', import.meta.url));

/** One look at the serving master's and the metalogger's versions. */
interface Sample {
  /** When the master was asked: every change acknowledged before this is in `master`. */
  at: number;
  /** The master's metadata version (its next change gets this number); undefined while none serves. */
  master: number | undefined;
  /** Last version in the metalogger's changelog, read after the master was asked. */
  metalogger: number | undefined;
}

interface Cycle {
  n: number;
  from: string;
  to: string;
  killedAt: number;
  /** Master, ucarp and link gone: a file acknowledged after this waited for the new master. */
  deadAt?: number;
  /** Last version the dying master reported before the kill. */
  masterAtKill: number | undefined;
  /** Last version on the metalogger once the master was dead. */
  metaloggerAtKill: number | undefined;
  promote?: PromoteState;
  vipMs?: number;
  servingMs?: number;
  clientMs?: number;
  /** Every check of this failover held. */
  survived: boolean;
}

interface Loss {
  entry: LedgerEntry;
  problem: string;
  /** The failover that followed the acknowledgement, else the one the write was in flight at (undefined: neither). */
  cycle: Cycle | undefined;
  /** The metalogger had the change before the kill: this loss must not happen. */
  reachedMetalogger: boolean;
}

/** Samples every ~250 ms until stopped; the serving machine changes as the test goes. */
class Sampler {
  readonly samples: Sample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(lab: FailoverLab, serving: () => Machine) {
    this.loop = (async () => {
      while (this.running) {
        const at = Date.now();
        const master = await lab
          .master(serving())
          .info()
          .then(
            (i) => i.metadataVersion,
            () => undefined,
          );
        const metalogger = await lab.metalogger!.lastVersion();
        this.samples.push({ at, master, metalogger });
        await sleep(250);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /**
   * The latest moment before `killedAt` up to which every acknowledged change had reached the metalogger:
   * a master sample taken then, and a later metalogger sample (still before the kill) at or past it.
   */
  coveredUntil(killedAt: number): number {
    const before = this.samples.filter((s) => s.at < killedAt);
    let covered = 0;
    for (const [i, s] of before.entries()) {
      if (s.master === undefined) continue;
      const last = s.master - 1;
      if (before.slice(i).some((u) => u.metalogger !== undefined && u.metalogger >= last)) covered = s.at;
    }
    return covered;
  }

  lastMasterBefore(t: number): number | undefined {
    return this.samples.filter((s) => s.at < t && s.master !== undefined).pop()?.master;
  }
}

describe('faults: repeated failover under client load', () => {
  let lab: FailoverLab;
  let writer: Daemon | undefined;

  beforeAll(async () => {
    lab = await FailoverLab.start({ prefix: '10.78.0', vip: VIP });
  }, 120_000);

  afterAll(async () => {
    await writer?.kill9().catch(() => undefined);
    if (lab) expect(await lab.stop()).toEqual([]);
    printOwnRowsUnlessReported();
  }, 120_000);

  test(
    `the serving master is killed ${CYCLES} times (A→B→A…) while a client writes through the VIP: nothing that reached the metalogger is lost`,
    async () => {
      const random = seededRandom(SEED + 9);
      const ml = lab.metalogger!;
      const ledger = path.join(lab.dir, 'writer.jsonl');
      const loadDir = path.join(lab.mount!.dir, 'load');
      await fs.mkdir(loadDir);
      writer = new Daemon(
        'writer-client',
        process.execPath,
        [WRITER, loadDir, ledger],
        path.join(lab.dir, 'writer.log'),
        { env: { ...process.env, UV_THREADPOOL_SIZE: '64' } },
      );
      const reader = new LedgerReader(ledger);
      const acked = async (since: number) =>
        (await reader.update()).filter((e) => e.ackAt !== undefined && e.ackAt > since).length;

      let serving = lab.A;
      let standby = lab.B;
      const sampler = new Sampler(lab, () => serving);
      const cycles: Cycle[] = [];
      let resumedAt = Date.now();
      // A failed check ends the failovers, but the files are still counted and the row still recorded.
      let failure: { err: unknown } | undefined;
      let writerStuck = false;
      try {
        for (let n = 1; n <= CYCLES; n++) {
          // Load on the serving master for a seeded while (so kills land at different points of a write).
          await waitFor('the client to write through the VIP', async () => (await acked(resumedAt)) >= 20, 60_000, 200);
          await sleep(1_000 + Math.round(random() * 3_000));

          const previous = await lab.readPromoteState(standby);
          const killedAt = Date.now();
          const cycle: Cycle = {
            n,
            from: serving.name.slice(-1),
            to: standby.name.slice(-1),
            killedAt,
            masterAtKill: sampler.lastMasterBefore(killedAt),
            metaloggerAtKill: undefined,
            survived: false,
          };
          cycles.push(cycle);
          await lab.crash(serving);
          cycle.deadAt = Date.now();
          await sleep(500);
          cycle.metaloggerAtKill = await ml.lastVersion();

          await waitFor(`VIP on ${standby.name}`, async () => (await standby.addresses()).includes(VIP), 30_000, 50);
          cycle.vipMs = Date.now() - killedAt;
          cycle.promote = await lab.waitPromoteAfter(standby, killedAt, previous, 90_000);
          cycle.servingMs = Date.now() - killedAt;
          expect(`${cycle.promote.status}: ${cycle.promote.summary}`).toMatch(
            /^OK: promoted: serving metadata version \d+ /,
          );
          [serving, standby] = [standby, serving];

          await waitFor(
            'the client to write again after the failover',
            async () => (await acked(killedAt)) >= 5,
            60_000,
            200,
          );
          resumedAt = Date.now();
          cycle.clientMs = resumedAt - killedAt;

          // The dead machine boots again as the standby; the VIP stays where it is; the metalogger follows the new master.
          await lab.reboot(standby, 100);
          await sleep(4_000);
          await lab.waitVipOnlyOn(serving);
          const promoted = cycle.promote.details?.metadataVersion ?? 0;
          await waitFor(
            `the metalogger to follow ${serving.name} past version ${promoted}`,
            async () => ((await ml.lastVersion()) ?? 0) >= promoted,
            60_000,
            200,
          );
          cycle.survived = true;
        }
      } catch (err) {
        failure = { err };
      } finally {
        // The writer finishes the files in flight first. One caught by the last kill can wait minutes for
        // MooseFS (seen: about 130 s) and cannot be killed meanwhile (a FUSE request already with mfsmount).
        // Past the bound it is left blocked (its ledger is fsynced line by line); the teardown's unmount ends it.
        writer.child.kill('SIGTERM');
        await writer.waitExit(STALL_BOUND_MS).catch(() => {
          writerStuck = true;
          writer!.child.kill('SIGKILL');
        });
        await sampler.stop();
      }

      // Every acknowledged file, read back from a mount started now.
      const fresh = await lab.freshMount('mnt-verify');
      const all = await reader.update();
      const entries = all.filter((e) => e.ackAt !== undefined);
      const coveredUntil = new Map(cycles.map((c) => [c, sampler.coveredUntil(c.killedAt)]));
      // The kill a file preceded is the first whose master died after the acknowledgement: one acknowledged
      // while crash() was under way (after killedAt, before deadAt) was the dying master's last word.
      const followingKill = (e: LedgerEntry) => cycles.find((c) => (c.deadAt ?? c.killedAt) > e.ackAt!);
      /**
       * The kill a write was in flight at: started before that master died, acknowledged after the kill by
       * the next one. Its changes were split between two masters; the old one's part may never have been sent.
       */
      const inFlightAt = (e: LedgerEntry) =>
        cycles.find((c) => e.startedAt < (c.deadAt ?? c.killedAt) && e.ackAt! > (c.deadAt ?? c.killedAt));
      /** Written whole on one master, and seen on the metalogger before the next kill (if any). */
      const reachedMetalogger = (e: LedgerEntry) => {
        if (inFlightAt(e)) return false;
        const cycle = followingKill(e);
        return cycle ? e.ackAt! <= coveredUntil.get(cycle)! : true;
      };
      /** Acknowledged before a kill and seen on the metalogger before it: the files the check below is about. */
      const confirmed = entries.filter((e) => followingKill(e) !== undefined && reachedMetalogger(e));
      const beforeLastKill = entries.filter((e) => followingKill(e) !== undefined);
      const losses: Loss[] = [];
      for (const entry of entries) {
        const data = await fs
          .readFile(path.join(fresh.dir, 'load', entry.name))
          .catch((err: NodeJS.ErrnoException) => err.code ?? err.message);
        const problem =
          typeof data === 'string'
            ? data === 'ENOENT'
              ? 'missing'
              : `unreadable (${data})`
            : sha256(data) !== entry.sha256
              ? `different (${data.length} bytes, ${entry.size} written)`
              : undefined;
        if (!problem) continue;
        const ino = (await fs.stat(path.join(fresh.dir, 'load', entry.name)).catch(() => undefined))?.ino;
        losses.push({
          entry,
          problem: `${problem}${ino ? `, inode ${ino}` : ''}`,
          cycle: followingKill(entry) ?? inFlightAt(entry),
          reachedMetalogger: reachedMetalogger(entry),
        });
      }
      // A loss is evidence: the masters' and the metalogger's files stay for reading.
      if (losses.length) lab.keepDir = true;

      const s = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(1));
      // Files in flight at a kill: how long the client waited for them, or the error it got.
      const stalls = (c: Cycle) => {
        const dead = c.deadAt ?? c.killedAt;
        const caught = all.filter((e) => e.startedAt < dead && (e.ackAt ?? Infinity) > dead);
        const waited = caught.filter((e) => e.ackAt !== undefined).map((e) => e.ackAt! - e.startedAt);
        const failed = caught.filter((e) => e.error).map((e) => e.error);
        return caught.length
          ? `${waited.length} acked${waited.length ? ` (max ${s(Math.max(...waited))} s)` : ''}${failed.length ? `, ${failed.length} failed (${[...new Set(failed)].join(', ')})` : ''}`
          : '0';
      };
      /** Where a write lies against the kills: "started 120 ms before kill 3 (in flight)". */
      const timeline = (e: LedgerEntry) =>
        cycles
          .map((c) => ({ c, before: c.killedAt - e.startedAt }))
          .filter(({ before }) => Math.abs(before) < 60_000)
          .map(
            ({ c, before }) =>
              `started ${before} ms before kill ${c.n}${inFlightAt(e) === c ? ' (in flight at it)' : ''}`,
          )
          .join('; ') || 'far from any kill';
      const lostVersions = cycles.filter(
        (c) =>
          c.promote?.details?.plan &&
          c.metaloggerAtKill !== undefined &&
          c.promote.details.plan.reached < c.metaloggerAtKill,
      );
      console.log(
        `repeated failover under load (seed ${SEED}): ${entries.length} files acknowledged, ${beforeLastKill.length} of them before a kill, ` +
          `${confirmed.length} of those seen on the metalogger before it; ${losses.length} lost\n` +
          formatTable(
            [
              'CYCLE',
              'FROM→TO',
              'MASTER AT KILL',
              'METALOGGER AT KILL',
              'PROMOTED TO',
              'RPO',
              'VIP MOVED',
              'SERVING',
              'CLIENT WRITES',
              'STALLED WRITES',
              'LOST FILES',
            ],
            cycles.map((c) => [
              String(c.n),
              `${c.from}→${c.to}`,
              String(c.masterAtKill ?? '-'),
              String(c.metaloggerAtKill ?? '-'),
              String(c.promote?.details?.plan?.reached ?? '-'),
              String(c.promote?.details?.rpo?.versions ?? '-'),
              `${s(c.vipMs)} s`,
              `${s(c.servingMs)} s`,
              `${s(c.clientMs)} s`,
              stalls(c),
              String(losses.filter((l) => l.cycle === c).length),
            ]),
          ) +
          losses
            .map(
              (l) =>
                `\nlost: ${l.entry.name} (${l.problem}), written from ${l.entry.startedAt} to ${l.entry.ackAt} (${timeline(l.entry)}), acknowledged ${l.cycle ? `${l.cycle.killedAt - l.entry.ackAt!} ms before kill ${l.cycle.n}` : 'after the last failover'}; ${l.reachedMetalogger ? 'its changes HAD reached the metalogger' : inFlightAt(l.entry) ? 'in flight at a kill' : 'its changes had not been seen on the metalogger'}; master at kill ${l.cycle?.masterAtKill ?? '-'}, metalogger ${l.cycle?.metaloggerAtKill ?? '-'}, promoted to ${l.cycle?.promote?.details?.plan?.reached ?? '-'}`,
            )
            .join(''),
      );

      const mustNotLose = losses.filter((l) => l.reachedMetalogger);
      recordFaults({
        area: 'failover',
        fault: 'kill -9 of the serving master under client load, A→B→A… (ucarp + promote)',
        injected: cycles.length,
        survived: cycles.filter((c) => c.survived).length,
        dataLost: losses.length,
        lostRestorePoints: lostVersions.length,
        note: `${entries.length} files acknowledged, ${confirmed.length} seen on the metalogger before a kill; of those lost: ${mustNotLose.length}${writerStuck ? `; a write still blocked ${STALL_BOUND_MS / 1000} s after the last kill` : ''}; seed ${SEED}`,
      });
      if (failure) throw failure.err;
      expect(cycles.filter((c) => !c.survived).map((c) => c.n)).toEqual([]);
      expect(
        lostVersions.map(
          (c) => `cycle ${c.n}: metalogger had ${c.metaloggerAtKill}, promoted to ${c.promote?.details?.plan?.reached}`,
        ),
      ).toEqual([]);
      expect(mustNotLose.map((l) => `${l.entry.name}: ${l.problem}`)).toEqual([]);
      expect(entries.length).toBeGreaterThan(CYCLES * 25);
      // The check above is only as good as the sampling behind it: most files must have been confirmed.
      expect(confirmed.length).toBeGreaterThan(beforeLastKill.length * 0.5);
    },
    CYCLES * 180_000 + STALL_BOUND_MS + 180_000,
  );
});
