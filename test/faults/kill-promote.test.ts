import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import {
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
 * SIGKILL of `mfs-jobs run promote` (the failover hook) at points spread over its run and at the
 * moments it changes the standby's DATA_PATH: staging made, moving aside, placing the image and the
 * changelogs, mfsmaster -a starting. Afterwards either no master runs, or one that serves exactly the
 * dead master's version; the next promote must end with the standby serving that version — never an
 * older one, never two masters.
 */

/** The standby's mfsmaster is daemonised by promote: end it by the PID in its lock (the standby "dies"). */
async function killStandby(dataPath: string): Promise<void> {
  const pid = await runningMasterPid(dataPath);
  if (pid === undefined) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(
    `standby mfsmaster ${pid} to exit`,
    async () => (await runningMasterPid(dataPath)) === undefined && (await processesIn(dataPath)).length === 0,
    10_000,
  );
}

describe('faults: SIGKILL of a running promote', () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  /** The dead master's last version: what every promotion must give back (the metalogger has it all). */
  let deadVersion: number;
  const served = () =>
    masterInfo({ host: '127.0.0.1', port: standby.ports.cl, timeoutMs: 3_000 }).then((i) => i.metadataVersion);

  beforeAll(async () => {
    lab = await Lab.start();
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const doc = lab.configDocument({
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      jobs: { promote: { fenceTimeoutSeconds: 1 } },
    });
    doc.metaloggers = (doc.metaloggers as Record<string, unknown>[]).map((m) => ({ ...m, ssh: doc.ssh }));
    delete doc.ssh;
    config = path.join(lab.dir, 'promote.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });

    await lab.makeChanges('imaged', 300);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 300);
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    deadVersion = (await lab.master.info()).metadataVersion;
    await lab.master.kill9();
  });
  afterAll(async () => {
    await tearDownFaults([standby ? () => killStandby(standby.dataPath).catch(() => undefined) : undefined, lab]);
  });

  const TIMED_KILLS = iterations('PROMOTE', 15, 40);

  test(
    "killed at many points: the next promote serves the dead master's version, never less, never two masters",
    async () => {
      const random = seededRandom(SEED + 2);
      const runMs = await shortestRun(async () => {
        const started = Date.now();
        const first = await runCli(['run', 'promote', '--config', config]);
        const ms = Date.now() - started;
        expect(describeRun(first)).toMatch(
          new RegExp(`^exit 0: MFS PROMOTE OK - promoted: serving metadata version ${deadVersion} `),
        );
        await killStandby(standby.dataPath);
        return ms;
      });

      const data = standby.dataPath;
      type Step = { delay?: number; on?: { match: RegExp; what: string; event?: 'change' } };
      const plan: Step[] = [
        ...spreadDelays(TIMED_KILLS, 100, runMs * 0.9, random).map((delay) => ({ delay })),
        { on: { match: /^\.mfs-jobs-staging-/, what: 'staging directory made' } },
        { on: { match: /^mfs-jobs-aside-/, what: 'moving the old DATA_PATH aside' } },
        { on: { match: /^metadata\.mfs\.back$/, what: 'metadata.mfs.back moved (aside or into place)' } },
        { on: { match: /^changelog\.1\.mfs$/, what: 'a changelog placed' } },
        { on: { match: /^\.mfsmaster\.lock$/, what: 'mfsmaster -a starting (writes its lock)', event: 'change' } },
      ];
      const planned = plan.length;
      const lateKills = { left: 5 };
      const failures: string[] = [];
      const log: string[] = [];
      let injected = 0;
      let survived = 0;
      let lostVersions = 0;
      for (const [i, step] of plan.entries()) {
        const args = ['run', 'promote', '--config', config];
        const began = Date.now();
        const killed: KilledRun = step.on
          ? await runAndKillOn(args, data, step.on.match, { event: step.on.event })
          : await runAndKill(args, step.delay!);
        replaceLateKill(plan, step, killed, Date.now() - began, random, lateKills);
        const when = step.on ? `on "${step.on.what}" (${killed.delayMs} ms)` : `after ${step.delay} ms`;
        const problems: string[] = [];
        if (killed.killed) injected++;
        else if (killed.result.code !== 0) problems.push(`unkilled run failed: ${describeRun(killed.result)}`);

        // A master the killed run already started may come up: then only at the dead master's version.
        let orphan = 'none';
        if (await runningMasterPid(data)) {
          const v = await waitFor('the orphaned master to serve', () => served().catch(() => undefined), 20_000).catch(
            () => undefined,
          );
          orphan = `serving ${v ?? 'nothing'}`;
          if (v !== deadVersion)
            problems.push(
              `after the kill: a master runs and serves ${v ?? 'nothing'}, the dead master had ${deadVersion}`,
            );
        }

        const next = await runCli(['run', 'promote', '--config', config, '--json']);
        const report = next.stdout ? (JSON.parse(next.stdout) as { status: string; summary: string }) : undefined;
        if (next.code !== 0 || report?.status !== 'OK') problems.push(`next promote: ${describeRun(next)}`);
        const version = await served().catch(() => undefined);
        if (version !== deadVersion) {
          problems.push(
            `after the next promote: the standby serves ${version ?? 'nothing'}, the dead master had ${deadVersion}`,
          );
          if (version !== undefined && version < deadVersion) lostVersions += deadVersion - version;
        }
        const pid = await runningMasterPid(data);
        const workers = await processesIn(data);
        // mfsmaster and its metadata-saving child may both work there; any other master would hold its own lock and fail.
        if (!pid || workers.some((w) => w !== pid && !isChildOf(w, pid)))
          problems.push(`after the next promote: processes in DATA_PATH ${workers.join(', ')}, master pid ${pid}`);

        if (killed.killed && problems.length === 0) survived++;
        log.push(
          `kill ${when}${killed.killed ? '' : ' (run had finished)'}: last log "${killed.lastLog}"; orphaned master: ${orphan}; next: ${report?.summary ?? describeRun(next)}${problems.length ? ` — ${problems.join('; ')}` : ''}`,
        );
        failures.push(...problems.map((p) => `iteration ${i} (kill ${when}): ${p}`));
        await killStandby(data);
      }
      console.log(
        `promote kills (seed ${SEED + 2}, run ${runMs} ms, dead master at version ${deadVersion}):\n${log.join('\n')}`,
      );
      recordFaults({
        area: 'kill -9',
        fault: 'mfs-jobs run promote',
        injected,
        survived,
        dataLost: lostVersions,
        lostRestorePoints: 0,
        note: `seed ${SEED + 2}; data lost = metadata versions`,
      });
      expect(failures).toEqual([]);
      expect(injected).toBeGreaterThanOrEqual(planned - 2);
    },
    120_000 + (TIMED_KILLS + 5) * 15_000,
  );
});

/** Is `pid` a child of `parent` (mfsmaster forks a child to store metadata)? */
function isChildOf(pid: number, parent: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent;
  } catch {
    return false;
  }
}
