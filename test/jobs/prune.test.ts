import { promises as fs } from 'node:fs';
import path from 'node:path';
import { holesBetween } from '../../lib/moosefs/chain.js';
import { scanChangelogFile } from '../../lib/moosefs/changelog.js';
import { parseConfig } from '../../lib/core/config.js';
import { listSnapshots, snapshotsDir } from '../../lib/store/manifest.js';
import { changelogIndex, isChangelogName, isImageName, readImageHeader } from '../../lib/moosefs/metadata.js';
import { DataPathTarget } from '../../lib/prune/datapath.js';
import { planPrune } from '../../lib/prune/plan.js';
import type { Removal } from '../../lib/prune/target.js';
import { runCli } from '../helpers/cli.js';
import { writeSnapshot } from '../helpers/snapshot-fixture.js';
import { FakeClock } from '../lab/clock.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, LabMetalogger } from '../lab/moosefs.js';
import { freePort, waitFor } from '../lab/proc.js';

const DAY = 86_400_000;

/** name → "size mtime" of the images and changelogs in a directory (MooseFS rewrites stats.mfs on its own). */
async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir))
    .filter((n) => isImageName(n) || isChangelogName(n) || n === 'manifest.json')
    .sort()) {
    const st = await fs.stat(path.join(dir, name));
    out[name] = `${st.size} ${st.mtimeMs}`;
  }
  return out;
}

async function storeListing(store: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const id of await fs.readdir(snapshotsDir(store)))
    for (const [n, v] of Object.entries(await listing(path.join(snapshotsDir(store), id)))) out[`${id}/${n}`] = v;
  return out;
}

/** First and last version of a changelog, as `first..last`. */
async function rangeOf(file: string): Promise<string> {
  const scan = await scanChangelogFile(file);
  return `${scan.first}..${scan.last}`;
}

