import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { Lab } from '../lab/cluster.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { must, stageSource } from './stage.js';

const installed = async (pkg: string) =>
  (await execCapture('dpkg-query', ['-W', '-f=${Status}', pkg])).stdout.includes('install ok installed');

/**
 * Installed as an operator installs it on Debian: `npm run package:deb`, `dpkg -i`, the unit checked by
 * `systemd-analyze verify`, a job run through /usr/bin/mfs-jobs against a real master, `dpkg --purge`.
 */
describe('the Debian package: build, dpkg -i, run, purge', () => {
  let tmp: string;
  let deb: string;
  let lab: Lab;
  let weInstalled = false;

  beforeAll(async () => {
    // Never purge a package someone else installed on this machine.
    if (await installed('mfs-jobs'))
      throw new Error(
        'mfs-jobs is already installed as a Debian package here: this test installs and purges its own; remove it first (dpkg --purge mfs-jobs)',
      );
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-deb-'));
    deb = (
      await must('bash', [path.join(REPO_ROOT, 'scripts', 'package-deb.sh'), tmp], {
        cwd: REPO_ROOT,
        timeoutMs: 600_000,
      })
    ).stdout
      .trim()
      .split('\n')
      .pop()!;
    lab = await Lab.start({ metalogger: false, sshd: false, mount: false });
  }, 900_000);
  afterAll(async () => {
    await lab?.stop();
    if (weInstalled) await must('dpkg', ['--purge', 'mfs-jobs']);
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  test('is named for the version, Architecture all, Depends nodejs (>= 20) and zstd, Recommends the MooseFS and OpenSSH tools', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(path.basename(deb)).toBe(`mfs-jobs_${pkg.version}_all.deb`);
    const field = async (f: string) => (await must('dpkg-deb', ['-f', deb, f])).stdout.trim();
    expect(await field('Version')).toBe(pkg.version);
    expect(await field('Architecture')).toBe('all');
    expect(await field('Depends')).toBe('nodejs (>= 20), zstd');
    expect((await field('Recommends')).split(/,\s*/)).toEqual(
      expect.arrayContaining(['moosefs-cli', 'moosefs-master', 'openssh-client']),
    );
    // invented_homepage_and_maintainer: no Homepage naming a repository that does not exist (package.json
    // names none); the Maintainer is whoever built it, never root@localhost.
    expect(await field('Homepage')).toBe('');
    expect(await field('Maintainer')).toMatch(/^.+ <[^@\s]+@[^@\s>]+>$/);
    expect(await field('Maintainer')).not.toContain('@localhost>');
    const files = (await must('dpkg-deb', ['-c', deb])).stdout
      .split('\n')
      .map((l) => l.split(/\s+/).slice(5).join(' '));
    expect(files.filter((f) => f.endsWith('.node'))).toEqual([]);
    const own = files.filter(
      (f) => f.startsWith('./usr/lib/mfs-jobs/') && !f.startsWith('./usr/lib/mfs-jobs/node_modules/'),
    );
    expect(own).toEqual(
      expect.arrayContaining([
        './usr/lib/mfs-jobs/bin/mfs-jobs',
        './usr/lib/mfs-jobs/dist/bin/cli.js',
        './usr/lib/mfs-jobs/dist/bundle/cli/cli.js',
        './usr/lib/mfs-jobs/dist/bundle/cli/cli.cjs',
        './usr/lib/mfs-jobs/dist/bundle/cli/cli.cjs.cache',
        './usr/lib/mfs-jobs/package.json',
      ]),
    );
    expect(own.filter((f) => /\/dist\/(test|bench|scripts)\/|\.ts$|\.map$/.test(f))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['./usr/lib/mfs-jobs/node_modules/commander/package.json']));
    expect(files.filter((f) => /\/node_modules\/(jest|typescript|@types\/(jest|node))\//.test(f))).toEqual([]);
  });

  test('dpkg -i installs it; the unit verifies and runs /usr/bin/mfs-jobs; the cron file starts nothing', async () => {
    // This machine's node is NodeSource's nodejs package (>= 20), so the Depends is met by dpkg itself;
    // were node installed outside dpkg, only --force-depends could install it (and the Depends line is
    // checked above on its own).
    const nodeFromDpkg = await installed('nodejs');
    const res = await execCapture('dpkg', ['-i', ...(nodeFromDpkg ? [] : ['--force-depends']), deb]);
    weInstalled = await installed('mfs-jobs');
    expect(`${res.stdout}${res.stderr}`).toContain('Setting up mfs-jobs');
    expect(res.code).toBe(0);
    expect(nodeFromDpkg).toBe(true);

    expect(await fs.readlink('/usr/bin/mfs-jobs')).toBe('../lib/mfs-jobs/bin/mfs-jobs');
    const conffiles = (await must('dpkg-query', ['-W', '-f=${Conffiles}', 'mfs-jobs'])).stdout;
    expect(conffiles).toMatch(/ \/etc\/mfs-jobs\/config\.yaml [0-9a-f]{32}/);
    expect(conffiles).toMatch(/ \/etc\/cron\.d\/mfs-jobs [0-9a-f]{32}/);
    expect(((await fs.stat('/etc/mfs-jobs/config.yaml')).mode & 0o777).toString(8)).toBe('640');

    const unit = '/lib/systemd/system/mfs-jobs.service';
    expect(await fs.readFile(unit, 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/mfs-jobs daemon$/m);
    const verify = await execCapture('systemd-analyze', ['verify', unit]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    // systemd-analyze verify really looks: the example unit's old /usr/local/bin path is refused.
    const wrong = path.join(tmp, 'mfs-jobs.service');
    await fs.writeFile(
      wrong,
      (await fs.readFile(unit, 'utf8')).replace('/usr/bin/mfs-jobs', '/usr/local/bin/mfs-jobs'),
    );
    const refused = await execCapture('systemd-analyze', ['verify', wrong]);
    expect(refused.stderr).toContain('Command /usr/local/bin/mfs-jobs is not executable');
    expect(refused.code).not.toBe(0);

    const cron = await fs.readFile('/etc/cron.d/mfs-jobs', 'utf8');
    const active = cron.split('\n').filter((l) => l.trim() && !l.startsWith('#') && !/^[A-Z_]+=/.test(l));
    expect(active).toEqual([]);
    expect(cron).toContain('# 7 * * * *    root  mfs-jobs run backup');

    for (const f of [
      'ucarp/vip-up.sh',
      'ucarp/vip-down.sh',
      'keepalived/keepalived.conf',
      'keepalived/mfs-jobs-notify.sh',
      'prometheus/mfs-jobs.rules.yml',
      'nagios/mfs-jobs.cfg',
    ]) {
      await expect(fs.stat(path.join('/usr/share/mfs-jobs/examples', f))).resolves.toBeTruthy();
    }
    expect((await fs.stat('/usr/share/mfs-jobs/examples/ucarp/vip-up.sh')).mode & 0o111).toBeTruthy();
    const notify = '/usr/share/mfs-jobs/examples/keepalived/mfs-jobs-notify.sh';
    expect((await fs.stat(notify)).mode & 0o111).toBeTruthy();
    expect(await fs.readFile(notify, 'utf8')).toContain('MFS_JOBS="${MFS_JOBS:-/usr/bin/mfs-jobs}"');
    expect((await execCapture('grep', ['-rl', '/usr/local/bin/mfs-jobs', '/usr/share/mfs-jobs/examples'])).stdout).toBe(
      '',
    );
    expect((await must('man', ['-w', 'mfs-jobs'])).stdout.trim()).toBe('/usr/share/man/man1/mfs-jobs.1.gz');
    const page = await execCapture('man', ['--warnings', '-P', 'cat', 'mfs-jobs'], {
      env: { ...process.env, MANWIDTH: '80' },
    });
    expect(page.stdout).toMatch(/^\s+mfs-jobs\s+-\s+back\s+up,\s+verify,\s+prune/m);
    expect(page.stderr).toBe('');
  });

  test('/usr/bin/mfs-jobs runs a job against a real master, and reads the packaged config', async () => {
    expect((await must('/usr/bin/mfs-jobs', ['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const config = await lab.writeConfig({ jobs: { 'check-master': { cliTimeoutSeconds: 5 } } });
    const expected = (await lab.master.info()).metadataVersion;
    const res = await execCapture('/usr/bin/mfs-jobs', ['run', 'check-master', '--config', config], {
      cwd: '/',
      timeoutMs: 60_000,
    });
    expect(res.stdout).toContain(
      `MFS CHECK-MASTER OK - master serves metadata version ${expected} | master_metadata_version=${expected} masters_up=1`,
    );
    expect(res.code).toBe(0);
    const jobs = await execCapture(
      '/usr/bin/mfs-jobs',
      ['list-jobs', '--json', '--config', '/etc/mfs-jobs/config.yaml'],
      { cwd: '/' },
    );
    expect(jobs.code).toBe(0);
    expect((JSON.parse(jobs.stdout) as { job: string }[]).map((j) => j.job)).toEqual(
      expect.arrayContaining(['check-master', 'backup', 'verify', 'prune', 'drill']),
    );
  });

  test('package_deb_without_git: a source tree without .git (GitHub\'s "Download source") builds the same package', async () => {
    const staged = await stageSource();
    try {
      await expect(fs.stat(path.join(staged, '.git'))).rejects.toThrow(/ENOENT/);
      const out = path.join(tmp, 'from-tarball');
      const built = (
        await must('bash', [path.join(staged, 'scripts', 'package-deb.sh'), out], { cwd: staged, timeoutMs: 600_000 })
      ).stdout
        .trim()
        .split('\n')
        .pop()!;
      expect(path.basename(built)).toBe(path.basename(deb));
      const names = async (file: string) =>
        (await must('dpkg-deb', ['-c', file])).stdout
          .split('\n')
          .map((l) => l.split(/\s+/).slice(5).join(' '))
          .sort();
      expect(await names(built)).toEqual(await names(deb));
    } finally {
      await fs.rm(staged, { recursive: true, force: true });
    }
  }, 900_000);

  test('dpkg --purge removes the program and its conffiles', async () => {
    await must('dpkg', ['--purge', 'mfs-jobs']);
    weInstalled = false;
    for (const p of [
      '/usr/lib/mfs-jobs',
      '/usr/bin/mfs-jobs',
      '/etc/mfs-jobs',
      '/etc/cron.d/mfs-jobs',
      '/lib/systemd/system/mfs-jobs.service',
    ]) {
      await expect(fs.lstat(p)).rejects.toThrow(/ENOENT/);
    }
  });
});
