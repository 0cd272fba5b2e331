import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import {
  checkStore,
  describeRun,
  iterations,
  processesIn,
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
 * SIGKILL of `mfs-jobs run drill` at points spread over its run (start-up, copying the restore point
 * from the store or from the metalogger over SFTP, `mfsmaster -a`, waiting for it to serve, comparing,
 * stopping it). A killed drill may leave its daemonised scratch master running; the next drill must
 * stop it, succeed, and leave no scratch master and no scratch of an interrupted run behind. The store
 * it reads must not change.
 */
describe('faults: SIGKILL of a running drill', () => {
  let lab: Lab;
  let config: string;
  const scratchRoot = () => path.join(lab.dir, 'scratch');
  const store = () => path.join(lab.dir, 'snapshots');
  const scratches = async () =>
    (await fs.readdir(scratchRoot()).catch(() => [] as string[])).filter((n) => n.startsWith('drill-'));

  beforeAll(async () => {
    lab = await Lab.start();
    config = await lab.writeConfig({ jobs: { drill: { scratchDir: scratchRoot() } } });
    await lab.makeChanges('before-image', 200);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 50);
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    const backup = await runCli(['run', 'backup', '--config', config]);
    expect(describeRun(backup)).toMatch(/^exit 0: MFS BACKUP OK/);
  });
  afterAll(async () => {
    const killScratchMasters = async () => {
      for (const pid of await processesIn(scratchRoot())) process.kill(pid, 'SIGKILL');
    };
    await tearDownFaults([lab ? killScratchMasters : undefined, lab]);
  });

  const n = iterations('DRILL', 10, 25);

  test(
    'killed at many points: the next drill stops the leftover scratch master, succeeds, leaves nothing running',
    async () => {
      const random = seededRandom(SEED + 1);
      const before = await checkStore(store());
      const measure = async (source: string[]) => {
        const started = Date.now();
        const res = await runCli(['run', 'drill', ...source, '--config', config]);
        expect(describeRun(res)).toMatch(/^exit 0: MFS DRILL OK/);
        return Date.now() - started;
      };
      const sources = [['--latest'], ['--from', 'ml1']];
      const runMs = [await shortestRun(() => measure(sources[0]!)), await shortestRun(() => measure(sources[1]!))];
      type Step = { source: string[]; delay?: number; onScratch?: boolean };
      const plan: Step[] = [
        ...sources.flatMap((source, s) =>
          spreadDelays(n, 100, runMs[s]! * 0.85, random).map((delay) => ({ source, delay })),
        ),
        { source: sources[0]!, onScratch: true },
      ];
      const planned = plan.length;
      const lateKills = { left: 6 };
      const failures: string[] = [];
      const log: string[] = [];
      let injected = 0;
      let survived = 0;
      for (const [i, step] of plan.entries()) {
        const args = ['run', 'drill', ...step.source, '--config', config];
        const began = Date.now();
        const killed: KilledRun = step.onScratch
          ? await runAndKillOn(args, scratchRoot(), /^drill-/)
          : await runAndKill(args, step.delay!);
        replaceLateKill(plan, step, killed, Date.now() - began, random, lateKills);
        const when = step.onScratch ? `on "scratch created" (${killed.delayMs} ms)` : `after ${step.delay} ms`;
        const problems: string[] = [];
        if (killed.killed) injected++;
        else if (killed.result.code !== 0) problems.push(`unkilled run failed: ${describeRun(killed.result)}`);
        // A daemonised scratch master may outlive the kill (mfsmaster -a was already started).
        const orphans = await processesIn(scratchRoot());

        const next = await runCli(['run', 'drill', '--latest', '--config', config]);
        if (next.code !== 0) problems.push(`next drill: ${describeRun(next)}`);
        const running = await processesIn(scratchRoot());
        if (running.length)
          problems.push(`after the next drill: processes still working in the scratch root: ${running.join(', ')}`);
        const left = await scratches();
        if (left.length)
          problems.push(`after the next drill: scratch of an interrupted drill left behind: ${left.join(', ')}`);
        const storeNow = await checkStore(store());
        if (storeNow.problems.length || storeNow.good.join() !== before.good.join())
          problems.push(`the store changed: ${storeNow.problems.join('; ') || storeNow.good.join(', ')}`);

        if (killed.killed && problems.length === 0) survived++;
        log.push(
          `drill ${step.source.join(' ')}, kill ${when}${killed.killed ? '' : ' (run had finished)'}: last log "${killed.lastLog}"; ${orphans.length} process(es) left in the scratch root${problems.length ? ` — ${problems.join('; ')}` : ''}`,
        );
        failures.push(...problems.map((p) => `iteration ${i} (${step.source.join(' ')}, kill ${when}): ${p}`));
        // Never let one iteration's leftovers hide the next one's.
        for (const pid of running) process.kill(pid, 'SIGKILL');
        for (const d of left) await fs.rm(path.join(scratchRoot(), d), { recursive: true, force: true });
      }
      console.log(`drill kills (seed ${SEED + 1}, runs ${runMs.join(' / ')} ms):\n${log.join('\n')}`);
      recordFaults({
        area: 'kill -9',
        fault: 'mfs-jobs run drill',
        injected,
        survived,
        dataLost: 0,
        lostRestorePoints: 0,
        note: `seed ${SEED + 1}`,
      });
      expect(failures).toEqual([]);
      expect(injected).toBeGreaterThanOrEqual(planned - 2);
    },
    120_000 + (n * 2 + 6) * 20_000,
  );
});
