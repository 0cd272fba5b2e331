import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, LabMetalogger } from '../lab/moosefs.js';
import { FaultProxy, knownHostsAt } from '../lab/proxy.js';
import { crashProblems, describeRun } from './faults.js';
import { tearDownFaults } from './results.js';

/**
 * The failover hook with its only source (a metalogger holding a few-MB image) behind a faulty link:
 * dropped at once, cut mid-fetch, silent mid-fetch. Promote must give up within a bound a failover can live
 * with, say why in one line, and leave the standby's DATA_PATH as it found it (no half-placed
 * restore, no master started on partial files). With the link healthy again it promotes.
 */
describe("faults: the failover hook's source behind a faulty link", () => {
  let lab: Lab;
  let big: LabMaster;
  let ml: LabMetalogger;
  let standby: LabMaster;
  let proxy: FaultProxy;
  let config: string;
  let deadVersion: number;
  const rows: { fault: string; ok: boolean; note: string }[] = [];

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: false });
    big = await bigMaster(path.join(lab.dir, 'big'), 40_000);
    ml = await LabMetalogger.create(path.join(lab.dir, 'ml-big'), { host: '127.0.0.1', port: big.ports.ml });
    // The big master's history is all in its image: the metalogger has it once it downloaded it.
    await ml.start();
    deadVersion = (await big.info()).metadataVersion;
    await big.kill9();
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    proxy = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port });
    const doc = lab.configDocument({
      masters: [{ name: 'big', host: '127.0.0.1', dataPath: big.dataPath, cliPort: big.ports.cl }],
      metaloggers: [
        {
          name: 'ml-big',
          host: '127.0.0.1',
          dataPath: ml.dataPath,
          ssh: { port: proxy.port, knownHosts: await knownHostsAt(lab, proxy.port, 'proxy') },
        },
      ],
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      snapshotStore: undefined,
      jobs: { promote: { fenceTimeoutSeconds: 1 } },
    });
    // The dead master's DATA_PATH is no source here (no ssh settings for it): the metalogger alone.
    delete doc.ssh;
    (doc.metaloggers as Record<string, Record<string, unknown>>[])[0]!.ssh = {
      ...(lab.configDocument().ssh as object),
      port: proxy.port,
      knownHosts: await knownHostsAt(lab, proxy.port, 'proxy'),
    };
    config = path.join(lab.dir, 'promote.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
  });
  afterAll(async () => {
    const killStandbyMaster = async () => {
      const pid = await runningMasterPid(standby.dataPath);
      if (pid) process.kill(pid, 'SIGKILL');
    };
    await tearDownFaults([standby ? killStandbyMaster : undefined, proxy, ml, big, lab], rows);
  });

  async function promoteUnder(
    fault: string,
    faults: FaultProxy['faults'],
    bound: number,
    expected: RegExp,
  ): Promise<string[]> {
    proxy.faults = faults;
    const before = (await fs.readdir(standby.dataPath)).sort();
    const started = Date.now();
    const res: CliResult = await runCli(['run', 'promote', '--config', config], { timeoutMs: 180_000 });
    const seconds = (Date.now() - started) / 1000;
    const problems = crashProblems(res).map((p) => `${fault}: ${p}`);
    if (!expected.test(res.stdout)) problems.push(`${fault}: expected ${expected}, got: ${res.stdout.split('\n')[0]}`);
    if (seconds > bound) problems.push(`${fault}: took ${seconds.toFixed(1)} s, bound ${bound} s`);
    const after = (await fs.readdir(standby.dataPath)).sort();
    if (after.join() !== before.join())
      problems.push(`${fault}: DATA_PATH changed: ${before.join(', ')} → ${after.join(', ')}`);
    if (await runningMasterPid(standby.dataPath)) problems.push(`${fault}: a master runs on the standby`);
    console.log(`promote, ${fault} (${seconds.toFixed(1)} s): ${describeRun(res)}`);
    rows.push({
      fault: `promote: ${fault}`,
      ok: problems.length === 0,
      note: `${seconds.toFixed(1)} s, bound ${bound} s`,
    });
    return problems;
  }

  test("dropped at once, cut mid-fetch, silent mid-fetch: CRITICAL within a bound, nothing changed; healthy again: promoted at the dead master's version", async () => {
    const problems: string[] = [];
    const none = 'MFS PROMOTE CRITICAL - no usable metadata image on any source';
    problems.push(
      ...(await promoteUnder(
        'source connection dropped at once',
        { cutAfterBytes: 0 },
        15,
        new RegExp(
          `^${none} \\(ml-big: ml-big \\(127\\.0\\.0\\.1:\\d+\\): cannot connect over SSH: .*\\); nothing changed`,
        ),
      )),
    );
    problems.push(
      ...(await promoteUnder(
        'source cut mid-fetch (after 1 MB)',
        { cutAfterBytes: 1_000_000 },
        15,
        new RegExp(
          `^${none} \\(ml-big:metadata_ml\\.mfs\\.back: not used \\(.*connection lost \\(sshd stopped or the network dropped\\).*\\); nothing changed`,
        ),
      )),
    );
    problems.push(
      ...(await promoteUnder(
        'source link silent mid-fetch (after 1 MB)',
        { stallAfterBytes: 1_000_000 },
        45,
        new RegExp(
          `^${none} \\(ml-big:metadata_ml\\.mfs\\.back: not used \\(.*no answer for 15 s \\(SSH keepalive\\): the link went silent\\)\\); nothing changed`,
        ),
      )),
    );

    proxy.faults = {};
    const ok = await runCli(['run', 'promote', '--config', config]);
    if (!new RegExp(`^MFS PROMOTE OK - promoted: serving metadata version ${deadVersion} `).test(ok.stdout))
      problems.push(`healthy link: ${describeRun(ok)}`);
    expect(problems).toEqual([]);
  }, 180_000);
});
