import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { processAlive } from '../../lib/core/lock.js';
import { listening } from '../../lib/core/tcp-table.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { freePort, waitFor } from '../lab/proc.js';

/**
 * check-standby against a real loopback lab (Debian's 3.0.117: master, metalogger, mount, sshd) and a
 * standby mfsmaster.cfg of its own: a healthy standby is OK; each thing a promotion would trip over now —
 * a setting promote refuses, binaries that are not there, a port something else holds, a DATA_PATH its
 * MooseFS user cannot write, a source that does not answer — is named with its status before any failover.
 */
describe('check-standby: would a promotion succeed now?', () => {
  let lab: Lab;
  let standby: LabMaster;
  let base: Record<string, unknown>;

  /** A config over the lab's, with `standby` keys changed and the job's own section. */
  async function configWith(
    name: string,
    o: {
      standby?: Record<string, unknown>;
      metaloggers?: Record<string, unknown>[];
      jobs?: Record<string, unknown>;
    } = {},
  ): Promise<string> {
    const doc = structuredClone(base) as Record<string, Record<string, unknown> | unknown[]>;
    doc.standby = { ...(doc.standby as Record<string, unknown>), ...o.standby };
    if (o.metaloggers) doc.metaloggers = [...(doc.metaloggers as unknown[]), ...o.metaloggers];
    doc.jobs = { ...(doc.jobs as Record<string, unknown>), ...o.jobs };
    const file = path.join(lab.dir, `${name}.yaml`);
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return file;
  }

  const check = async (config: string) => {
    const res = await runCli(['run', 'check-standby', '--config', config, '--json']);
    return {
      code: res.code,
      report: JSON.parse(res.stdout) as {
        status: string;
        summary: string;
        lines: string[];
        details: {
          findings: { status: string; setting: string; text: string }[];
          promotion: { version: number } | null;
        };
        metrics: { name: string; value: number }[];
      },
    };
  };

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    await lab.makeChanges('imaged', 10);
    await lab.saveImage();
    // A metalogger downloads the image when it connects: a restart gives it a real one.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 10);
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    base = lab.configDocument({
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      jobs: { promote: { fenceTimeoutSeconds: 1 } },
    });
  }, 120_000);

  afterAll(async () => {
    const pid = standby ? await runningMasterPid(standby.dataPath) : undefined;
    if (pid) process.kill(pid, 'SIGKILL');
    await lab?.stop();
  });

  test('a healthy standby: OK, with the version a promotion would reach and how far behind the master it would start', async () => {
    const version = await lab.makeChanges('healthy', 3);
    const { code, report } = await check(await configWith('healthy'));
    expect(`${report.status}: ${report.summary}`).toMatch(
      new RegExp(
        `^OK: ready: a promotion now would restore metadata version ${version}, 0 version\\(s\\) / 0 s behind master with mfsmaster \\(MooseFS 3\\.0\\)$`,
      ),
    );
    expect(code).toBe(0);
    expect(report.details.promotion?.version).toBe(version);
    expect(report.metrics).toEqual(
      expect.arrayContaining([
        { name: 'standby_problems', value: 0 },
        { name: 'promotion_lag_versions', value: 0, warn: 100, crit: 1000 },
      ]),
    );
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_check_standby.prom'), 'utf8');
    expect(prom).toMatch(/^mfs_jobs_standby_problems\{job="check-standby"\} 0$/m);
    expect(prom).toMatch(/^mfs_jobs_promotion_version\{job="check-standby"\} \d+$/m);
  });

  test('a restore method the generation does not have: CRITICAL, naming standby.restoreMethod', async () => {
    const { code, report } = await check(await configWith('method', { standby: { restoreMethod: 'mfsmetarestore' } }));
    expect(report.status).toBe('CRITICAL');
    expect(code).toBe(2);
    expect(report.summary).toContain(
      'standby.restoreMethod is mfsmetarestore, but MooseFS 3.0 restores with mfsmaster-a',
    );
    expect(report.details.findings).toContainEqual(
      expect.objectContaining({ status: 'CRITICAL', setting: 'standby.restoreMethod' }),
    );
  });

  test("a DATA_PATH the cfg's WORKING_USER cannot write: CRITICAL, naming standby.dataPath and the user", async () => {
    const cfg = path.join(lab.dir, 'standby', 'mfsmaster-nobody.cfg');
    await fs.writeFile(
      cfg,
      (await fs.readFile(standby.configFile, 'utf8')).replace(/^WORKING_USER = .*$/m, 'WORKING_USER = nobody'),
    );
    const { code, report } = await check(await configWith('nobody', { standby: { masterConfig: cfg } }));
    expect(report.status).toBe('CRITICAL');
    expect(code).toBe(2);
    expect(report.summary).toContain(
      `standby.dataPath ${standby.dataPath} is not writable by the MooseFS user nobody (WORKING_USER in ${cfg})`,
    );
  });

  test("hook scripts keepalived's enable_script_security would disable (writable by others, a writable directory above, not executable): CRITICAL, naming each", async () => {
    const hooks = path.join(lab.dir, 'hooks');
    const open = path.join(lab.dir, 'hooks-open');
    await fs.mkdir(hooks, { mode: 0o755 });
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const script = '#!/bin/sh\nexit 0\n';
    const files: [string, number][] = [
      [path.join(hooks, 'group-writable.sh'), 0o775],
      [path.join(open, 'in-open-dir.sh'), 0o755],
      [path.join(hooks, 'not-executable.sh'), 0o644],
      [path.join(hooks, 'good.sh'), 0o755],
    ];
    for (const [file, mode] of files) {
      await fs.writeFile(file, script);
      await fs.chmod(file, mode);
    }
    const { code, report } = await check(
      await configWith('hooks', { standby: { hookScripts: files.map(([f]) => f) } }),
    );
    expect(report.status).toBe('CRITICAL');
    expect(code).toBe(2);
    const hookFindings = report.details.findings.filter((f) => f.setting.startsWith('standby.hookScripts.'));
    expect(hookFindings.map((f) => [f.setting, f.status])).toEqual([
      ['standby.hookScripts.0', 'CRITICAL'],
      ['standby.hookScripts.1', 'CRITICAL'],
      ['standby.hookScripts.2', 'CRITICAL'],
    ]);
    expect(hookFindings[0]!.text).toContain(`${files[0]![0]} is group-writable (mode 0775)`);
    expect(hookFindings[1]!.text).toContain(`${open} is world-writable (mode 0777)`);
    expect(hookFindings[2]!.text).toContain('is not executable by its owner (mode 0644)');
    // The installed example passes.
    const example = path.join(hooks, 'mfs-jobs-notify.sh');
    await fs.copyFile(path.join(REPO_ROOT, 'examples', 'keepalived', 'mfs-jobs-notify.sh'), example);
    await fs.chmod(example, 0o755);
    const ok = await check(await configWith('hooks-ok', { standby: { hookScripts: [example] } }));
    expect(`${ok.report.status}: ${ok.report.summary}`).toMatch(/^OK: ready: /);
  });

  test('binaries that are not there: CRITICAL, naming standby.mfsmasterBin', async () => {
    const { code, report } = await check(
      await configWith('nobin', { standby: { mfsmasterBin: '/nonexistent/sbin/mfsmaster' } }),
    );
    expect(report.status).toBe('CRITICAL');
    expect(code).toBe(2);
    expect(report.summary).toContain('standby.mfsmasterBin: /nonexistent/sbin/mfsmaster is missing or not executable');
  });

  test('a port the promoted master needs, taken by another (unprivileged) process: CRITICAL, naming the setting', async () => {
    const port = standby.ports.cl;
    const squatter: ChildProcess = spawn(
      'setpriv',
      [
        '--reuid',
        'nobody',
        '--regid',
        'nogroup',
        '--clear-groups',
        process.execPath,
        '-e',
        `require('net').createServer().listen(${port}, '127.0.0.1')`,
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitFor(`the squatter to listen on ${port}`, () => listening([port]), 10_000);
      const { code, report } = await check(await configWith('port'));
      expect(report.status).toBe('CRITICAL');
      expect(code).toBe(2);
      expect(report.summary).toContain(`port ${port} (MATOCL_LISTEN_PORT) is taken`);
      expect(report.details.findings).toContainEqual(
        expect.objectContaining({ setting: 'standby.masterConfig MATOCL_LISTEN_PORT' }),
      );
    } finally {
      squatter.kill('SIGKILL');
      await waitFor(
        'the squatter to go',
        async () => !processAlive(squatter.pid!) || !(await listening([port])),
        10_000,
      );
    }
  });

  test('a source that does not answer: WARNING, naming it and its config key', async () => {
    const closed = await freePort();
    const gone = { name: 'ml-gone', host: '127.0.0.1', dataPath: '/var/lib/mfs', ssh: { port: closed } };
    const { code, report } = await check(
      await configWith('gone', { metaloggers: [gone], jobs: { 'check-standby': { sourceTimeoutSeconds: 3 } } }),
    );
    expect(report.status).toBe('WARNING');
    expect(code).toBe(1);
    expect(report.summary).toMatch(
      /^a promotion now would need attention: source ml-gone \(metalogger\) is not reachable: /,
    );
    expect(report.details.findings).toContainEqual(
      expect.objectContaining({ status: 'WARNING', setting: 'metaloggers.1' }),
    );
  });

  test('standby.mirror on, but no daemon keeps the mirror: WARNING, naming standby.mirror', async () => {
    const { code, report } = await check(await configWith('mirror', { standby: { mirror: true } }));
    expect(report.status).toBe('WARNING');
    expect(code).toBe(1);
    expect(report.summary).toContain(
      `standby.mirror is on but ${path.join(lab.dir, 'state', 'state', 'mirror.json')} is missing`,
    );
    expect(report.details.findings).toContainEqual(
      expect.objectContaining({ status: 'WARNING', setting: 'standby.mirror' }),
    );
  });

  test('the metalogger falls behind the master: a promotion now would start behind it, WARNING naming the threshold', async () => {
    await lab.metalogger!.stop();
    try {
      await lab.mount!.makeChanges('unlogged', 10);
      const version = (await lab.master.info()).metadataVersion;
      const { code, report } = await check(
        await configWith('lag', { jobs: { 'check-standby': { lagVersionsWarn: 5 } } }),
      );
      expect(report.status).toBe('WARNING');
      expect(code).toBe(1);
      expect(report.summary).toMatch(
        new RegExp(
          `^a promotion now would need attention: it would start (\\d+) version\\(s\\) and [\\d.]+ s behind master \\(at version ${version}\\), over jobs\\.check-standby\\.lagVersionsWarn = 5$`,
        ),
      );
      const behind = Number(/start (\d+) version/.exec(report.summary)![1]);
      expect(behind).toBeGreaterThanOrEqual(10);
      expect(report.details.findings).toContainEqual(
        expect.objectContaining({ status: 'WARNING', setting: 'jobs.check-standby.lagVersionsWarn' }),
      );
      expect(report.metrics).toContainEqual({ name: 'promotion_lag_versions', value: behind, warn: 5, crit: 1000 });
    } finally {
      // Back to the master: what it missed arrives as changelog_ml_back (promote, next, reads that too).
      await lab.metalogger!.start();
    }
  });

  // Last: it kills the lab's master.
  test('promote returns without waiting for the clients; a detached watcher records them; check-standby and verify show it', async () => {
    const config = await configWith('promote', {
      jobs: { promote: { fenceTimeoutSeconds: 1, clientsWaitSeconds: 4 } },
    });
    await lab.mount!.unmount();
    await lab.master.kill9();
    const res = await runCli(['run', 'promote', '--config', config, '--json']);
    const returnedAt = Date.now();
    const report = JSON.parse(res.stdout) as {
      status: string;
      startedAt: string;
      details: { clients: { by: string; pid: number } };
    };
    expect(report.status).toBe('OK');
    expect(report.details.clients.by).toBe('watcher');
    const state = path.join(lab.dir, 'state', 'state', 'promote-clients.json');
    const recorded = await waitFor(
      'the watcher to record',
      async () => {
        const s = JSON.parse(await fs.readFile(state, 'utf8').catch(() => 'null')) as {
          status: string;
          summary: string;
          finishedAt: string;
          details: { promotedAt: string };
        } | null;
        return s?.details.promotedAt === report.startedAt ? s : undefined;
      },
      20_000,
    );
    // Promote's output was a pipe here (runCli reads it to its end): had the watcher held it open, the run
    // would have returned only after the watch.
    expect(returnedAt).toBeLessThan(Date.parse(recorded.finishedAt));
    // No mount reconnects to the standby's own ports here: none within the window, said as a WARNING.
    expect(recorded.status).toBe('WARNING');
    expect(recorded.summary).toContain('first mount none within 4 s');
    // Its work done, the watcher exits (it logged and flushed first).
    await waitFor('the watcher to exit', async () => !processAlive(report.details.clients.pid), 10_000);
    const log = await fs.readFile(path.join(lab.dir, 'state', 'promote-clients.log'), 'utf8');
    expect(log).toContain('first mount none within 4 s');
    const after = await check(config);
    expect(after.report.summary).toMatch(
      /^this machine's mfsmaster serves \(pid \d+, metadata version \d+\): it is the master, not standing by$/,
    );
    expect(after.report.lines.join('\n')).toContain(`last promotion's clients: promotion of ${report.startedAt}`);
    const verify = await runCli(['run', 'verify', '--config', config]);
    expect(verify.stdout).toContain(`last promotion's clients: promotion of ${report.startedAt}`);
  });
});
