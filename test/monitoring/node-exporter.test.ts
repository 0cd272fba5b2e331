import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { execCapture } from '../../lib/core/exec.js';
import { METRIC_PREFIX, METRICS } from '../../lib/core/metrics.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { Daemon, freePort, waitFor } from '../lab/proc.js';
import { runCli } from '../helpers/cli.js';

const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';
const JOBS = ['check-master', 'backup', 'verify', 'prune', 'drill', 'restore', 'promote', 'demote'];

/** Metric families and their samples in the text exposition format: name → sample lines. */
function families(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const name = line.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)![0];
    out.set(name, [...(out.get(name) ?? []), line]);
  }
  return out;
}

/** node_exporter's log lines at warn or error level, but its note that it runs as root (the test does). */
function problems(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /level=(warn|error)|error gathering metrics/.test(l) && !/running as root user/.test(l));
}

function startExporter(dir: string, log: string, port: number): Daemon {
  return new Daemon(
    'prometheus-node-exporter',
    NODE_EXPORTER,
    [
      `--web.listen-address=127.0.0.1:${port}`,
      '--collector.disable-defaults',
      '--collector.textfile',
      `--collector.textfile.directory=${dir}`,
    ],
    log,
  );
}

async function scrapeOf(url: string): Promise<string> {
  return waitFor(
    'node_exporter to answer',
    async () => {
      const res = await fetch(url).catch(() => undefined);
      return res?.status === 200 ? res.text() : undefined;
    },
    30_000,
  );
}

/**
 * What the real monitoring reads: every job runs once in the lab with prometheus.textfileDir set, then
 * Debian's prometheus-node-exporter serves that directory through its textfile collector. A metric
 * whose HELP or type differs between two jobs' files is dropped by node_exporter with "error gathering
 * metrics" (the bug of issue 19); here that, a scrape error or a missing family fails the test.
 */
