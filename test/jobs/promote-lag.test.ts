import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { execCapture } from '../../lib/core/exec.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { Daemon, freePort, waitFor } from '../lab/proc.js';
import { runCli } from '../helpers/cli.js';

/**
 * Issue #25 scenario 5 through the real job: the leader key's last report (what the old master's daemon
 * recorded in etcd) says the master was far ahead of every source; promote's lag gate refuses, `--force`
 * passes it. Dry runs: the gate stands before anything is changed, and a dry run goes through it too.
 */
const ETCD = '/usr/bin/etcd';

describe("promote: the lag gate with the leader key's report (real etcd, mfsmaster, metalogger)", () => {
  let lab: Lab;
  let etcd: Daemon | undefined;
  let config: string;

  beforeAll(async () => {
    await fs.access(ETCD).catch(() => {
      throw new Error(`${ETCD} is missing: install etcd-server (this suite never skips)`);
    });
    lab = await Lab.start({ metalogger: true, mount: true });
    const [client, peer] = [await freePort(), await freePort()];
    const endpoint = `http://127.0.0.1:${client}`;
    const p = `http://127.0.0.1:${peer}`;
    etcd = new Daemon(
      'etcd',
      ETCD,
      [
        '--name',
        'l',
        '--data-dir',
        path.join(lab.dir, 'etcd'),
        '--listen-client-urls',
        endpoint,
        '--advertise-client-urls',
        endpoint,
        '--listen-peer-urls',
        p,
        '--initial-advertise-peer-urls',
        p,
        '--initial-cluster',
        `l=${p}`,
      ],
      path.join(lab.dir, 'etcd.log'),
    );
    const standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    const quorum = {
      name: 'standby',
      etcd: {
        endpoints: [endpoint],
        prefix: '/mfs-jobs/lag',
        ttlSeconds: 5,
        loopWaitSeconds: 1,
        retryTimeoutSeconds: 2,
      },
    };
    const doc = lab.configDocument({
      standby: standbySection,
      quorum,
      jobs: { promote: { fenceTimeoutSeconds: 1, maximumLagVersions: 10 } },
    });
    config = path.join(lab.dir, 'promote-lag.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
    await lab.makeChanges('some', 5);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    const version = (await lab.master.info()).metadataVersion;
    await lab.master.kill9();
    // What the old master's daemon recorded while it held the key: 1000 versions further than the metalogger has.
    const report = JSON.stringify({ holder: 'master', metadataVersion: version + 1000, at: Date.now() });
    await waitFor(
      'etcd to take the report',
      async () =>
        (await execCapture('etcdctl', ['--endpoints', endpoint, 'put', '/mfs-jobs/lag/leader-report', report])).code ===
        0,
      20_000,
    );
  }, 120_000);

  afterAll(async () => {
    await etcd?.kill9();
    await lab?.stop();
  });

  test('(5) a restore point 1000 versions behind the report is refused; --force passes the gate', async () => {
    const refused = await runCli(['run', 'promote', '--config', config, '--dry-run']);
    expect(refused.stdout).toMatch(
      /^MFS PROMOTE CRITICAL - refusing to promote: lag gate: 1000 versions behind \(maximumLagVersions 10\): restore point \d+, newest \d+ by the leader key's last report \(master\); nothing changed \(--force overrides\)/,
    );
    expect(refused.code).toBe(2);
    const forced = await runCli(['run', 'promote', '--config', config, '--dry-run', '--force']);
    expect(forced.stdout).toMatch(/^MFS PROMOTE OK - dry run: would restore metadata version \d+ from ml1/);
    expect(forced.stdout).toMatch(/lag gate: 1000 versions behind/);
  }, 60_000);
});
