import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Lab } from '../lab/cluster.js';
import { sleep, waitFor } from '../lab/proc.js';
import { runCli, startCli } from '../helpers/cli.js';

describe('check-master against a real mfsmaster', () => {
  let lab: Lab;
  let config: string;

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, sshd: false });
    config = await lab.writeConfig({ jobs: { 'check-master': { cliTimeoutSeconds: 3 } } });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  test('prints OK with the real metadata version, writes state and a Prometheus textfile', async () => {
    await lab.makeChanges('cm', 5);
    const expected = (await lab.master.info()).metadataVersion;
    const res = await runCli(['run', 'check-master', '--config', config]);
    expect(res.stdout).toContain(`MFS CHECK-MASTER OK - master serves metadata version ${expected}`);
    expect(res.stdout).toMatch(new RegExp(`\\| master_metadata_version=${expected} masters_up=1`));
    expect(res.code).toBe(0);
    const state = JSON.parse(await fs.readFile(path.join(lab.dir, 'state', 'state', 'check-master.json'), 'utf8'));
    expect(state).toMatchObject({ job: 'check-master', status: 'OK', exitCode: 0 });
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_check_master.prom'), 'utf8');
    expect(prom).toContain(`mfs_jobs_metadata_version{job="check-master",master="master"} ${expected}`);
    expect(prom).toContain('mfs_jobs_last_status{job="check-master"} 0');
  });

  test('--json carries status, exit code and the version', async () => {
    const res = await runCli(['run', 'check-master', '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(report).toMatchObject({ job: 'check-master', status: 'OK', exitCode: 0 });
    expect(report.metrics.find((m: { name: string }) => m.name === 'metadata_version').value).toBe(
      (await lab.master.info()).metadataVersion,
    );
  });

  test('list-jobs shows the schedule, the next run in the configured zone and the last result', async () => {
    const cfg = await lab.writeConfig(
      { timezone: 'Europe/Warsaw', jobs: { 'check-master': { schedule: '*/5 * * * *' } } },
      'list.yaml',
    );
    await runCli(['run', 'check-master', '--config', cfg]);
    const res = await runCli(['list-jobs', '--config', cfg, '--json']);
    expect(res.code).toBe(0);
    const rows = JSON.parse(res.stdout);
    const cm = rows.find((r: { job: string }) => r.job === 'check-master');
    expect(cm.schedule).toBe('*/5 * * * *');
    expect(cm.nextRun).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d[05]:00\+0[12]:00$/);
    expect(cm.last.status).toBe('OK');
    const table = await runCli(['list-jobs', '--config', cfg]);
    expect(table.stdout).toMatch(/check-master\s+\*\/5 \* \* \* \*/);
  });

  test('two overlapping runs of the same job cannot both run', async () => {
    // Freeze the master so mfscli hangs until its timeout: the first run holds the lock meanwhile.
    process.kill(lab.master.pid!, 'SIGSTOP');
    try {
      const first = startCli(['run', 'check-master', '--config', config]);
      await waitFor('first run to take the lock', async () =>
        fs.stat(path.join(lab.dir, 'state', 'locks', 'check-master.lock')).then(() => true),
      );
      const second = await runCli(['run', 'check-master', '--config', config]);
      expect(second.stdout).toMatch(/UNKNOWN - skipped: job check-master is already running \(pid \d+/);
      expect(second.code).toBe(3);
      const firstResult = await first.done;
      expect(firstResult.stdout).toContain('CRITICAL');
    } finally {
      process.kill(lab.master.pid!, 'SIGCONT');
    }
  });

  test('a stale lock left by a killed run is taken over', async () => {
    const lock = path.join(lab.dir, 'state', 'locks', 'check-master.lock');
    await fs.writeFile(
      lock,
      JSON.stringify({ pid: 999_999_0, startedAt: '2026-01-01T00:00:00Z', job: 'check-master' }),
    );
    const res = await runCli(['run', 'check-master', '--config', config]);
    expect(res.code).toBe(0);
    await expect(fs.stat(lock)).rejects.toThrow();
  });

  test('bad input: one line naming the key, the file or the job, exit 3', async () => {
    const bad = path.join(lab.dir, 'bad.yaml');
    await fs.writeFile(bad, 'masters:\n  - name: m\n    host: 127.0.0.1\n    cliPort: "x"\n');
    const res = await runCli(['run', 'check-master', '--config', bad]);
    expect(res.code).toBe(3);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain('masters.0.cliPort');
    const unknown = await runCli(['run', 'no-such-job', '--config', config]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('unknown job "no-such-job"');
    const missing = await runCli(['run', 'check-master', '--config', path.join(lab.dir, 'nope.yaml')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/cannot read config file .*nope\.yaml/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });

  test('the daemon runs a job on a per-second schedule and stops cleanly on SIGTERM', async () => {
    const cfg = await lab.writeConfig(
      { stateDir: path.join(lab.dir, 'daemon-state'), jobs: { 'check-master': { schedule: '* * * * * *' } } },
      'daemon.yaml',
    );
    const d = startCli(['daemon', '--config', cfg]);
    const stateFile = path.join(lab.dir, 'daemon-state', 'state', 'check-master.json');
    const first = await waitFor(
      'a first scheduled run',
      async () => JSON.parse(await fs.readFile(stateFile, 'utf8')) as { finishedAt: string },
    );
    const second = await waitFor('a second scheduled run', async () => {
      const s = JSON.parse(await fs.readFile(stateFile, 'utf8')) as { finishedAt: string; status: string };
      return s.finishedAt !== first.finishedAt ? s : undefined;
    });
    expect(second.status).toBe('OK');
    d.child.kill('SIGTERM');
    const res = await d.done;
    expect(res.code).toBe(0);
    expect(res.stderr).toMatch(/daemon stop/);
    await sleep(10);
  });

  test('CRITICAL with exit 2 when the master is stopped', async () => {
    await lab.master.stop();
    const res = await runCli(['run', 'check-master', '--config', config]);
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/^MFS CHECK-MASTER CRITICAL - no master answers: .*does not answer/);
    await lab.master.start();
  });
});
