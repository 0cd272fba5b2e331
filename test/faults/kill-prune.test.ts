import path from 'node:path';
import { listSnapshots } from '../../lib/store/manifest.js';
import { runCli } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import { LabMount, type LabMaster } from '../lab/moosefs.js';
import {
  checkStore,
  describeRun,
  iterations,
  replaceLateKill,
  runAndKill,
  runAndKillOn,
  SEED,
  seededRandom,
  shortestRun,
  spreadDelays,
  type KilledRun,
} from './faults.js';
import { recordFaults, tearDownFaults } from './results.js';

/**
 * SIGKILL of `mfs-jobs run prune` while it scans a snapshot store and takes released snapshots out
 * of it. Every snapshot still listed must verify (a snapshot goes whole or not at all), the newest
 * restore point prune retains must be there whatever happened, and the next prune finishes the job.
 */
const FILL = 4;

describe('faults: SIGKILL of a running prune', () => {
  let lab: Lab;
  let big: LabMaster;
  let mount: LabMount;
  let backupCfg: string;
  let pruneCfg: string;
  const store = () => path.join(lab.dir, 'store');
  let changes = 0;

  /** Backups until the store holds FILL snapshots (each after a change: a new restore point). */
  async function fill(): Promise<void> {
    while ((await listSnapshots(store(), {})).snapshots.length < FILL) {
      await mount.makeChanges(`fill-${changes++}`, 1);
      const res = await runCli(['run', 'backup', '--config', backupCfg]);
      if (res.code !== 0) throw new Error(`backup: ${describeRun(res)}`);
    }
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: false });
    big = await bigMaster(path.join(lab.dir, 'big'), 40_000);
    mount = await LabMount.mount(
      path.join(lab.dir, 'mnt-big'),
      { host: '127.0.0.1', port: big.ports.cl },
      path.join(lab.dir, 'mfsmount-big.log'),
    );
    const common = {
      masters: [masterEntry('big', big)],
      snapshotStore: {
        path: store(),
        compression: { type: 'none' },
        retention: { keepLast: 50, keepHourly: 0, keepDaily: 0, keepWeekly: 0 },
      },
    };
    backupCfg = await lab.writeConfig(
      { ...common, jobs: { backup: { snapshotOnNewChangelogs: true } } },
      'backup.yaml',
    );
    // Room for one snapshot (about 5 MiB each, stored plain: prune counts bytes on disk, and zstd would
    // make four fit): every run releases all but the newest.
    pruneCfg = await lab.writeConfig(
      { ...common, jobs: { prune: { keepRestorePoints: 1, maxTotalSizeMB: 7, minAgeMinutes: 0 } } },
      'prune.yaml',
    );
  });
  afterAll(async () => {
    await tearDownFaults([mount, big, lab]);
  });

  const n = iterations('PRUNE', 17, 40);

  test(
    'killed at many points: every listed snapshot verifies, the retained one is never lost, the next prune finishes',
    async () => {
      const random = seededRandom(SEED + 3);
      const runMs = await shortestRun(async () => {
        await fill();
        const started = Date.now();
        const calibrate = await runCli(['run', 'prune', '--config', pruneCfg]);
        const ms = Date.now() - started;
        expect(describeRun(calibrate)).toMatch(/^exit 0: MFS PRUNE OK - freed/);
        expect((await checkStore(store())).good).toHaveLength(1);
        return ms;
      });

      // Node's start-up is most of a prune of a small store: half the timed kills go to its last 40 %.
      const plan: { delay?: number; onTrash?: number }[] = [
        ...spreadDelays(Math.ceil(n / 2), 100, runMs * 0.6, random).map((delay) => ({ delay })),
        ...spreadDelays(Math.floor(n / 2), runMs * 0.6, runMs * 0.95, random).map((delay) => ({ delay })),
        // The first, second and third snapshot renamed out of snapshots/ (events: out of .tmp they go too).
        { onTrash: 1 },
        { onTrash: 3 },
        { onTrash: 5 },
      ];
      const planned = plan.length;
      const lateKills = { left: 5 };
      const failures: string[] = [];
      const log: string[] = [];
      let injected = 0;
      let survived = 0;
      let lost = 0;
      for (const [i, step] of plan.entries()) {
        await fill();
        const before = (await checkStore(store())).good;
        const newest = before[before.length - 1]!;
        const args = ['run', 'prune', '--config', pruneCfg];
        const began = Date.now();
        const killed: KilledRun = step.onTrash
          ? await runAndKillOn(args, path.join(store(), '.tmp'), /^prune-/, { nth: step.onTrash })
          : await runAndKill(args, step.delay!);
        replaceLateKill(plan, step, killed, Date.now() - began, random, lateKills);
        const when = step.onTrash ? `on trash event ${step.onTrash} (${killed.delayMs} ms)` : `after ${step.delay} ms`;
        const problems: string[] = [];
        if (killed.killed) injected++;
        else if (killed.result.code !== 0) problems.push(`unkilled run failed: ${describeRun(killed.result)}`);
        const after = await checkStore(store());
        problems.push(...after.problems.map((p) => `after the kill: ${p}`));
        if (!after.good.includes(newest)) {
          lost++;
          problems.push(`after the kill: the retained restore point ${newest} is gone`);
        }
        const next = await runCli(['run', 'prune', '--config', pruneCfg]);
        if (next.code !== 0) problems.push(`next prune: ${describeRun(next)}`);
        const clean = await checkStore(store());
        problems.push(...clean.problems.map((p) => `after the next prune: ${p}`));
        if (clean.good.join() !== newest)
          problems.push(`after the next prune: store holds ${clean.good.join(', ')}, expected ${newest}`);
        if (clean.temps.length) problems.push(`after the next prune: .tmp holds ${clean.temps.join(', ')}`);
        if (clean.latest !== newest) problems.push(`after the next prune: latest is ${clean.latest}`);
        if (killed.killed && problems.length === 0) survived++;
        log.push(
          `kill ${when}${killed.killed ? '' : ' (run had finished)'}: last log "${killed.lastLog}"; ${before.length} → ${after.good.length} snapshots (.tmp ${after.temps.length})${problems.length ? ` — ${problems.join('; ')}` : ''}`,
        );
        failures.push(...problems.map((p) => `iteration ${i} (kill ${when}): ${p}`));
      }
      console.log(`prune kills (seed ${SEED + 3}, run ${runMs} ms):\n${log.join('\n')}`);
      recordFaults({
        area: 'kill -9',
        fault: 'mfs-jobs run prune',
        injected,
        survived,
        dataLost: 0,
        lostRestorePoints: lost,
        note: `seed ${SEED + 3}`,
      });
      expect(failures).toEqual([]);
      expect(injected).toBeGreaterThanOrEqual(planned - 2);
    },
    120_000 + (n + 5) * 20_000,
  );
});
