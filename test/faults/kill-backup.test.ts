import path from 'node:path';
import { listSnapshots } from '../../lib/store/manifest.js';
import { runCli } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import { LabMount, type LabMaster } from '../lab/moosefs.js';
import { FaultProxy, knownHostsAt } from '../lab/proxy.js';
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
 * SIGKILL of `mfs-jobs run backup` at points spread over its whole run — start-up, SSH connect,
 * inventory, the image crawling over a throttled link, changelogs, finalising, retention — and over
 * a fast direct link (where finalising and retention are a larger share of the run). After each kill
 * the store may hold leftovers in .tmp but never a partial snapshot; the next run cleans up and
 * succeeds; every snapshot verifies; retention (keep the newest 3) never loses one of the newest.
 */

const KEEP = 3;

describe('faults: SIGKILL of a running backup', () => {
  let lab: Lab;
  let big: LabMaster;
  let mount: LabMount;
  let link: FaultProxy;
  let slowConfig: string;
  let fastConfig: string;
  const store = () => path.join(lab.dir, 'store');

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: false });
    big = await bigMaster(path.join(lab.dir, 'big'), 40_000);
    mount = await LabMount.mount(
      path.join(lab.dir, 'mnt-big'),
      { host: '127.0.0.1', port: big.ports.cl },
      path.join(lab.dir, 'mfsmount-big.log'),
    );
    link = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port }, { bytesPerSecond: 1_500_000 });
    const knownHosts = await knownHostsAt(lab, link.port, 'slow');
    const common = {
      snapshotStore: { path: store(), retention: { keepLast: KEEP, keepHourly: 0, keepDaily: 0, keepWeekly: 0 } },
      jobs: { backup: { snapshotOnNewChangelogs: true } },
    };
    slowConfig = await lab.writeConfig(
      { ...common, masters: [masterEntry('big', big, { port: link.port, knownHosts })] },
      'slow.yaml',
    );
    fastConfig = await lab.writeConfig({ ...common, masters: [masterEntry('big', big)] }, 'fast.yaml');
  });
  afterAll(async () => {
    await tearDownFaults([link, mount, big, lab]);
  });

  const slowRuns = iterations('BACKUP_SLOW', 8, 30);
  const fastRuns = iterations('BACKUP_FAST', 8, 30);

  test(
    'killed at many points: no partial snapshot, the next run cleans up and succeeds, nothing retained is lost',
    async () => {
      const random = seededRandom(SEED);
      // Calibrate: uninterrupted runs per link give the run time the kill points are spread over.
      let calibration = 0;
      const measure = async (config: string) => {
        const i = calibration++;
        await mount.makeChanges(`calibrate-${i}`, 1);
        const started = Date.now();
        const res = await runCli(['run', 'backup', '--config', config]);
        expect(describeRun(res)).toMatch(/^exit 0: MFS BACKUP OK/);
        return Date.now() - started;
      };
      const slowMs = await shortestRun(() => measure(slowConfig));
      const fastMs = await shortestRun(() => measure(fastConfig));
      type Step = { config: string; link: string; delay?: number; on?: { dir: string; match: RegExp; what: string } };
      const tmp = path.join(store(), '.tmp');
      const snaps = path.join(store(), 'snapshots');
      const plan: Step[] = [
        ...spreadDelays(slowRuns, 100, slowMs * 0.95, random).map((d) => ({
          config: slowConfig,
          link: 'slow',
          delay: d,
        })),
        ...spreadDelays(fastRuns, 100, fastMs * 0.95, random).map((d) => ({
          config: fastConfig,
          link: 'fast',
          delay: d,
        })),
        // The short windows a timer rarely hits, each caught the moment it opens.
        {
          config: fastConfig,
          link: 'fast',
          on: { dir: tmp, match: /^backup-snapshot-/, what: 'staging directory created' },
        },
        {
          config: fastConfig,
          link: 'fast',
          on: { dir: snaps, match: /^\d{8}T\d{6}Z-v\d+$/, what: 'snapshot renamed into place' },
        },
        {
          config: fastConfig,
          link: 'fast',
          on: { dir: tmp, match: /^backup-delete-/, what: 'retention renaming a snapshot out' },
        },
        {
          config: fastConfig,
          link: 'fast',
          on: { dir: tmp, match: /^backup-latest-/, what: 'new latest symlink made, not yet renamed' },
        },
      ];

      const seen = new Set((await listSnapshots(store(), {})).snapshots.map((s) => s.id));
      const planned = plan.length;
      const lateKills = { left: 5 };
      const failures: string[] = [];
      const log: string[] = [];
      let injected = 0;
      let survived = 0;
      let lost = 0;
      for (const [i, step] of plan.entries()) {
        await mount.makeChanges(`kill-${i}`, 1);
        const version = (await big.info()).metadataVersion;
        const args = ['run', 'backup', '--config', step.config];
        const began = Date.now();
        const killed: KilledRun = step.on
          ? await runAndKillOn(args, step.on.dir, step.on.match)
          : await runAndKill(args, step.delay!);
        replaceLateKill(plan, step, killed, Date.now() - began, random, lateKills);
        const when = step.on ? `on "${step.on.what}" (${killed.delayMs} ms)` : `after ${step.delay} ms`;
        const problems: string[] = [];
        if (killed.killed) injected++;
        else problems.push(...(killed.result.code === 0 ? [] : [`unkilled run failed: ${describeRun(killed.result)}`]));

        // Right after the kill: leftovers in .tmp are allowed, a partial snapshot is not.
        const after = await checkStore(store());
        for (const id of after.good) seen.add(id);
        problems.push(...after.problems.map((p) => `after the kill: ${p}`));
        const newest = [...seen].sort().slice(-KEEP);
        const missing = newest.filter((id) => !after.good.includes(id));
        lost += missing.length;
        problems.push(...missing.map((id) => `after the kill: retained snapshot ${id} is gone`));

        // The next run (direct link) must clean up and succeed, at the source's version or newer.
        const next = await runCli(['run', 'backup', '--config', fastConfig, '--json']);
        if (next.code !== 0) problems.push(`next run: ${describeRun(next)}`);
        const clean = await checkStore(store());
        for (const id of clean.good) seen.add(id);
        problems.push(...clean.problems.map((p) => `after the next run: ${p}`));
        if (clean.temps.length) problems.push(`after the next run: .tmp still holds ${clean.temps.join(', ')}`);
        if (clean.strays.length)
          problems.push(`after the next run: stray files in the store: ${clean.strays.join(', ')}`);
        const expected = [...seen].sort().slice(-KEEP);
        if (clean.good.join() !== expected.join())
          problems.push(
            `after the next run: store holds ${clean.good.join(', ')}, expected the newest ${KEEP}: ${expected.join(', ')}`,
          );
        const newestSnap = (await listSnapshots(store(), {})).snapshots.pop();
        if (!newestSnap || newestSnap.manifest.reachesVersion < version)
          problems.push(
            `after the next run: newest snapshot reaches ${newestSnap?.manifest.reachesVersion}, the source had ${version}`,
          );
        if (clean.latest !== expected[expected.length - 1])
          problems.push(`after the next run: latest is ${clean.latest}, expected ${expected[expected.length - 1]}`);

        if (killed.killed && problems.length === 0) survived++;
        log.push(
          `${step.link} link, kill ${when}${killed.killed ? '' : ' (run had finished)'}: last log "${killed.lastLog}"; store ${after.good.length} snapshots, .tmp ${after.temps.length}${problems.length ? ` — ${problems.join('; ')}` : ''}`,
        );
        failures.push(...problems.map((p) => `iteration ${i} (${step.link}, kill ${when}): ${p}`));
      }
      console.log(`backup kills (seed ${SEED}, slow run ${slowMs} ms, fast run ${fastMs} ms):\n${log.join('\n')}`);
      recordFaults({
        area: 'kill -9',
        fault: 'mfs-jobs run backup',
        injected,
        survived,
        dataLost: 0,
        lostRestorePoints: lost,
        note: `seed ${SEED}`,
      });
      expect(failures).toEqual([]);
      expect(injected).toBeGreaterThanOrEqual(planned - 2);
    },
    120_000 + (slowRuns + fastRuns + 5) * 15_000,
  );
});
