import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LIBFAKETIME } from '../lab/clock.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { sleep, waitFor } from '../lab/proc.js';

/**
 * Issue #29's "wrong or misleading" messages, each against a real master, metalogger and mount on
 * loopback: trash times set through the mount with MooseFS's own tools, a metalogger that holds only its
 * bootstrap image, and the restore/drill runs an operator makes on a bad day.
 */

interface Report {
  status: string;
  exitCode: number;
  summary: string;
  lines: string[];
  details: Record<string, unknown> & {
    trash?: { seconds: number; basis: string; warning: string | null };
    leftOut?: { count: number; deletions: number };
    rpoSeconds?: number;
    source?: string;
  };
  metrics?: { name: string; value: number }[];
}

const report = (res: CliResult): Report => {
  try {
    return JSON.parse(res.stdout) as Report;
  } catch {
    throw new Error(`not JSON (exit ${res.code}): ${res.stdout}${res.stderr}`);
  }
};

/** The mfs-jobs process two hours from now (libfaketime; the monotonic clock stays real). */
const twoHoursLater = ['env', `LD_PRELOAD=${LIBFAKETIME}`, 'FAKETIME=+7200', 'FAKETIME_DONT_FAKE_MONOTONIC=1'];

describe.each<LabVersion>(['3.0.117', '4.59.2'])('operator messages on MooseFS %s (issue #29)', (version) => {
  const gen = labGeneration(version);
  const tool = (name: string) => (gen.prefix ? path.join(gen.prefix, 'bin', name) : name);
  let lab: Lab;
  let config: string;
  let imageVersion = 0;
  let targetVersion = 0;
  let targetTime = 0;
  let masterSnapshot = '';
  let mlSnapshot = '';
  let mlBackup: CliResult;
  let base: Record<string, unknown> = {};

  const cli = (args: string[], wrap?: string[]) => runCli([...args, '--config', config], { timeoutMs: 180_000, wrap });
  const changelog = () => fs.readFile(path.join(lab.master.dataPath, 'changelog.0.mfs'), 'latin1');
  /** The master's changelog on disk holds everything it served. */
  async function caughtUp(): Promise<number> {
    const v = (await lab.master.info()).metadataVersion;
    await waitFor(`changelog.0.mfs to reach version ${v - 1}`, async () =>
      (await changelog()).includes(`\n${v - 1}: `),
    );
    return v;
  }
  async function must(cmd: string, args: string[]): Promise<void> {
    const res = await execCapture(cmd, args, { timeoutMs: 30_000 });
    if (res.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${res.code}: ${res.stdout}${res.stderr}`);
  }
  const latestId = async () => path.basename(await fs.readlink(path.join(lab.dir, 'snapshots', 'latest')));
  async function emptyDir(name: string): Promise<string> {
    const dir = path.join(lab.dir, name);
    await fs.mkdir(dir, { mode: 0o700 });
    await fs.writeFile(path.join(dir, 'old-file'), 'before');
    return dir;
  }

  beforeAll(async () => {
    lab = await Lab.start({ lab: gen, sshd: false });
    const doc = lab.configDocument();
    const local = (entries: unknown) => (entries as Record<string, unknown>[]).map((e) => ({ ...e, local: true }));
    base = { masters: local(doc.masters), metaloggers: local(doc.metaloggers) };
    config = await lab.writeConfig({ ...base, jobs: { backup: { sources: ['master'] } } });
    const mlConfig = await lab.writeConfig({ ...base, jobs: { backup: { sources: ['ml1'] } } }, 'ml.yaml');

    await lab.makeChanges('early', 3);
    imageVersion = await lab.saveImage();
    const mnt = lab.mount!.dir;
    // Deleted long before the target, with a trash time of 0: history that the state restored no longer shows.
    await fs.writeFile(path.join(mnt, 'gone-long-ago'), '');
    await must(tool('mfssettrashtime'), ['0', path.join(mnt, 'gone-long-ago')]);
    await fs.rm(path.join(mnt, 'gone-long-ago'));
    for (const f of ['kept-2h', 'kept-600s']) await fs.writeFile(path.join(mnt, f), '');
    targetVersion = await caughtUp();
    await sleep(1_100);
    targetTime = Math.floor(Date.now() / 1000);
    await sleep(1_100);
    // After the target: trash times given the way an operator gives them, then the deletions.
    if (gen.generation.name === '4') await must(tool('mfssettrashretention'), ['2h', path.join(mnt, 'kept-2h')]);
    else await must(tool('mfssettrashtime'), ['7200', path.join(mnt, 'kept-2h')]);
    await must(tool('mfssettrashtime'), ['600', path.join(mnt, 'kept-600s')]);
    for (const f of ['kept-2h', 'kept-600s']) await fs.rm(path.join(mnt, f));
    await caughtUp();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    // The restore point is seconds newer than the target time (the drill's RPO must count from the target).
    await sleep(3_000);
    const backup = await cli(['run', 'backup']);
    expect({ code: backup.code, out: backup.stdout }).toMatchObject({ code: 0 });
    masterSnapshot = await latestId();
    // Then the metalogger, which holds only its bootstrap image until its first download (an hour at least).
    mlBackup = await runCli(['run', 'backup', '--config', mlConfig]);
    mlSnapshot = await latestId();
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
  });

  test('trash_time_unit_4x: SETTRASHTIME logs seconds (the master applies 4.x values in whole hours); restore compares the right trash time and warns an hour on', async () => {
    const text = await changelog();
    expect(text).toMatch(/\|SETTRASHTIME\(\d+,0,7200,0\)/);
    expect(text).toMatch(/\|SETTRASHTIME\(\d+,0,600,0\)/);
    // 4.59.2 keeps ceil(600 / 3600) = 1 hour (filesystem.c fs_univ_settrashretention); 3.0 keeps 600 s.
    const seconds = gen.generation.name === '4' ? 3_600 : 600;
    const dataPath = await emptyDir('trash-unit');
    const args = [
      'restore',
      '--snapshot',
      masterSnapshot,
      '--to-version',
      String(targetVersion),
      '--data-path',
      dataPath,
      '--dry-run',
      '--json',
    ];
    const now = report(await cli(args));
    expect(now.details.trash).toMatchObject({
      seconds,
      basis: expect.stringMatching(/^the smallest SETTRASHTIME among the changes left out \(version \d+: 600 s/),
      warning: null,
    });
    expect(now.details.leftOut!.deletions).toBeGreaterThanOrEqual(2);
    expect(now.status).toBe('OK');
    // Two hours on, files deleted after the target have outlived the 600 s / one-hour trash time.
    const res = await cli(args, twoHoursLater);
    const later = report(res);
    expect({ status: later.status, code: res.code }).toEqual({ status: 'WARNING', code: 1 });
    expect(later.details.trash!.warning).toMatch(
      new RegExp(
        `^the oldest deletion left out, version \\d+ at \\S+ \\(UNLINK\\), is \\d+ s old, more than the trash time ${seconds} s`,
      ),
    );
    expect(await fs.readdir(dataPath)).toEqual(['old-file']);
  });

  test('trash_verdict_same_state_same_verdict: nothing left out is OK, whatever trash time a file deleted long ago had', async () => {
    const dataPath = await emptyDir('trash-state');
    const res = await cli(
      ['restore', '--snapshot', masterSnapshot, '--data-path', dataPath, '--dry-run', '--json'],
      twoHoursLater,
    );
    const r = report(res);
    expect({ status: r.status, code: res.code, warning: r.details.trash!.warning }).toEqual({
      status: 'OK',
      code: 0,
      warning: null,
    });
    expect(r.lines).toContain('left out: nothing (the target is the newest version the restore point holds)');
    expect(r.lines).toContain(
      'trash: no deletion among the changes left out, so nothing comes back that the trash may have emptied',
    );
  });

  test('to_version_older_than_every_image: a DATA_PATH whose images are all newer says so like --to-time does', async () => {
    // A copy of the master's DATA_PATH without its bootstrap image: every image is newer than the target.
    const m1 = path.join(lab.dir, 'm1-data');
    await fs.mkdir(m1, { mode: 0o700 });
    await fs.copyFile(path.join(lab.master.dataPath, 'metadata.mfs.back'), path.join(m1, 'metadata.mfs.back'));
    for (const n of (await fs.readdir(lab.master.dataPath)).filter((x) => x.startsWith('changelog')))
      await fs.copyFile(path.join(lab.master.dataPath, n), path.join(m1, n));
    const doc = lab.configDocument();
    const cfg = await lab.writeConfig(
      {
        masters: [{ ...(doc.masters as object[])[0], local: true }],
        metaloggers: [{ name: 'm1', host: '127.0.0.1', dataPath: m1, local: true }],
      },
      'm1.yaml',
    );
    const dataPath = await emptyDir('too-old');
    const res = await runCli([
      'restore',
      '--from',
      'm1',
      '--to-version',
      String(imageVersion - 1),
      '--data-path',
      dataPath,
      '--config',
      cfg,
    ]);
    const first = res.stdout.split('\n')[0]!;
    expect({ code: res.code, first }).toEqual({
      code: 2,
      first: `MFS RESTORE CRITICAL - --to-version ${imageVersion - 1} is older than metalogger m1 (${m1}): its oldest image metadata.mfs.back is at version ${imageVersion} (use an older restore point): nothing written`,
    });
    expect(res.stdout).not.toMatch(/\(; \)|[A-Z][a-z]+Error: /);
    expect(await fs.readdir(dataPath)).toEqual(['old-file']);
  });

  test("restore_start_without_master_config: --start checks its config before DATA_PATH changes; the advice never names another DATA_PATH's config", async () => {
    const dataPath = await emptyDir('start');
    const missing = path.join(lab.dir, 'no-such-mfsmaster.cfg');
    const noCfg = await lab.writeConfig({ ...base, jobs: { restore: { masterConfig: missing } } }, 'nocfg.yaml');
    const start = await runCli([
      'restore',
      '--snapshot',
      masterSnapshot,
      '--data-path',
      dataPath,
      '--start',
      '--config',
      noCfg,
    ]);
    expect({ code: start.code, first: start.stdout.split('\n')[0] }).toEqual({
      code: 3,
      first: `MFS RESTORE UNKNOWN - jobs.restore.masterConfig ${missing}: cannot read MooseFS config ${missing}: ENOENT: --start needs the restored master's mfsmaster.cfg, with DATA_PATH = ${dataPath} (--master-config FILE): nothing changed in ${dataPath}`,
    });
    expect(await fs.readdir(dataPath)).toEqual(['old-file']);
    // No config named at all: Debian's default, which is not this DATA_PATH's (missing, or another DATA_PATH).
    const byDefault = await cli(['restore', '--snapshot', masterSnapshot, '--data-path', dataPath, '--start']);
    expect({ code: byDefault.code, first: byDefault.stdout.split('\n')[0] }).toEqual({
      code: 3,
      first: expect.stringMatching(
        new RegExp(
          `^MFS RESTORE UNKNOWN - /etc/mfs/mfsmaster\\.cfg \\(no --master-config given\\)(: cannot read| has DATA_PATH).*: nothing changed in ${dataPath}$`,
        ),
      ),
    });
    expect(await fs.readdir(dataPath)).toEqual(['old-file']);
    // The production master's config: refused, and no `-a` command for its DATA_PATH anywhere.
    const prod = lab.master.configFile;
    const refused = await cli([
      'restore',
      '--snapshot',
      masterSnapshot,
      '--data-path',
      dataPath,
      '--start',
      '--master-config',
      prod,
    ]);
    expect(refused.code).toBe(3);
    expect(refused.stdout.split('\n')[0]).toBe(
      `MFS RESTORE UNKNOWN - --master-config ${prod} has DATA_PATH = ${lab.master.dataPath}, not ${dataPath}: --start needs the restored master's mfsmaster.cfg, with DATA_PATH = ${dataPath} (--master-config FILE): nothing changed in ${dataPath}`,
    );
    expect(refused.stdout).not.toContain(`-c ${prod}`);
    expect(await fs.readdir(dataPath)).toEqual(['old-file']);
    // Without --start the files are placed, and the advice says what to write instead of a command that would not work.
    const placed = await cli([
      'restore',
      '--snapshot',
      masterSnapshot,
      '--data-path',
      dataPath,
      '--master-config',
      prod,
    ]);
    expect(placed.code).toBe(0);
    expect(placed.stdout).not.toContain(`-c ${prod}`);
    expect(placed.stdout).toContain(
      `no mfsmaster.cfg for ${dataPath} (--master-config ${prod} has DATA_PATH = ${lab.master.dataPath}, not ${dataPath}): write one with DATA_PATH = ${dataPath}`,
    );
    expect((await fs.readdir(dataPath)).filter((n) => !n.startsWith('mfs-jobs-aside-')).sort()).toEqual([
      'changelog.1.mfs',
      'metadata.mfs.back',
    ]);
  });

  test('drill_rpo_from_target_time: drill --to-time T counts RPO seconds from T, not from the restore point', async () => {
    const iso = new Date(targetTime * 1000).toISOString();
    const started = Math.floor(Date.now() / 1000);
    const res = await cli(['drill', '--snapshot', masterSnapshot, '--to-time', iso, '--json']);
    const r = report(res);
    expect({ status: r.status, summary: r.summary }).toMatchObject({ status: 'OK' });
    const age = r.metrics!.find((m) => m.name === 'restore_point_age_seconds')!.value;
    expect(r.details.rpoSeconds).toBeGreaterThanOrEqual(started - targetTime);
    // The snapshot is at least 3 s younger than T.
    expect(r.details.rpoSeconds! - age).toBeGreaterThanOrEqual(2);
  });

  test('bootstrap_image_one_description: a metalogger before its first download backs up OK, named as the bootstrap image; --latest prefers a real image', async () => {
    expect({ code: mlBackup.code, first: mlBackup.stdout.split('\n')[0] }).toEqual({
      code: 0,
      first: expect.stringMatching(
        /^MFS BACKUP OK - ml1: snapshot \S+: metadata_ml\.\S+ MFSM NEW \(the bootstrap image: no image downloaded or saved yet; changelogs from version 1 rebuild the metadata\) \+ /,
      ),
    });
    expect(mlSnapshot).not.toBe(masterSnapshot);
    const dataPath = await emptyDir('latest');
    const r = report(await cli(['restore', '--latest', '--data-path', dataPath, '--dry-run', '--json']));
    expect(r.details.source).toBe(`snapshot ${masterSnapshot}`);
    // Restored from the bootstrap snapshot (asked for by id), the same words.
    const boot = await cli(['restore', '--snapshot', mlSnapshot, '--data-path', dataPath, '--dry-run']);
    expect(boot.stdout).toContain(
      'MFSM NEW (the bootstrap image: no image downloaded or saved yet; changelogs from version 1 rebuild the metadata)',
    );
  });
});