describe("node_exporter's textfile collector reads what every job wrote", () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  let exporter: Daemon | undefined;
  const textfileDir = () => path.join(lab.dir, 'textfile');

  beforeAll(async () => {
    await fs.access(NODE_EXPORTER).catch(() => {
      throw new Error(
        `${NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter (scripts/setup-debian.sh)`,
      );
    });
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const doc = lab.configDocument({
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      jobs: {
        backup: { sources: ['master'] },
        promote: { fenceTimeoutSeconds: 1 },
        'check-master': { cliTimeoutSeconds: 5 },
      },
    });
    config = path.join(lab.dir, 'monitoring.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
  }, 300_000);
  afterAll(async () => {
    await exporter?.stop();
    const pid = standby ? await runningMasterPid(standby.dataPath) : undefined;
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    await lab?.stop();
  });

  test('every job runs and writes its textfile', async () => {
    await lab.makeChanges('mon', 20);
    await lab.saveImage();
    // The metalogger downloads an image when it connects: promote then has one to restore from.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    const newest = await lab.makeChanges('mon-after-image', 10);
    const codes: Record<string, number | null> = {};
    for (const job of ['check-master', 'backup', 'verify', 'prune'])
      codes[job] = (await runCli(['run', job, '--config', config])).code;
    codes.drill = (await runCli(['run', 'drill', '--latest', '--config', config])).code;
    // Point in time: the files placed in a fresh DATA_PATH, not started (no second master to stop).
    const restore = await runCli([
      'run',
      'restore',
      '--latest',
      '--to-version',
      String(newest - 5),
      '--data-path',
      path.join(lab.dir, 'restored'),
      '--config',
      config,
    ]);
    expect(restore.stdout).toMatch(/^MFS RESTORE OK - .* restored into /);
    codes.restore = restore.code;
    // A failover: the master dies (its mount goes first: a FUSE mount of a dead master takes minutes to go).
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    await lab.master.kill9();
    const promote = await runCli(['run', 'promote', '--config', config]);
    expect(promote.stdout).toMatch(/^MFS PROMOTE (OK|WARNING) - promoted: serving metadata version \d+/);
    codes.promote = promote.code;
    codes.demote = (await runCli(['run', 'demote', '--config', config])).code;
    expect(codes).toEqual({
      'check-master': 0,
      backup: 0,
      verify: expect.any(Number),
      prune: 0,
      drill: 0,
      restore: 0,
      promote: expect.any(Number),
      demote: 0,
    });
    const files = (await fs.readdir(textfileDir())).filter((f) => f.endsWith('.prom')).sort();
    expect(files).toEqual(JOBS.map((j) => `mfs_jobs_${j.replace(/-/g, '_')}.prom`).sort());
  }, 600_000);

  test('node_exporter serves every family of every file, with no gathering or scrape error', async () => {
    const port = await freePort();
    const log = path.join(lab.dir, 'node-exporter.log');
    exporter = startExporter(textfileDir(), log, port);
    const url = `http://127.0.0.1:${port}/metrics`;
    const scrape = await scrapeOf(url);
    // A second scrape: node_exporter logs gathering errors per scrape.
    const again = await (await fetch(url)).text();
    expect(problems(await exporter.log())).toEqual([]);
    expect(scrape).toMatch(/^node_textfile_scrape_error 0$/m);
    expect(again).toMatch(/^node_textfile_scrape_error 0$/m);

    const served = families(scrape);
    const written = new Map<string, string[]>();
    for (const f of await fs.readdir(textfileDir())) {
      for (const [name, samples] of families(await fs.readFile(path.join(textfileDir(), f), 'utf8')))
        written.set(name, [...(written.get(name) ?? []), ...samples]);
    }
    const missing = [...written]
      .filter(([name, samples]) => (served.get(name)?.length ?? 0) !== samples.length)
      .map(([name]) => name);
    expect(missing).toEqual([]);
    // Every job's status, and the snapshot age that both backup and verify write (dropped before #19).
    for (const job of JOBS) expect(scrape).toMatch(new RegExp(`^mfs_jobs_last_status\\{job="${job}"\\} [0-3]$`, 'm'));
    expect(scrape).toMatch(/^mfs_jobs_snapshot_age_seconds\{job="verify"\} \d+$/m);
    expect(scrape).toMatch(/^mfs_jobs_snapshot_age_seconds\{job="backup",source="master"\} \d+$/m);
    expect(scrape).toMatch(/^mfs_jobs_lag_versions\{job="verify",metalogger="ml1"\} \d+$/m);
    expect(scrape).toMatch(/^mfs_jobs_rto_seconds\{job="drill"\} [\d.]+$/m);
    expect(scrape).toMatch(/^mfs_jobs_rto_seconds\{job="promote"\} [\d.]+$/m);
    expect(scrape).toMatch(/^mfs_jobs_stop_seconds\{job="demote"\} [\d.]+$/m);
    expect(scrape).toMatch(/^mfs_jobs_restored_version\{job="restore"\} \d+$/m);
    expect(scrape).toMatch(/^mfs_jobs_restored_version\{job="drill"\} \d+$/m);
    // What node_exporter serves carries the registry's HELP and TYPE.
    for (const name of served.keys()) {
      if (!name.startsWith(METRIC_PREFIX)) continue;
      const spec = METRICS[name.slice(METRIC_PREFIX.length) as keyof typeof METRICS];
      expect(spec).toBeDefined();
      expect(scrape).toContain(`# HELP ${name} ${spec.help}\n# TYPE ${name} ${spec.type}\n`);
    }

    // promtool lints the whole scrape (naming, HELP, units, counters), not each file alone.
    const scrapeFile = path.join(lab.dir, 'scrape.txt');
    await fs.writeFile(scrapeFile, scrape);
    const lint = await execCapture('sh', ['-c', 'promtool check metrics < "$1"', 'sh', scrapeFile]);
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
    expect(lint.code).toBe(0);
  }, 120_000);

  test('the check sees the bug of issue 19: two files giving one metric two HELPs', async () => {
    const dir = path.join(lab.dir, 'textfile-conflict');
    await fs.mkdir(dir);
    await fs.copyFile(path.join(textfileDir(), 'mfs_jobs_verify.prom'), path.join(dir, 'mfs_jobs_verify.prom'));
    await fs.writeFile(
      path.join(dir, 'old_backup.prom'),
      '# HELP mfs_jobs_snapshot_age_seconds Age of the newest snapshot of this source.\n# TYPE mfs_jobs_snapshot_age_seconds gauge\nmfs_jobs_snapshot_age_seconds{job="backup",source="master"} 5\n',
    );
    const port = await freePort();
    const forged = startExporter(dir, path.join(lab.dir, 'node-exporter-conflict.log'), port);
    try {
      await waitFor(
        'node_exporter to listen',
        async () => (await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined)) !== undefined,
        30_000,
      );
      await fetch(`http://127.0.0.1:${port}/metrics`);
      const seen = await waitFor(
        'the gathering error in the log',
        async () => problems(await forged.log()).find((l) => /mfs_jobs_snapshot_age_seconds/.test(l)),
        10_000,
      );
      expect(seen).toMatch(/error gathering metrics.*mfs_jobs_snapshot_age_seconds.*has help/);
    } finally {
      await forged.stop();
    }
  }, 60_000);
});