describe('prune on the files of a real master and metalogger with hourly rotations', () => {
  let lab: Lab;
  /** Our own metalogger: a long MASTER_TIMEOUT so the master's clock jumps never drop it. */
  let ml: LabMetalogger;
  let clock: FakeClock;
  let config: string;
  let store: string;
  let restores = 0;

  /** A fresh DATA_PATH with one image and these changelogs, `mfsmaster -a`: the version it serves. */
  async function restoreFrom(image: string, changelogs: string[]): Promise<number> {
    const scratch = await LabMaster.create(path.join(lab.dir, `restore-${++restores}`), { bootstrap: false });
    await fs.copyFile(image, path.join(scratch.dataPath, path.basename(image)));
    // Names as MooseFS would accept them; several snapshots each hold a changelog.0.mfs.
    for (const [i, c] of changelogs.entries())
      await fs.copyFile(c, path.join(scratch.dataPath, `changelog.${i + 1}.mfs`));
    try {
      return (await scratch.start({ autoRestore: true })).metadataVersion;
    } finally {
      await scratch.stop();
    }
  }

  /**
   * Changes through the mount, then wait until the metalogger has them. Generous: after the master's
   * clock jumps an hour it may drop the metalogger's connection, which takes seconds to come back.
   */
  async function changes(prefix: string, count: number, timeoutMs = 60_000): Promise<void> {
    await lab.mount!.makeChanges(prefix, count);
    const target = (await lab.master.info()).metadataVersion - 1;
    await waitFor(
      `the metalogger to reach version ${target} (${prefix})`,
      async () => ((await ml.lastVersion()) ?? 0) >= target,
      timeoutMs,
    );
  }

  /** The lab's config with the master read locally (for the /proc check) and our metalogger over SFTP. */
  function writeConfig(extra: Record<string, unknown>, name?: string): Promise<string> {
    return lab.writeConfig(
      {
        masters: [
          {
            name: 'master',
            host: lab.master.cliHost,
            dataPath: lab.master.dataPath,
            cliPort: lab.master.ports.cl,
            local: true,
          },
        ],
        metaloggers: [{ name: 'ml1', host: '127.0.0.1', dataPath: ml.dataPath, metaDownloadFreqHours: 1 }],
        ...extra,
      },
      name,
    );
  }

  beforeAll(async () => {
    // Hourly images on both sides, as MooseFS's defaults make them (the lab's own are daily).
    lab = await Lab.start({ sshd: true, metalogger: false, masterExtra: { METADATA_SAVE_FREQ: 1 } });
    clock = await FakeClock.create(lab.dir);
    store = path.join(lab.dir, 'snapshots');
    await lab.mount!.makeChanges('before', 5);
    // The clean stop writes a real image; the metalogger's first connect downloads it (metadata_ml.mfs.back).
    // Restarting a metalogger after the master's clock jumped left it connected but deaf about once in six
    // runs on a loaded machine, so it connects once, before the first jump, and stays.
    await lab.master.stop();
    await lab.master.start({ wrap: clock.wrap });
    ml = await LabMetalogger.create(
      path.join(lab.dir, 'metalogger'),
      { host: lab.master.cliHost, port: lab.master.ports.ml },
      { MASTER_TIMEOUT: 65535, MASTER_RECONNECTION_DELAY: 1, META_DOWNLOAD_FREQ: 1 },
    );
    await ml.start();
    const data = lab.master.dataPath;
    try {
      for (let hour = 1; hour <= 5; hour++) {
        await changes(`hour${hour}`, 15);
        // A backup at every hour from the second on: the image dumped at the full hour, the previous hour's changelog and this hour's so far.
        if (hour >= 2)
          await writeSnapshot({
            store,
            image: path.join(data, 'metadata.mfs.back'),
            changelogs: [path.join(data, 'changelog.1.mfs'), path.join(data, 'changelog.0.mfs')],
            at: new Date(Date.now() - (6 - hour) * DAY),
          });
        await clock.nextHour(lab.master);
        const masterLast = await rangeOf(path.join(data, 'changelog.1.mfs'));
        await waitFor(
          `the metalogger to rotate too (hour ${hour})`,
          async () =>
            (await rangeOf(path.join(ml.dataPath, 'changelog_ml.1.mfs')).catch(() => '')).endsWith(
              masterLast.split('..')[1]!,
            ),
          60_000,
        );
      }
    } catch (err) {
      // What the daemons said is the only clue when MooseFS misbehaves on a loaded machine.
      const tail = async (f: string) =>
        (await fs.readFile(f, 'utf8').catch(() => '')).trim().split('\n').slice(-15).join('\n');
      throw new Error(
        `${(err as Error).message}\n--- mfsmaster.log\n${await tail(path.join(lab.master.dir, 'mfsmaster.log'))}\n--- mfsmetalogger.log\n${await tail(path.join(ml.dir, 'mfsmetalogger.log'))}`,
        { cause: err },
      );
    }
    await changes('tail', 10);
    config = await writeConfig({
      jobs: { prune: { dataPaths: ['master', 'ml1'], minAgeMinutes: 0, keepRotated: 2, maxAgeHours: 60 } },
    });
  }, 300_000);

  afterAll(async () => {
    await ml?.stop();
    await lab?.stop();
  });

  test('what MooseFS 3.0.117 left after five hours: rotated changelogs on both, _back copies, real images', async () => {
    const master = await fs.readdir(lab.master.dataPath);
    expect(master).toEqual(
      expect.arrayContaining(['changelog.0.mfs', 'changelog.5.mfs', 'metadata.mfs.back', 'metadata.mfs.back.1']),
    );
    const mlFiles = await fs.readdir(ml.dataPath);
    expect(mlFiles).toEqual(
      expect.arrayContaining([
        'changelog_ml.0.mfs',
        'changelog_ml.4.mfs',
        'changelog_ml_back.0.mfs',
        'changelog_ml_back.1.mfs',
        'metadata_ml.mfs.back',
      ]),
    );
    expect((await readImageHeader(path.join(ml.dataPath, 'metadata_ml.mfs.back'))).empty).toBe(false);
    expect((await listSnapshots(store, {})).snapshots).toHaveLength(4);
  });

  test('--dry-run prints the exact plan, one line per file with its version range, and changes nothing', async () => {
    const before = [await listing(lab.master.dataPath), await listing(ml.dataPath), await storeListing(store)];
    const res = await runCli(['run', 'prune', '--config', config, '--dry-run']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /^MFS PRUNE OK - would free .* in \d+ files \(store \d+ deleted, \d+ kept; master 3 deleted, \d+ kept; ml1 \d+ deleted, \d+ kept\)/,
    );
    const cl5 = await rangeOf(path.join(lab.master.dataPath, 'changelog.5.mfs'));
    expect(res.stdout).toContain(`would delete changelog.5.mfs versions ${cl5}`);
    expect(res.stdout).toMatch(
      /keep changelog\.1\.mfs versions \d+\.\.\d+ \(.*\): one of the 2 newest rotated changelogs/,
    );
    expect(res.stdout).toMatch(/keep changelog\.0\.mfs versions .*: current changelog/);
    expect(res.stdout).toMatch(
      /restore point metadata\.mfs\.back\.1 v\d+: retained, within retention rules; reaches \d+/,
    );
    expect([await listing(lab.master.dataPath), await listing(ml.dataPath), await storeListing(store)]).toEqual(before);
  });

  test('deletes only what no retained restore point needs, logs each file with its versions, reports bytes freed', async () => {
    const data = lab.master.dataPath;
    const doomed = ['changelog.3.mfs', 'changelog.4.mfs', 'changelog.5.mfs'];
    // The metalogger's files and images as they are before prune, read without prune's code.
    const mlNames = (await fs.readdir(ml.dataPath)).filter((n) => n.startsWith('changelog'));
    const mlBefore = new Map(
      await Promise.all(mlNames.map(async (n) => [n, await scanChangelogFile(path.join(ml.dataPath, n))] as const)),
    );
    const mlImages = (await fs.readdir(ml.dataPath)).filter((n) => /^metadata_ml\.mfs\.back/.test(n));
    const mlOldest = Math.min(
      ...(await Promise.all(mlImages.map(async (n) => (await readImageHeader(path.join(ml.dataPath, n))).version))),
    );
    // Does changelog_ml_back.0.mfs hold versions the image needs that no changelog_ml.N.mfs holds?
    const back = mlBefore.get('changelog_ml_back.0.mfs')!;
    const own = [...mlBefore].filter(([n]) => !n.includes('_back')).flatMap(([, c]) => c.segments);
    const mlBack0OnlyCopy =
      back.last! >= mlOldest && holesBetween(Math.max(back.first!, mlOldest), back.last!, own).length > 0;
    const ranges = await Promise.all(doomed.map((n) => rangeOf(path.join(data, n))));
    const sizes = await Promise.all(doomed.map(async (n) => (await fs.stat(path.join(data, n))).size));
    const res = await runCli(['run', 'prune', '--config', config, '--json']);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.status).toBe('OK');
    const master = report.details.targets.find((t: { target: string }) => t.target === 'master');
    expect(master.deleted.map((d: { name: string }) => d.name).sort()).toEqual(doomed);
    doomed.forEach((n, i) => expect(res.stderr).toContain(`deleted master: ${n} versions ${ranges[i]}`));
    expect(
      report.metrics.find(
        (m: { name: string; labels: { target: string } }) => m.name === 'freed_bytes' && m.labels.target === 'master',
      ).value,
    ).toBe(sizes.reduce((a, b) => a + b, 0));
    for (const n of doomed) await expect(fs.stat(path.join(data, n))).rejects.toThrow();
    // The metalogger (over SFTP): what its images need stays, the rest goes. Checked here without prune's
    // planner: files wholly older than its oldest image are gone; what a deleted file held from that image
    // on is still held by a kept file.
    const mlTarget = report.details.targets.find((t: { target: string }) => t.target === 'ml1');
    const mlDeleted: string[] = mlTarget.deleted.map((d: { name: string }) => d.name);
    for (const [name, scan] of mlBefore)
      if (name !== 'changelog_ml.0.mfs' && scan.last! < mlOldest && !/^changelog_ml\.[12]\.mfs$/.test(name))
        expect(mlDeleted).toContain(name);
    const keptSegments = [...mlBefore]
      .filter(([name]) => !mlDeleted.includes(name))
      .flatMap(([, scan]) => scan.segments);
    for (const name of mlDeleted)
      for (const seg of mlBefore.get(name)!.segments)
        if (seg.last >= mlOldest)
          expect(holesBetween(Math.max(seg.first, mlOldest), seg.last, keptSegments)).toEqual([]);
    expect(mlDeleted).toContain('changelog_ml_back.1.mfs');
    // Changes made while a metalogger reconnects are missing from its changelog_ml.0.mfs and only in
    // changelog_ml_back.0.mfs (seen on restarts here): then that "copy" is the only copy and stays.
    const back0 = mlTarget.kept.find((k: { name: string }) => k.name === 'changelog_ml_back.0.mfs');
    if (mlBack0OnlyCopy)
      expect(back0.reason).toMatch(
        /^needed: only copy of versions \d+(\.\.\d+)?, which restore point metadata_ml\.mfs\.back \(v\d+\) needs/,
      );
    else expect(mlDeleted).toContain('changelog_ml_back.0.mfs');
    // The store: snapshots older than maxAgeHours (60 h) go whole; the two newest stay.
    const st = report.details.targets.find((t: { target: string }) => t.target === 'store');
    expect(new Set(st.deleted.map((d: { name: string }) => d.name.split('/')[0])).size).toBe(2);
    expect((await listSnapshots(store, {})).snapshots).toHaveLength(2);
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_prune.prom'), 'utf8');
    expect(prom).toMatch(/mfs_jobs_freed_bytes\{job="prune",target="master"\} [1-9]\d*/);
  });

  test('mfsmaster -a still restores the newest version from every retained restore point', async () => {
    const newest = (await lab.master.info()).metadataVersion;
    // mfsmaster writes changelogs through a background writer: wait until both DATA_PATHs hold the last change.
    await waitFor(
      'changelogs to hold the newest change',
      async () => (await scanChangelogFile(path.join(lab.master.dataPath, 'changelog.0.mfs'))).last === newest - 1,
    );
    await waitFor('the metalogger to hold the newest change', async () => (await ml.lastVersion()) === newest - 1);
    const masterChangelogs = (await fs.readdir(lab.master.dataPath))
      .filter((n) => n.startsWith('changelog'))
      .map((n) => path.join(lab.master.dataPath, n));
    for (const image of ['metadata.mfs.back', 'metadata.mfs.back.1'])
      expect(await restoreFrom(path.join(lab.master.dataPath, image), masterChangelogs)).toBe(newest);
    const mlData = ml.dataPath;
    const mlChangelogs = (await fs.readdir(mlData))
      .filter((n) => n.startsWith('changelog'))
      .map((n) => path.join(mlData, n));
    for (const image of (await fs.readdir(mlData)).filter((n) => /^metadata_ml\.mfs\.back/.test(n)))
      expect(await restoreFrom(path.join(mlData, image), mlChangelogs)).toBe(newest);
    // Each retained snapshot restores by itself, and rolls forward to the newest stored version with the store's changelogs.
    const { snapshots } = await listSnapshots(store, {});
    const pool = snapshots.flatMap((s) =>
      s.manifest.files.filter((f) => f.role === 'changelog').map((f) => path.join(s.dir, f.name)),
    );
    const newestStored = Math.max(...snapshots.map((s) => s.manifest.reachesVersion));
    for (const s of snapshots) {
      const image = path.join(s.dir, s.manifest.image.name);
      expect(
        await restoreFrom(
          image,
          s.manifest.files.filter((f) => f.role === 'changelog').map((f) => path.join(s.dir, f.name)),
        ),
      ).toBe(s.manifest.reachesVersion);
      expect(await restoreFrom(image, pool)).toBe(newestStored);
    }
  });

  test('a second run has nothing to do: OK, nothing changes', async () => {
    const before = [await listing(lab.master.dataPath), await listing(ml.dataPath), await storeListing(store)];
    const res = await runCli(['run', 'prune', '--config', config]);
    expect(res.stdout).toMatch(/^MFS PRUNE OK - nothing to prune/);
    expect(res.code).toBe(0);
    expect([await listing(lab.master.dataPath), await listing(ml.dataPath), await storeListing(store)]).toEqual(before);
  });

  test('a rotated changelog some process holds open is kept until it is closed', async () => {
    await changes('hour6', 5);
    await clock.nextHour(lab.master);
    const file = path.join(lab.master.dataPath, 'changelog.3.mfs');
    const handle = await fs.open(file, 'r');
    try {
      const res = await runCli(['run', 'prune', '--config', config, '--dry-run']);
      expect(res.stdout).toMatch(/keep changelog\.3\.mfs versions \d+\.\.\d+ \(.*\): held open by a running process/);
    } finally {
      await handle.close();
    }
    const res = await runCli(['run', 'prune', '--config', config]);
    expect(res.code).toBe(0);
    expect(res.stderr).toMatch(/deleted master: changelog\.3\.mfs versions \d+\.\.\d+/);
  });

  test('files younger than minAgeMinutes are never deleted (the guard for a DATA_PATH over SFTP)', async () => {
    await changes('hour7', 5);
    await clock.nextHour(lab.master);
    const overSftp = (minAgeMinutes: number) =>
      lab.writeConfig(
        { jobs: { prune: { snapshotStore: false, dataPaths: ['master'], minAgeMinutes } } },
        `min-age-${minAgeMinutes}.yaml`,
      );
    const young = await runCli(['run', 'prune', '--config', await overSftp(30), '--dry-run']);
    expect(young.code).toBe(0);
    expect(young.stdout).toMatch(/^MFS PRUNE OK - nothing to prune/);
    expect(young.stdout).toMatch(/keep changelog\.3\.mfs versions \d+\.\.\d+ \(.*\): modified \d+ min ago \(minAge\)/);
    const old = await runCli(['run', 'prune', '--config', await overSftp(0), '--dry-run']);
    expect(old.stdout).toMatch(/would delete changelog\.3\.mfs versions \d+\.\.\d+/);
  });

  test('MooseFS rotating between the plan and the delete: every renamed file is left alone', async () => {
    // Names shift on every rotation (changelog.N → N+1): deleting by name alone would hit the wrong file.
    const copy = path.join(lab.dir, 'rotating');
    await fs.cp(lab.master.dataPath, copy, { recursive: true });
    const cfg = parseConfig({ masters: [{ name: 'copy', host: '127.0.0.1', dataPath: copy, local: true }] });
    const target = await DataPathTarget.open(cfg, cfg.masters[0]!, new AbortController().signal);
    try {
      const plan = planPrune({
        ...(await target.scan()),
        rules: { keepRestorePoints: 1, keepRotated: 0, minAgeMs: 0 },
        now: Date.now(),
      });
      expect(plan.delete.length).toBeGreaterThan(0);
      const top = Math.max(...(await fs.readdir(copy)).map((n) => changelogIndex(n) ?? -1));
      for (let i = top; i >= 0; i--)
        await fs
          .rename(path.join(copy, `changelog.${i}.mfs`), path.join(copy, `changelog.${i + 1}.mfs`))
          .catch(() => undefined);
      const before = await listing(copy);
      const removals: Removal[] = [];
      await target.remove(plan.delete, new AbortController().signal, (r) => removals.push(r));
      expect(removals).toHaveLength(plan.delete.length);
      expect(
        removals.every(
          (r) => !r.deleted && /changed since the scan|gone since the scan|first version differs/.test(r.skipped ?? ''),
        ),
      ).toBe(true);
      expect(await listing(copy)).toEqual(before);
    } finally {
      await target.close();
    }
  });

  test('bad input: an unknown host in jobs.prune.dataPaths is one line naming the key, exit 3', async () => {
    const cfg = await writeConfig({ jobs: { prune: { dataPaths: ['nosuch'] } } }, 'bad-host.yaml');
    const res = await runCli(['run', 'prune', '--config', cfg]);
    expect(res.code).toBe(3);
    expect(res.stdout).toMatch(
      /^MFS PRUNE UNKNOWN - .*jobs\.prune\.dataPaths\.0: no master or metalogger named "nosuch"/,
    );
  });

  test('an unreachable metalogger is CRITICAL and named; nothing is deleted there', async () => {
    const cfg = await lab.writeConfig(
      {
        metaloggers: [{ name: 'ml1', host: '127.0.0.1', dataPath: ml.dataPath, ssh: { port: await freePort() } }],
        jobs: { prune: { snapshotStore: false, dataPaths: ['ml1'], minAgeMinutes: 0 } },
      },
      'unreachable.yaml',
    );
    const before = await listing(ml.dataPath);
    const res = await runCli(['run', 'prune', '--config', cfg]);
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(
      /^MFS PRUNE CRITICAL - ml1: refusing to prune, nothing deleted: ml1 \(127\.0\.0\.1:\d+\): cannot connect over SSH: connection refused/,
    );
    expect(Object.keys(await listing(ml.dataPath))).toEqual(Object.keys(before));
  });

  describe('a damaged file makes prune refuse instead of guess', () => {
    /** A copy of the metalogger's DATA_PATH, configured as a local metalogger named `copy`. */
    async function copyOfMetalogger(name: string): Promise<{ dir: string; config: string }> {
      const dir = path.join(lab.dir, name);
      await fs.cp(ml.dataPath, dir, { recursive: true });
      await fs.rm(path.join(dir, '.mfsmetalogger.lock'), { force: true });
      const cfg = await lab.writeConfig(
        {
          metaloggers: [{ name: 'copy', host: '127.0.0.1', dataPath: dir, local: true }],
          jobs: { prune: { snapshotStore: false, dataPaths: ['copy'], minAgeMinutes: 0, keepRotated: 0 } },
        },
        `${name}.yaml`,
      );
      return { dir, config: cfg };
    }

    test('an unparsable line in a rotated changelog: CRITICAL naming file and line, nothing deleted', async () => {
      const { dir, config: cfg } = await copyOfMetalogger('damaged-line');
      const file = path.join(dir, 'changelog_ml.2.mfs');
      const lines = (await fs.readFile(file, 'utf8')).split('\n');
      lines[2] = lines[2]!.replace(/^\d+/, (d) => 'x'.repeat(d.length));
      await fs.writeFile(file, lines.join('\n'));
      const before = await listing(dir);
      const res = await runCli(['run', 'prune', '--config', cfg]);
      expect(res.code).toBe(2);
      expect(res.stdout).toMatch(
        /^MFS PRUNE CRITICAL - copy: refusing to prune, nothing deleted: .*changelog_ml\.2\.mfs line 3: unparsable line/,
      );
      expect(await listing(dir)).toEqual(before);
    });

    test('a truncated image: CRITICAL, nothing deleted', async () => {
      const { dir, config: cfg } = await copyOfMetalogger('damaged-image');
      const image = path.join(dir, 'metadata_ml.mfs.back');
      await fs.truncate(image, (await fs.stat(image)).size - 10);
      const before = await listing(dir);
      const res = await runCli(['run', 'prune', '--config', cfg]);
      expect(res.code).toBe(2);
      expect(res.stdout).toMatch(
        /copy: refusing to prune, nothing deleted: .*metadata_ml\.mfs\.back: metadata image has no "\[MFS EOF MARKER\]" ending/,
      );
      expect(await listing(dir)).toEqual(before);
    });

    test('a snapshot changelog damaged in place: CRITICAL, the store is untouched', async () => {
      const { snapshots } = await listSnapshots(store, {});
      const victim = snapshots[0]!;
      const file = path.join(victim.dir, victim.manifest.files.find((f) => f.role === 'changelog')!.name);
      const text = await fs.readFile(file, 'utf8');
      await fs.writeFile(
        file,
        text.replace(/\n\d+:/, (m) => `\n${'9'.repeat(m.length - 2)}:`),
      );
      const cfg = await writeConfig({ jobs: { prune: { maxAgeHours: 1, minAgeMinutes: 0 } } }, 'store-damaged.yaml');
      const before = await storeListing(store);
      const res = await runCli(['run', 'prune', '--config', cfg]);
      expect(res.code).toBe(2);
      // Prune reads a snapshot through the store's checked stream: the edit is caught by its checksum first.
      expect(res.stdout).toMatch(
        new RegExp(
          `store: refusing to prune, nothing deleted: snapshot ${victim.id}: changelog\\.\\d\\.mfs: sha256 [0-9a-f]{12}… does not match the manifest`,
        ),
      );
      expect(await storeListing(store)).toEqual(before);
    });
  });
});
