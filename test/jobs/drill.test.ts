import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { Lab } from '../lab/cluster.js';
import { waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { runCli, startCli } from '../helpers/cli.js';
import { deleteVersion, freezeDataPath, writeSnapshot, type SnapshotFixture } from '../helpers/snapshot-fixture.js';
import { processesIn } from '../lab/proc.js';

async function scratchDirs(root: string): Promise<string[]> {
  return (await fs.readdir(root).catch(() => [] as string[]))
    .filter((n) => n.startsWith('drill-'))
    .map((n) => path.join(root, n));
}

describe('drill against a real mfsmaster, metalogger and sshd', () => {
  let lab: Lab;
  let config: string;
  let store: string;
  let scratchRoot: string;

  /** A snapshot of the master's image and changelogs as they are now (a still copy: see freezeDataPath). */
  const snapshotOfMaster = async (more: Partial<SnapshotFixture> = {}) => {
    const frozen = await fs.mkdtemp(path.join(lab.dir, 'master-frozen-'));
    await freezeDataPath(lab.master.dataPath, frozen);
    return writeSnapshot({
      store,
      image: path.join(frozen, 'metadata.mfs.back'),
      changelogs: [path.join(frozen, 'changelog.0.mfs')],
      ...more,
    });
  };

  beforeAll(async () => {
    lab = await Lab.start();
    store = path.join(lab.dir, 'snapshots');
    scratchRoot = path.join(lab.dir, 'scratch');
    config = await lab.writeConfig({ jobs: { drill: { scratchDir: scratchRoot } } });
    await lab.makeChanges('before-image', 5);
    await lab.saveImage();
    await lab.makeChanges('after-image', 4);
  });
  afterAll(async () => {
    // Whatever a failed test left: no scratch master may outlive the suite.
    for (const pid of await processesIn(scratchRoot)) process.kill(pid, 'SIGKILL');
    await lab?.stop();
  });

  afterEach(async () => {
    expect(await processesIn(scratchRoot)).toEqual([]);
  });

  test('`mfs-jobs drill --latest` restores the newest snapshot, prints the version and RTO, and cleans up', async () => {
    const version = (await lab.master.info()).metadataVersion;
    const snap = await snapshotOfMaster();
    expect(snap.manifest.image.version).toBeGreaterThan(1);
    const res = await runCli(['drill', '--latest', '--config', config]);
    expect(res.stdout).toContain(
      `MFS DRILL OK - snapshot ${snap.id} restored to metadata version ${version} and served; RTO `,
    );
    expect(res.stdout).toMatch(/RPO 0 versions \/ 0 s \(live master master at \d+\)/);
    expect(res.stdout).toMatch(
      new RegExp(`restored_version=${version} expected_version=${version} rto_seconds=[\\d.]+s`),
    );
    expect(res.stdout).toMatch(/RTO [\d.]+ s = copy [\d.]+ s \+ restore [\d.]+ s \+ serving [\d.]+ s/);
    expect(res.code).toBe(0);
    expect(await scratchDirs(scratchRoot)).toEqual([]);
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_drill.prom'), 'utf8');
    expect(prom).toContain(`mfs_jobs_restored_version{job="drill"} ${version}`);
    expect(prom).toMatch(/mfs_jobs_rto_seconds\{job="drill"\} [\d.]+/);
  });

  test("drill --from a metalogger over SFTP: OK at the master's version, same counts as the live master", async () => {
    // A metalogger downloads the image at connect: restart it after the image was saved.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    // start() may see the first session's "metadata downloaded" in the shared log: wait for the file.
    const mlImage = await waitFor("the metalogger's real image", () =>
      readImageHeader(path.join(lab.metalogger!.dataPath, 'metadata_ml.mfs.back')),
    );
    expect(mlImage).toMatchObject({ magic: 'MFSM 2.0', empty: false });
    expect(mlImage.version).toBeGreaterThan(1);
    await lab.makeChanges('after-ml-restart', 3);
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    const version = (await lab.master.info()).metadataVersion;
    const res = await runCli(['run', 'drill', '--from', 'ml1', '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(report).toMatchObject({ job: 'drill', status: 'OK', exitCode: 0 });
    expect(report.summary).toContain(`metalogger ml1 restored to metadata version ${version}`);
    expect(report.details).toMatchObject({
      image: 'metadata_ml.mfs.back',
      imageVersion: mlImage.version,
      expectedVersion: version,
      restoredVersion: version,
      rpoVersions: 0,
      scratchKept: false,
    });
    expect(report.details.restored).toEqual(report.details.live.counts);
    expect(report.details.restored.files).toBeGreaterThanOrEqual(12);
    expect(report.details.changelogs).toContain('changelog_ml.0.mfs');
    expect(await scratchDirs(scratchRoot)).toEqual([]);
    // The same metalogger read from this machine's disk (the job runs on the metalogger host).
    const local = await lab.writeConfig(
      {
        metaloggers: [{ name: 'ml1', host: '127.0.0.1', dataPath: lab.metalogger!.dataPath, local: true }],
        jobs: { drill: { scratchDir: scratchRoot, from: 'ml1' } },
      },
      'local-ml.yaml',
    );
    const again = JSON.parse((await runCli(['run', 'drill', '--config', local, '--json'])).stdout);
    expect(again).toMatchObject({
      status: 'OK',
      details: { source: expect.stringContaining('metalogger ml1'), restoredVersion: version, rpoVersions: 0 },
    });
  });

  test('a snapshot with a removed changelog line: CRITICAL quoting mfsmaster, scratch kept, no master left running', async () => {
    const good = await snapshotOfMaster({ at: new Date(Date.now() + 1000) });
    const missing = good.manifest.image.version + 2;
    const bad = await snapshotOfMaster({ edit: (dir) => deleteVersion(dir, missing), at: new Date(Date.now() + 2000) });
    const res = await runCli(['drill', '--snapshot', bad.id, '--config', config]);
    expect(res.code).toBe(2);
    expect(res.stdout).toContain(
      `MFS DRILL CRITICAL - snapshot ${bad.id}: mfsmaster -a failed: hole in change files (entries from changelog.0.mfs:${missing} to changelog.0.mfs:${missing} are missing)`,
    );
    expect(res.stdout).toContain(`chain check: missing versions ${missing}..${missing}`);
    const kept = await scratchDirs(scratchRoot);
    expect(kept).toHaveLength(1);
    expect(res.stdout).toContain(`scratch kept for inspection: ${kept[0]}`);
    expect((await fs.readdir(path.join(kept[0]!, 'data'))).sort()).toEqual(
      expect.arrayContaining(['changelog.0.mfs', 'metadata.mfs.back']),
    );
    expect(await fs.readFile(path.join(kept[0]!, 'mfsmaster-restore.log'), 'utf8')).toContain('hole in change files');
    expect((await fs.stat(kept[0]!)).mode & 0o777).toBe(0o700);
    await fs.rm(kept[0]!, { recursive: true });
  });

  test("a garbage image that passes its checksums: CRITICAL with mfsmaster's own word", async () => {
    const snap = await snapshotOfMaster({ at: new Date(Date.now() + 3000) });
    // Rewrite the image and its manifest entry consistently: only the content is wrong.
    const garbage = Buffer.alloc(4096, 0x5a);
    await fs.writeFile(path.join(snap.dir, 'metadata.mfs.back'), garbage);
    const manifest = snap.manifest;
    const { createHash } = await import('node:crypto');
    manifest.files[0] = {
      ...manifest.files[0]!,
      size: garbage.length,
      sha256: createHash('sha256').update(garbage).digest('hex'),
    };
    await fs.writeFile(path.join(snap.dir, 'manifest.json'), JSON.stringify(manifest));
    const res = await runCli(['drill', '--snapshot', snap.id, '--config', config]);
    expect(res.code).toBe(2);
    expect(res.stdout).toContain("mfsmaster -a failed: can't find valid metadata file (image check:");
    expect(res.stdout).toContain('not a MooseFS metadata image');
    for (const d of await scratchDirs(scratchRoot)) await fs.rm(d, { recursive: true });
  });

  test('a snapshot file that does not match its manifest is refused before any restore', async () => {
    const snap = await snapshotOfMaster({ at: new Date(Date.now() + 4000) });
    await fs.appendFile(path.join(snap.dir, 'changelog.0.mfs'), '999999: 1795575877|SETMETAID(1)\n');
    const res = await runCli(['drill', '--snapshot', snap.id, '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(report.status).toBe('CRITICAL');
    expect(report.summary).toMatch(
      new RegExp(`snapshot ${snap.id}: snapshot ${snap.id}: changelog.0.mfs: \\d+ bytes, manifest says \\d+`),
    );
    expect(report.details.stoppedPid).toBeNull();
    for (const d of await scratchDirs(scratchRoot)) await fs.rm(d, { recursive: true });
    await fs.rm(snap.dir, { recursive: true });
  });

  test('--keep keeps the scratch DATA_PATH but stops its master', async () => {
    const res = await runCli([
      'drill',
      '--snapshot',
      (await snapshotOfMaster({ at: new Date(Date.now() + 5000) })).id,
      '--keep',
      '--config',
      config,
      '--json',
    ]);
    const report = JSON.parse(res.stdout);
    expect(report.status).toBe('OK');
    expect(report.details.scratchKept).toBe(true);
    expect(report.details.stoppedPid).toEqual(expect.any(Number));
    const files = await fs.readdir(path.join(report.details.scratch, 'data'));
    expect(files).toEqual(expect.arrayContaining(['metadata.mfs', 'changelog.0.mfs']));
    await fs.rm(report.details.scratch, { recursive: true });
  });

  test('RPO beyond jobs.drill.warnRpoVersions is a WARNING', async () => {
    const snap = await snapshotOfMaster({ at: new Date(Date.now() + 6000) });
    const before = (await lab.master.info()).metadataVersion;
    const now = await lab.makeChanges('after-snapshot', 3);
    const cfg = await lab.writeConfig({ jobs: { drill: { scratchDir: scratchRoot, warnRpoVersions: 2 } } }, 'rpo.yaml');
    const res = await runCli(['drill', '--snapshot', snap.id, '--config', cfg]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(
      `MFS DRILL WARNING - RPO ${now - before} versions exceeds 2 (jobs.drill.warnRpoVersions)`,
    );
    expect(res.stdout).toContain(`rpo_versions=${now - before}`);
    expect(await scratchDirs(scratchRoot)).toEqual([]);
  });

  test('busy or production ports are refused with a clear one-line reason, before anything is made', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const busy = (holder.address() as net.AddressInfo).port;
    try {
      const cfg = await lab.writeConfig(
        { jobs: { drill: { scratchDir: scratchRoot, ports: { matocl: busy } } } },
        'busy.yaml',
      );
      const res = await runCli(['drill', '--config', cfg]);
      expect(res.code).toBe(3);
      expect(res.stdout.trim().split('\n')[0]).toBe(
        `MFS DRILL UNKNOWN - jobs.drill.ports.matocl: port ${busy} on 127.0.0.1 is busy (another process listens there): choose a free port or "auto"`,
      );
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
    for (const p of [9421, lab.master.ports.cl]) {
      const cfg = await lab.writeConfig(
        { jobs: { drill: { scratchDir: scratchRoot, ports: { matoml: p } } } },
        'prod.yaml',
      );
      const res = await runCli(['drill', '--config', cfg]);
      expect(res.code).toBe(3);
      expect(res.stdout).toContain(`jobs.drill.ports.matoml: port ${p} is a production master port`);
    }
    expect(await scratchDirs(scratchRoot)).toEqual([]);
  });

  test('refuses a scratch directory inside a production DATA_PATH, bad flag mixes and unknown snapshots', async () => {
    const inside = await lab.writeConfig(
      { jobs: { drill: { scratchDir: path.join(lab.metalogger!.dataPath, 'drills') } } },
      'inside.yaml',
    );
    const res = await runCli(['drill', '--config', inside]);
    expect(res.code).toBe(3);
    expect(res.stdout).toContain('lies in a production DATA_PATH (metaloggers.0.dataPath');
    const both = await runCli(['drill', '--latest', '--from', 'ml1', '--config', config]);
    expect(both.code).toBe(3);
    expect(both.stdout).toContain('--from and --latest cannot be combined');
    const unknown = await runCli(['drill', '--snapshot', '20200101T000000Z-v1', '--config', config]);
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toMatch(/no snapshot "20200101T000000Z-v1" in .*snapshots \(newest: /);
    const noMl = await runCli(['drill', '--from', 'nope', '--config', config]);
    expect(noMl.stdout).toContain('--from nope: no metalogger or master of that name');
  });

  test('--dry-run names the restore point and ports and changes nothing', async () => {
    const res = await runCli(['drill', '--latest', '--dry-run', '--config', config]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /MFS DRILL OK - dry run: would restore snapshot \S+ into a scratch master on 127\.0\.0\.1:\d+ under /,
    );
    expect(await scratchDirs(scratchRoot)).toEqual([]);
  });

  test('not enough room in the scratch directory: refused before copying (size-limited tmpfs)', async () => {
    const small = path.join(lab.dir, 'small');
    await fs.mkdir(small);
    const mounted = await execCapture('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    expect(mounted.code).toBe(0);
    try {
      const cfg = await lab.writeConfig({ jobs: { drill: { scratchDir: small } } }, 'small.yaml');
      const res = await runCli(['drill', '--latest', '--config', cfg]);
      expect(res.code).toBe(2);
      expect(res.stdout).toMatch(
        /MFS DRILL CRITICAL - snapshot \S+: not enough free space in .*small\/drill-\w+\/data: the drill needs about \d+ MiB, \d+ MiB are free/,
      );
      expect(await scratchDirs(small)).toEqual([]);
    } finally {
      await execCapture('umount', [small]);
    }
  });

  test('SIGTERM during a drill stops the scratch master and removes the scratch', async () => {
    const run = startCli(['drill', '--latest', '--config', config]);
    await waitFor(
      'the scratch master to run',
      async () => ((await processesIn(scratchRoot)).length > 0 ? true : undefined),
      30_000,
      20,
    );
    run.child.kill('SIGTERM');
    const res = await run.done;
    expect(res.stdout).toMatch(/MFS DRILL CRITICAL - interrupted by SIGTERM/);
    expect(await processesIn(scratchRoot)).toEqual([]);
    expect(await scratchDirs(scratchRoot)).toEqual([]);
  });

  test('a scratch master left by a killed drill is stopped by the next drill', async () => {
    const run = startCli(['drill', '--latest', '--config', config]);
    const orphan = await waitFor(
      'the scratch master to run',
      async () => {
        const [dir] = await scratchDirs(scratchRoot);
        const pid = dir
          ? Number((await fs.readFile(path.join(dir, 'data', '.mfsmaster.lock'), 'utf8').catch(() => '')).trim())
          : 0;
        return pid > 0 && (await processesIn(scratchRoot)).includes(pid) ? pid : undefined;
      },
      30_000,
      20,
    );
    run.child.kill('SIGKILL');
    await run.done;
    const res = await runCli(['drill', '--latest', '--config', config]);
    expect(res.stdout).toMatch(
      new RegExp(
        `stopped a scratch master left by an earlier drill \\(pid ${orphan}, (\\S+)\\); removed the scratch of an interrupted drill \\(\\1\\)`,
      ),
    );
    expect(res.code).toBe(0);
    expect(await processesIn(scratchRoot)).toEqual([]);
    // The killed drill's copy of the metadata went with its master (regression: it used to stay forever).
    expect(await scratchDirs(scratchRoot)).toEqual([]);
  });
});

describe("drill from a young cluster's metalogger that holds only metadata_ml.tmp", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.start({ sshd: false });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  test("MFSM NEW placeholder plus changelogs from version 1: restored under an image name, OK at the master's version", async () => {
    const version = await lab.makeChanges('young', 4);
    const ml = lab.metalogger!;
    expect((await fs.readdir(ml.dataPath)).filter((n) => n.startsWith('metadata'))).toEqual(['metadata_ml.tmp']);
    expect(await readImageHeader(path.join(ml.dataPath, 'metadata_ml.tmp'))).toMatchObject({ empty: true });
    const scratchRoot = path.join(lab.dir, 'scratch');
    const cfg = await lab.writeConfig({
      metaloggers: [{ name: 'ml1', host: '127.0.0.1', dataPath: ml.dataPath, local: true }],
      jobs: { drill: { scratchDir: scratchRoot } },
    });
    const report = JSON.parse((await runCli(['drill', '--from', 'ml1', '--keep', '--config', cfg, '--json'])).stdout);
    expect(report).toMatchObject({
      status: 'OK',
      details: { image: 'metadata_ml.mfs.back', restoredVersion: version, expectedVersion: version, rpoVersions: 0 },
    });
    const kept = await fs.readdir(path.join(report.details.scratch, 'data'));
    expect(kept).toContain('metadata_ml.mfs.back');
    expect(kept).not.toContain('metadata_ml.tmp');
    expect(await processesIn(scratchRoot)).toEqual([]);
  });
});
