import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { readJobState } from '../../lib/core/state.js';
import { processAlive } from '../../lib/core/lock.js';
import { waitServing } from '../../lib/moosefs/master.js';
import { mfsmasterErrorLine, runningMasterPid, startMaster } from '../../lib/moosefs/mfsmaster.js';
import { runCli } from '../helpers/cli.js';
import { deleteVersion, writeSnapshot, type SnapshotFixture } from '../helpers/snapshot-fixture.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, LabMetalogger, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { freePort, sleep, waitFor } from '../lab/proc.js';

interface Report {
  status: string;
  exitCode: number;
  metrics?: { name: string; value: number; labels?: Record<string, string>; warn?: number; crit?: number }[];
  summary: string;
  details: {
    sources: Record<
      string,
      {
        status: string;
        restorableVersion?: number;
        lagVersions: number | null;
        lagSeconds: number | null;
        holes: { from: number; to: number }[];
        findings: { status: string; text: string }[];
      }
    >;
  };
}

/** Copy what mfsmaster -a reads (images and changelogs) from a DATA_PATH or snapshot directory. */
async function copyMooseFiles(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true, mode: 0o700 });
  for (const n of await fs.readdir(from))
    if (/^(metadata|changelog)/.test(n)) await fs.copyFile(path.join(from, n), path.join(to, n));
}

/** The changelog holding a version's line: metaloggers rotate hourly, so no name is fixed (changelog_ml.0.mfs may be empty). */
async function changelogHolding(dir: string, version: number): Promise<string> {
  for (const n of (await fs.readdir(dir)).sort()) {
    if (
      n.startsWith('changelog') &&
      new RegExp(`^${version}: `, 'm').test(await fs.readFile(path.join(dir, n), 'utf8'))
    )
      return path.join(dir, n);
  }
  throw new Error(`no changelog in ${dir} holds version ${version}`);
}

/** Wait until a metalogger holds `version` in any of its changelogs (after a reconnect it lands in changelog_ml_back.*). */
async function waitHolds(ml: LabMetalogger, version: number): Promise<void> {
  await waitFor(`${ml.dataPath} to hold version ${version}`, async () => {
    for (const n of await fs.readdir(ml.dataPath)) {
      if (
        n.startsWith('changelog') &&
        new RegExp(`^${version}: `, 'm').test(await fs.readFile(path.join(ml.dataPath, n), 'utf8'))
      )
        return true;
    }
    return false;
  });
}

