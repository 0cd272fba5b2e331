import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { Lab } from '../lab/cluster.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { must, packTarball, stageSource } from './stage.js';

/**
 * Installed as an operator installs it from npm: `npm pack` (prepack builds dist/), then
 * `npm install -g` of the tarball into a prefix of its own, and a job run from that install against a
 * real mfsmaster.
 */
describe('npm pack → npm install -g → mfs-jobs runs a job', () => {
  let tmp: string;
  let staged: string;
  let tarball: string;
  let lab: Lab;
  const prefix = () => path.join(tmp, 'prefix');

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-npm-'));
    staged = await stageSource();
    tarball = await packTarball(staged, tmp);
    lab = await Lab.start({ metalogger: false, sshd: false, mount: false });
  }, 600_000);
  afterAll(async () => {
    await lab?.stop();
    if (staged) await fs.rm(staged, { recursive: true, force: true });
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  test('the tarball holds the launcher and the built program, no tests, sources or maps', async () => {
    const list = (await must('tar', ['-tzf', tarball])).stdout.trim().split('\n');
    expect(list).toEqual(
      expect.arrayContaining([
        'package/package.json',
        'package/bin/mfs-jobs',
        'package/dist/bin/cli.js',
        'package/dist/bin/hand-off.js',
        'package/dist/bundle/cli/cli.js',
        'package/dist/bundle/cli/hand-off.js',
        'package/dist/bundle/cli/cli.cjs',
        'package/dist/bundle/cli/cli.cjs.cache',
        'package/dist/lib/core/metrics.js',
        'package/dist/jobs/index.js',
        'package/examples/config.yaml',
        'package/examples/prometheus/mfs-jobs.rules.yml',
        'package/examples/nagios/mfs-jobs.cfg',
        'package/packaging/mfs-jobs.1',
      ]),
    );
    expect(
      list.filter(
        (f) => f.startsWith('package/dist/test/') || f.startsWith('package/dist/bench/') || /\.(ts|map)$/.test(f),
      ),
    ).toEqual([]);
  });

  test('installs into a prefix and runs check-master against a real master', async () => {
    await must('npm', ['install', '-g', '--prefix', prefix(), '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      timeoutMs: 300_000,
    });
    const bin = path.join(prefix(), 'bin', 'mfs-jobs');
    expect(await fs.realpath(bin)).toBe(path.join(prefix(), 'lib', 'node_modules', 'mfs-jobs', 'bin', 'mfs-jobs'));
    const pkg = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = await execCapture(bin, ['--version'], { cwd: tmp });
    expect(version.stdout.trim()).toBe(pkg.version);
    await expect(fs.stat(path.join(prefix(), 'share', 'man', 'man1', 'mfs-jobs.1'))).resolves.toBeTruthy();

    const config = await lab.writeConfig({ jobs: { 'check-master': { cliTimeoutSeconds: 5 } } });
    const expected = (await lab.master.info()).metadataVersion;
    // Run from elsewhere than the repository, as cron would: nothing may come from the source tree.
    const res = await execCapture(bin, ['run', 'check-master', '--config', config], { cwd: tmp, timeoutMs: 60_000 });
    expect(res.stderr).not.toMatch(/cannot start/);
    expect(res.stdout).toContain(
      `MFS CHECK-MASTER OK - master serves metadata version ${expected} | master_metadata_version=${expected} masters_up=1`,
    );
    expect(res.code).toBe(0);
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_check_master.prom'), 'utf8');
    expect(prom).toContain(`mfs_jobs_metadata_version{job="check-master",master="master"} ${expected}`);
  });
});