describe('verify against a real master and two real metaloggers', () => {
  let lab: Lab;
  let ml2: LabMetalogger;
  let imageVersion: number;
  let restores = 0;
  const ml1Entry = () => ({
    name: 'ml1',
    host: '127.0.0.1',
    dataPath: lab.metalogger!.dataPath,
    metaDownloadFreqHours: 1,
  });
  const ml2Entry = () => ({ name: 'ml2', host: '127.0.0.1', dataPath: ml2.dataPath, metaDownloadFreqHours: 1 });
  const localEntry = (name: string, dataPath: string) => ({
    name,
    host: '127.0.0.1',
    dataPath,
    local: true,
    metaDownloadFreqHours: 1,
  });
  /** A backup of ml1's image and every changelog it holds, promising `reachesVersion` (the master's when copied). */
  const ml1Snapshot = (store: string, reachesVersion: number, more: Partial<SnapshotFixture> = {}) => {
    const dataPath = lab.metalogger!.dataPath;
    return writeSnapshot({
      store,
      image: path.join(dataPath, 'metadata_ml.mfs.back'),
      reachesVersion,
      source: { name: 'ml1', host: '127.0.0.1', role: 'metalogger', dataPath },
      ...more,
    });
  };

  /** A config for one scenario; `verify` options merged over quick test settings. */
  async function config(
    file: string,
    metaloggers: object[],
    extra: { store?: string | null; verify?: Record<string, unknown> } = {},
  ): Promise<string> {
    return lab.writeConfig(
      {
        metaloggers,
        ...(extra.store === null
          ? { snapshotStore: undefined }
          : { snapshotStore: { path: extra.store ?? path.join(lab.dir, 'empty-store') } }),
        jobs: { verify: { cliTimeoutSeconds: 3, cutLineRetrySeconds: 0.2, ...extra.verify } },
      },
      file,
    );
  }

  /** One real run: the Nagios line and exit code, plus every figure from the state file it wrote. */
  async function verify(cfg: string): Promise<{ code: number | null; line: string; report: Report }> {
    const plain = await runCli(['run', 'verify', '--config', cfg]);
    const report = (await readJobState(path.join(lab.dir, 'state'), 'verify')) as unknown as Report;
    return { code: plain.code, line: plain.stdout.split('\n')[0]!, report };
  }

  /** The real thing: a fresh master with an empty DATA_PATH, these files, `mfsmaster -a`. */
  async function mfsmasterRestore(
    files: string,
  ): Promise<{ code: number | null; version?: number; errorLine: string }> {
    const m = await LabMaster.create(path.join(lab.dir, `restore-${++restores}`), { bootstrap: false });
    await copyMooseFiles(files, m.dataPath);
    const res = await startMaster({ configFile: m.configFile, autoRestore: true, timeoutMs: 60_000 });
    try {
      if (res.code !== 0) return { code: res.code, errorLine: mfsmasterErrorLine(res.output) };
      const info = await waitServing({ host: m.cliHost, port: m.ports.cl, timeoutMs: 15_000 });
      return { code: 0, version: info.metadataVersion, errorLine: '' };
    } finally {
      const pid = await runningMasterPid(m.dataPath);
      if (pid) {
        // A throwaway master: nothing to save, and a clean stop takes seconds.
        process.kill(pid, 'SIGKILL');
        await waitFor(`restored mfsmaster ${pid} to exit`, async () => !processAlive(pid));
      }
    }
  }

  /** A copy of ml1's DATA_PATH to damage, read by verify as a `local: true` metalogger. */
  async function ml1Copy(name: string): Promise<string> {
    const dir = path.join(lab.dir, 'copies', name);
    await copyMooseFiles(lab.metalogger!.dataPath, dir);
    return dir;
  }

  beforeAll(async () => {
    lab = await Lab.start();
    await lab.makeChanges('before-image', 10);
    await lab.saveImage();
    // A metalogger downloads the image when it connects: restart it to get a real metadata_ml.mfs.back.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    ml2 = await LabMetalogger.create(path.join(lab.dir, 'ml2'), {
      host: lab.master.cliHost,
      port: lab.master.ports.ml,
    });
    await ml2.start();
    await lab.makeChanges('after-image', 20);
    await waitMetaloggerCaughtUp(lab.master, ml2);
    imageVersion = (await readImageHeader(path.join(lab.metalogger!.dataPath, 'metadata_ml.mfs.back'))).version;
  });

  afterAll(async () => {
    await ml2?.stop();
    await lab?.stop();
  });

  test('healthy: OK for both metaloggers over SFTP and the newest snapshot, and mfsmaster -a on each really reaches the master version', async () => {
    const master = (await lab.master.info()).metadataVersion;
    const store = path.join(lab.dir, 'store-good');
    await ml1Snapshot(store, master, { at: new Date(Date.now() - 3_600_000) });
    const newest = await ml1Snapshot(store, master);
    const cfg = await config('healthy.yaml', [ml1Entry(), ml2Entry()], { store });

    const { code, line, report } = await verify(cfg);
    // Every snapshot of the store is checked, the older ones named in one figure (test/store/compressed-store.test.ts has their cache).
    expect(line).toContain(
      `MFS VERIFY OK - every source can restore: ml1 to ${master}, ml2 to ${master}, snapshot ${newest.id} to ${master}, `,
    );
    expect(line).toMatch(
      new RegExp(
        `, \\d+ older snapshots? checked \\(\\d+ read, \\d+ unchanged since verified\\); master at ${master} \\|`,
      ),
    );
    expect(line).toContain('ml1_lag_versions=0;100;1000 ml1_lag_seconds=0s;300;1800');
    expect(line).toMatch(/ml2_image_age_seconds=\d+s;7200;90000/);
    expect(line).toContain('ml2_holes=0;;0');
    expect(code).toBe(0);
    expect(report.details.sources.ml2).toMatchObject({
      status: 'OK',
      restorableVersion: master,
      lagVersions: 0,
      lagSeconds: 0,
      holes: [],
    });
    const json = JSON.parse((await runCli(['run', 'verify', '--config', cfg, '--json'])).stdout) as Report;
    expect(json).toMatchObject({ status: 'OK', exitCode: 0 });
    expect(json.details.sources[`snapshot ${newest.id}`]).toMatchObject({ status: 'OK', restorableVersion: master });
    expect(json.metrics).toContainEqual({
      name: 'lag_versions',
      value: 0,
      warn: 100,
      crit: 1000,
      labels: { metalogger: 'ml2' },
    });

    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_verify.prom'), 'utf8');
    expect(prom).toContain('mfs_jobs_last_status{job="verify"} 0');
    expect(prom).toContain('mfs_jobs_lag_versions{job="verify",metalogger="ml1"} 0');
    expect(prom).toContain('mfs_jobs_lag_seconds{job="verify",metalogger="ml2"} 0');
    expect(prom).toMatch(/mfs_jobs_image_age_seconds\{job="verify",metalogger="ml2"\} \d+/);
    expect(prom).toContain(`mfs_jobs_restorable_version{job="verify",metalogger="ml1"} ${master}`);
    expect(prom).toContain(`mfs_jobs_snapshot_restorable_version{job="verify"} ${master}`);

    // Where verify says OK, a restore from those very files comes up at the master's version.
    expect((await mfsmasterRestore(lab.metalogger!.dataPath)).version).toBe(master);
    expect((await mfsmasterRestore(ml2.dataPath)).version).toBe(master);
    expect((await mfsmasterRestore(newest.dir)).version).toBe(master);
    expect((await lab.master.info()).metadataVersion).toBe(master);
  });

  test('a stopped metalogger falls behind: WARNING, then CRITICAL as changes pile up, OK again once it is back', async () => {
    const cfg = await config('lag.yaml', [ml1Entry(), ml2Entry()], {
      store: null,
      verify: { lagVersionsWarn: 10, lagVersionsCrit: 150, lagSecondsWarn: 3600, lagSecondsCrit: 7200 },
    });
    await ml2.stop();
    try {
      const held = (await ml2.lastVersion())! + 1;
      const first = (await lab.makeChanges('lag-a', 10)) - held;
      let res = await verify(cfg);
      expect(res.code).toBe(1);
      expect(res.line).toContain(`MFS VERIFY WARNING - ml2: ${first} versions behind the master (restores to ${held}`);
      expect(res.line).toContain(
        'master lists 1 metalogger at 127.0.0.1 where 2 are configured (ml1, ml2): at least one is not connected',
      );
      expect(res.line).toContain(`ml2_lag_versions=${first};10;150`);
      expect(res.report.details.sources.ml1).toMatchObject({ status: 'OK', lagVersions: 0 });

      const more = (await lab.makeChanges('lag-b', 80)) - held;
      expect(more).toBeGreaterThan(150);
      res = await verify(cfg);
      expect(res.code).toBe(2);
      expect(res.line).toContain(`MFS VERIFY CRITICAL - ml2: ${more} versions behind the master`);
      expect(res.report.details.sources.ml2!.lagSeconds).toBeGreaterThanOrEqual(0);

      // Seconds count too: the newest change ml2 holds gets older while the master moves on.
      await sleep(2100);
      const bySeconds = await config('lag-seconds.yaml', [ml2Entry()], {
        store: null,
        verify: { lagVersionsWarn: 1000, lagVersionsCrit: 2000, lagSecondsWarn: 1, lagSecondsCrit: 2 },
      });
      res = await verify(bySeconds);
      expect(res.code).toBe(2);
      expect(res.report.details.sources.ml2!.lagSeconds).toBeGreaterThan(2);
      expect(res.line).toMatch(/ml2_lag_seconds=\d+s;1;2/);
    } finally {
      await ml2.start();
    }
    // Back online it fetches the master's changelog tail (changelog_ml_back.*), then follows new changes again.
    await waitHolds(ml2, (await lab.master.info()).metadataVersion - 1);
    await waitHolds(ml2, (await lab.makeChanges('lag-c', 1)) - 1);
    const back = await verify(cfg);
    expect(back.report.details.sources.ml2).toMatchObject({ status: 'OK', lagVersions: 0 });
    expect(back.code).toBe(0);
  });

  test('a deleted changelog line: CRITICAL with the exact hole, and mfsmaster -a on the same files fails with that hole', async () => {
    const master = (await lab.master.info()).metadataVersion;
    const lost = imageVersion + 10;
    const dir = await ml1Copy('hole');
    await deleteVersion(dir, lost);
    const { code, line, report } = await verify(await config('hole.yaml', [localEntry('ml3', dir)], { store: null }));
    expect(line).toContain(
      `MFS VERIFY CRITICAL - ml3: hole ${lost}..${lost} (mfsmaster -a would stop: "hole in change files")`,
    );
    expect(line).toContain('ml3_holes=1;;0');
    expect(code).toBe(2);
    expect(report.details.sources.ml3).toMatchObject({ restorableVersion: lost, holes: [{ from: lost, to: lost }] });
    expect(lost).toBeLessThan(master - 1);

    const restore = await mfsmasterRestore(dir);
    expect(restore.code).toBe(1);
    expect(restore.errorLine).toMatch(
      new RegExp(`hole in change files \\(entries from \\S+:${lost} to \\S+:${lost} are missing\\)`),
    );
  });

  test('a cut last line: CRITICAL, and mfsmaster -a really ignores that file and comes up at the older version verify named', async () => {
    const master = (await lab.master.info()).metadataVersion;
    const dir = await ml1Copy('cut');
    const current = await changelogHolding(dir, master - 1);
    await fs.truncate(current, (await fs.stat(current)).size - 7);
    const { code, line, report } = await verify(await config('cut.yaml', [localEntry('ml4', dir)], { store: null }));
    expect(code).toBe(2);
    expect(line).toMatch(
      new RegExp(
        `MFS VERIFY CRITICAL - ml4: ${path.basename(current).replace(/\./g, '\\.')}: last line \\d+ is cut off \\(no newline at end of file\\): mfsmaster -a ignores the whole file`,
      ),
    );
    const verdict = report.details.sources.ml4!;
    expect(verdict.restorableVersion).toBeLessThan(master);

    const restore = await mfsmasterRestore(dir);
    expect(restore).toMatchObject({ code: 0, version: verdict.restorableVersion });
  });

  test('a garbage line in the middle: CRITICAL, and mfsmaster -a silently stops at exactly that version', async () => {
    const garbageAt = imageVersion + 15;
    const dir = await ml1Copy('garbage-line');
    const current = await changelogHolding(dir, garbageAt);
    const text = await fs.readFile(current, 'utf8');
    await fs.writeFile(current, text.replace(new RegExp(`^${garbageAt}: .*$`, 'm'), 'this is not a changelog line'));
    const { code, line, report } = await verify(
      await config('garbage-line.yaml', [localEntry('ml5', dir)], { store: null }),
    );
    expect(code).toBe(2);
    expect(line).toContain(`mfsmaster -a stops reading this file after version ${garbageAt - 1}`);
    expect(report.details.sources.ml5!.restorableVersion).toBe(garbageAt);
    expect(await mfsmasterRestore(dir)).toMatchObject({ code: 0, version: garbageAt });
  });

  test('a garbage image: CRITICAL and mfsmaster -a finds no valid metadata; with an older valid image beside it only WARNING, and the restore works', async () => {
    const master = (await lab.master.info()).metadataVersion;
    const only = await ml1Copy('garbage-image');
    await fs.writeFile(path.join(only, 'metadata_ml.mfs.back'), 'not a metadata image\n'.repeat(100));
    const broken = await verify(await config('garbage-image.yaml', [localEntry('ml6', only)], { store: null }));
    expect(broken.code).toBe(2);
    expect(broken.line).toContain(
      `MFS VERIFY CRITICAL - ml6: no valid metadata image, mfsmaster -a would stop with "can't find valid metadata file" (metadata_ml.mfs.back: not a MooseFS metadata image (header "not a me", expected "MFSM 1.5" or "MFSM 2.0"))`,
    );
    expect(await mfsmasterRestore(only)).toMatchObject({ code: 1, errorLine: "can't find valid metadata file" });

    const fallback = await ml1Copy('garbage-image-fallback');
    await fs.rename(path.join(fallback, 'metadata_ml.mfs.back'), path.join(fallback, 'metadata_ml.mfs.back.1'));
    await fs.writeFile(path.join(fallback, 'metadata_ml.mfs.back'), 'not a metadata image\n'.repeat(100));
    const warned = await verify(await config('fallback-image.yaml', [localEntry('ml7', fallback)], { store: null }));
    expect(warned.line).toContain('MFS VERIFY WARNING - ml7: metadata_ml.mfs.back: not a MooseFS metadata image');
    expect(warned.line).toContain(`a restore falls back to metadata_ml.mfs.back.1 (version ${imageVersion})`);
    expect(warned.report.details.sources.ml7!.restorableVersion).toBe(master);
    expect(await mfsmasterRestore(fallback)).toMatchObject({ code: 0, version: master });
  });

  test('an image older than META_DOWNLOAD_FREQ plus the slack: downloads stopped, WARNING then CRITICAL', async () => {
    const dir = await ml1Copy('old-image');
    const imageFile = path.join(dir, 'metadata_ml.mfs.back');
    const agedBy = async (hours: number) => {
      const then = new Date(Date.now() - hours * 3_600_000);
      await fs.utimes(imageFile, then, then);
      return verify(await config('old-image.yaml', [localEntry('ml8', dir)], { store: null }));
    };
    const warn = await agedBy(3);
    expect(warn.code).toBe(1);
    expect(warn.line).toMatch(
      /^MFS VERIFY WARNING - ml8: image metadata_ml\.mfs\.back is 3 h 0 min old \(META_DOWNLOAD_FREQ 1 h \+ 1 h slack\): metadata downloads have stopped/,
    );
    expect(warn.line).toMatch(/ml8_image_age_seconds=108\d\ds;7200;90000/);
    const crit = await agedBy(26);
    expect(crit.code).toBe(2);
    expect(crit.line).toContain('(META_DOWNLOAD_FREQ 1 h + 24 h slack)');
  });

  test('an unreachable metalogger host is CRITICAL with the reason, never OK', async () => {
    const closed = await freePort();
    const cfg = await config(
      'unreachable.yaml',
      [ml1Entry(), { ...ml2Entry(), name: 'ml-gone', ssh: { port: closed } }],
      { store: null },
    );
    const { code, line } = await verify(cfg);
    expect(code).toBe(2);
    expect(line).toContain(
      `MFS VERIFY CRITICAL - ml-gone: cannot read its DATA_PATH: ml-gone (127.0.0.1:${closed}): cannot connect over SSH: connection refused`,
    );
  });

  test('the newest snapshot damaged after it was written, or holding a hole, is CRITICAL', async () => {
    const master = (await lab.master.info()).metadataVersion;
    const tampered = path.join(lab.dir, 'store-tampered');
    await ml1Snapshot(tampered, master, { at: new Date(Date.now() - 60_000) });
    const newest = await ml1Snapshot(tampered, master);
    const file = await changelogHolding(newest.dir, imageVersion);
    const body = await fs.readFile(file);
    body[10] = body[10] === 0x31 ? 0x32 : 0x31;
    await fs.writeFile(file, body);
    let res = await verify(await config('tampered.yaml', [], { store: tampered }));
    expect(res.code).toBe(2);
    expect(res.line).toMatch(
      new RegExp(
        `^MFS VERIFY CRITICAL - snapshot ${newest.id}: ${path.basename(file).replace(/\./g, '\\.')}: sha256 [0-9a-f]{12}… does not match the manifest`,
      ),
    );

    const lost = imageVersion + 12;
    const holey = path.join(lab.dir, 'store-holey');
    const snap = await ml1Snapshot(holey, master, { edit: (dir) => deleteVersion(dir, lost) });
    res = await verify(await config('holey.yaml', [], { store: holey }));
    expect(res.code).toBe(2);
    expect(res.line).toContain(`snapshot ${snap.id}: hole ${lost}..${lost}`);
    expect(res.line).toContain(`snapshot ${snap.id}: restores to version ${lost}, manifest promises ${master}`);
    expect((await mfsmasterRestore(snap.dir)).errorLine).toMatch(/hole in change files/);
  });

  test('master down: UNKNOWN with the reason, the metaloggers still checked', async () => {
    const cfg = await config('master-down.yaml', [ml1Entry()], { store: null });
    await lab.master.stop();
    try {
      const { code, line, report } = await verify(cfg);
      expect(code).toBe(3);
      expect(line).toMatch(
        /^MFS VERIFY UNKNOWN - no master answers: master 127\.0\.0\.1:\d+ does not answer .*: lag behind the master is unknown/,
      );
      expect(line).toContain('ml1_lag_versions=U;100;1000');
      expect(report.details.sources.ml1).toMatchObject({ status: 'OK', lagVersions: null, holes: [] });
    } finally {
      await lab.master.start();
    }
  });
});
