import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as tar from 'tar';
import { execCapture } from '../../lib/core/exec.js';
import { listSnapshots, readManifest, type Manifest } from '../../lib/store/manifest.js';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { readLatest, verifySnapshot } from '../../lib/store/snapshot-store.js';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { freePort } from '../lab/proc.js';

/** Restore a snapshot the way an operator would: its files into an empty DATA_PATH, `mfsmaster -a`. */
async function restoredVersion(lab: Lab, snapshotDir: string, name: string): Promise<number> {
  const master = await LabMaster.create(path.join(lab.dir, `restore-${name}`), { bootstrap: false });
  const manifest = await readManifest(snapshotDir, {});
  for (const f of manifest.files) await fs.copyFile(path.join(snapshotDir, f.name), path.join(master.dataPath, f.name));
  try {
    return (await master.start({ autoRestore: true })).metadataVersion;
  } finally {
    await master.stop();
  }
}

describe('backup: real master, metalogger and sshd; snapshots pulled over SFTP', () => {
  let lab: Lab;
  let config: string;
  let store: string;
  const imageFile = () => path.join(lab.master.dataPath, 'metadata.mfs.back');
  const snapshots = async () => (await listSnapshots(store, {})).snapshots;
  const temps = async () => fs.readdir(path.join(store, '.tmp')).catch(() => [] as string[]);

  beforeAll(async () => {
    lab = await Lab.start();
    await lab.makeChanges('before-image', 20);
    await lab.saveImage();
    // A metalogger downloads the image when it connects: restart it to get a real metadata_ml.mfs.back.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 10);
    config = await lab.writeConfig();
    store = path.join(lab.dir, 'snapshots');
  });
  afterAll(async () => {
    await lab?.stop();
  });

  test('--dry-run shows what would be copied and writes nothing', async () => {
    const res = await runCli(['run', 'backup', '--config', config, '--dry-run']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /^MFS BACKUP OK - master: would copy metadata\.mfs\.back version \d+ \+ changelog\.0\.mfs/,
    );
    await expect(fs.stat(store)).rejects.toThrow();
  });

  test('first backup: the newest image and the changelogs that roll it forward, verified, private, latest set', async () => {
    const header = await readImageHeader(imageFile());
    const { metadataVersion } = await lab.master.info();
    const res = await runCli(['run', 'backup', '--config', config]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      new RegExp(
        `^MFS BACKUP OK - master: snapshot \\d{8}T\\d{6}Z-v${metadataVersion}: metadata\\.mfs\\.back version ${header.version} \\+ 1 changelog`,
      ),
    );
    const [snap, ...more] = await snapshots();
    expect(more).toHaveLength(0);
    const m = snap!.manifest;
    expect(m).toMatchObject({
      id: snap!.id,
      source: { name: 'master', role: 'master', dataPath: lab.master.dataPath },
      image: { name: 'metadata.mfs.back', version: header.version, metaid: header.metaid, empty: false },
    });
    expect(m.reachesVersion).toBe(metadataVersion);
    expect(m.changelogs.last).toBe(metadataVersion - 1);
    expect(m.changelogs.first!).toBeLessThanOrEqual(header.version);
    expect(m.files.map((f) => f.name)).toEqual(['metadata.mfs.back', 'changelog.0.mfs']);
    expect(m.files[0]).toMatchObject({ sourcePath: imageFile(), sourceSize: (await fs.stat(imageFile())).size });
    expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
    expect((await fs.stat(snap!.dir)).mode & 0o777).toBe(0o700);
    for (const f of await fs.readdir(snap!.dir))
      expect((await fs.stat(path.join(snap!.dir, f))).mode & 0o777).toBe(0o600);
    expect(await readLatest(store)).toBe(snap!.id);
    expect(await temps()).toEqual([]);
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_backup.prom'), 'utf8');
    expect(prom).toContain(`mfs_jobs_snapshot_version{job="backup",source="master"} ${metadataVersion}`);
  });

  test('a second run copies nothing: OK, "already have version N"', async () => {
    const before = await snapshots();
    const res = await runCli(['run', 'backup', '--config', config, '--json']);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.summary).toMatch(
      new RegExp(
        `^master: already have version ${before[0]!.manifest.reachesVersion} \\(snapshot ${before[0]!.id}, image unchanged`,
      ),
    );
    expect(report.details.sources[0]).toMatchObject({ result: 'already', snapshot: before[0]!.id });
    expect((await snapshots()).map((s) => s.id)).toEqual(before.map((s) => s.id));
  });

  test('after changes and a new image, a new snapshot at the new version', async () => {
    await lab.makeChanges('second', 8);
    const saved = await lab.saveImage();
    const low = (await lab.master.info()).metadataVersion;
    const res = await runCli(['run', 'backup', '--config', config]);
    const high = (await lab.master.info()).metadataVersion;
    expect(res.code).toBe(0);
    const all = await snapshots();
    expect(all).toHaveLength(2);
    const newest = all[1]!;
    expect(newest.manifest.image.version).toBe(saved);
    expect(newest.manifest.reachesVersion).toBeGreaterThanOrEqual(low);
    expect(newest.manifest.reachesVersion).toBeLessThanOrEqual(high);
    expect(await readLatest(store)).toBe(newest.id);
    expect(await verifySnapshot(newest.dir, undefined, {})).toEqual([]);
  });

  test('Done when: snapshots of the master and of the metalogger restore with mfsmaster -a at their version', async () => {
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    const version = await lab.makeChanges('done-when', 12);
    // The image is unchanged, only changelogs moved on: this option makes that a new restore point.
    const follow = await lab.writeConfig(
      { jobs: { backup: { sources: ['master', 'ml1'], snapshotOnNewChangelogs: true } } },
      'follow.yaml',
    );
    const res = await runCli(['run', 'backup', '--config', follow]);
    expect(res.code).toBe(0);
    const all = await snapshots();
    const fromMaster = all.filter((s) => s.manifest.source.name === 'master').pop()!;
    const fromMl = all.filter((s) => s.manifest.source.name === 'ml1').pop()!;
    expect(fromMaster.manifest.reachesVersion).toBe(version);
    expect(fromMaster.manifest.image.version).toBeLessThan(version);
    expect(fromMl.manifest).toMatchObject({
      reachesVersion: version,
      image: { name: 'metadata_ml.mfs.back' },
      source: { role: 'metalogger' },
    });
    expect(fromMl.manifest.files.slice(1).every((f) => f.name.startsWith('changelog_ml'))).toBe(true);
    expect(await restoredVersion(lab, fromMaster.dir, 'master')).toBe(version);
    expect(await restoredVersion(lab, fromMl.dir, 'ml1')).toBe(version);
  });

  test('a source on this machine (local: true) is read from disk with the same checks', async () => {
    const doc = lab.configDocument();
    const masters = (doc.masters as object[]).map((m) => ({ ...m, local: true }));
    const localStore = path.join(lab.dir, 'local-store');
    const res = await runCli([
      'run',
      'backup',
      '--config',
      await lab.writeConfig({ masters, snapshotStore: { path: localStore } }, 'local.yaml'),
    ]);
    expect(res.code).toBe(0);
    const [snap] = (await listSnapshots(localStore, {})).snapshots;
    const viaSftp = (await snapshots()).filter((s) => s.manifest.source.name === 'master').pop()!;
    expect(snap!.manifest.files[0]!.sha256).toBe(viaSftp.manifest.files[0]!.sha256);
    expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
  });

  test('the default (zstd) store, locally (read once) and over SFTP (copied, then read once): a damaged changelog line mid-file is refused on the stream, nothing left in the store', async () => {
    const dir = path.join(lab.dir, 'onepass');
    await fs.mkdir(dir, { mode: 0o700 });
    for (const f of ['metadata.mfs.back', 'changelog.0.mfs'])
      await fs.copyFile(path.join(lab.master.dataPath, f), path.join(dir, f));
    const changelog = path.join(dir, 'changelog.0.mfs');
    const good = await fs.readFile(changelog);
    const doc = lab.configDocument();
    const ways = {
      local: { name: 'onepass', host: '127.0.0.1', dataPath: dir, local: true },
      sftp: { name: 'onepass', host: '127.0.0.1', dataPath: dir },
    };
    const configs = await Promise.all(
      Object.entries(ways).map(async ([way, master]) => ({
        store: path.join(lab.dir, `onepass-${way}-store`),
        file: await lab.writeConfig(
          { masters: [master], metaloggers: [], snapshotStore: { path: path.join(lab.dir, `onepass-${way}-store`) } },
          `onepass-${way}.yaml`,
        ),
      })),
    );
    expect(doc.snapshotStore).toMatchObject({ compression: { type: 'none' } });
    // A line in the middle damaged (its first and last lines, which the listing reads, intact).
    const lines = good.toString('latin1').trimEnd().split('\n');
    const mid = Math.floor(lines.length / 2);
    lines[mid] = `${lines[mid]!.split(':')[0]}: ${'#'.repeat(20)}`;
    await fs.writeFile(changelog, lines.join('\n') + '\n');
    for (const c of configs) {
      const bad = await runCli(['run', 'backup', '--config', c.file]);
      expect(bad.code).toBe(2);
      expect(bad.stdout).toMatch(new RegExp(`CRITICAL - onepass: .*changelog\\.0\\.mfs:${mid + 1}: unparsable line`));
      expect((await listSnapshots(c.store, {})).snapshots).toHaveLength(0);
      expect(await fs.readdir(path.join(c.store, '.tmp')).catch(() => [])).toEqual([]);
    }

    await fs.writeFile(changelog, good);
    const made: Manifest[] = [];
    for (const c of configs) {
      const ok = await runCli(['run', 'backup', '--config', c.file]);
      expect(ok.code).toBe(0);
      const [snap] = (await listSnapshots(c.store, {})).snapshots;
      expect(snap!.manifest.files.map((f) => f.stored?.name)).toEqual(['metadata.mfs.back.zst', 'changelog.0.mfs.zst']);
      expect((await fs.readdir(snap!.dir)).sort()).toEqual(
        ['changelog.0.mfs.zst', 'manifest.json', 'metadata.mfs.back.zst'].sort(),
      );
      expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
      made.push(snap!.manifest);
    }
    // The same plain bytes whichever way they were read (the sha256 is of the MooseFS file, not the .zst).
    const image = await fs.readFile(path.join(dir, 'metadata.mfs.back'));
    for (const m of made) {
      expect(m.files[0]!.sha256).toBe(createHash('sha256').update(image).digest('hex'));
      expect(m.files[1]!.sha256).toBe(createHash('sha256').update(good).digest('hex'));
    }
  });

  test('a corrupted image is refused (CRITICAL, no snapshot); once repaired, the checksum proves it is the same image', async () => {
    const original = await fs.readFile(imageFile());
    const before = (await snapshots()).map((s) => s.id);
    await fs.writeFile(imageFile(), Buffer.concat([Buffer.from('GARBAGE!'), original.subarray(8)]));
    try {
      const res = await runCli(['run', 'backup', '--config', config]);
      expect(res.code).toBe(2);
      expect(res.stdout).toMatch(
        /^MFS BACKUP CRITICAL - master: .*newest metadata image metadata\.mfs\.back rejected: not a MooseFS metadata image \(header "GARBAGE!"/,
      );
      expect((await snapshots()).map((s) => s.id)).toEqual(before);
      expect(await temps()).toEqual([]);
    } finally {
      await fs.writeFile(imageFile(), original);
    }
    const res = await runCli(['run', 'backup', '--config', config]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/already have version \d+ .*image unchanged: same version and sha256/);
  });

  test('a truncated image is refused: CRITICAL naming the missing EOF marker', async () => {
    const original = await fs.readFile(imageFile());
    const before = (await snapshots()).map((s) => s.id);
    await fs.writeFile(imageFile(), original.subarray(0, Math.floor(original.length / 2)));
    try {
      const res = await runCli(['run', 'backup', '--config', config]);
      expect(res.code).toBe(2);
      expect(res.stdout).toMatch(
        /CRITICAL - master: .*metadata\.mfs\.back rejected: metadata image has no "\[MFS EOF MARKER\]" ending/,
      );
      expect((await snapshots()).map((s) => s.id)).toEqual(before);
    } finally {
      await fs.writeFile(imageFile(), original);
    }
  });

  test("a dead master's DATA_PATH: a missing changelog line rejects the lot; a cut last line is left out", async () => {
    await lab.makeChanges('frozen', 6);
    const frozen = path.join(lab.dir, 'frozen');
    const frozenStore = path.join(lab.dir, 'frozen-store');
    await fs.mkdir(frozen, { mode: 0o700 });
    for (const f of ['metadata.mfs.back', 'changelog.0.mfs'])
      await fs.copyFile(path.join(lab.master.dataPath, f), path.join(frozen, f));
    const image = await readImageHeader(path.join(frozen, 'metadata.mfs.back'));
    const changelog = path.join(frozen, 'changelog.0.mfs');
    const text = await fs.readFile(changelog, 'utf8');
    const lines = text.trimEnd().split('\n');
    const newest = Number(/^(\d+):/.exec(lines[lines.length - 1]!)![1]);
    const doc = lab.configDocument();
    const cfg = await lab.writeConfig(
      {
        masters: [...(doc.masters as object[]), { name: 'frozen', host: '127.0.0.1', dataPath: frozen }],
        snapshotStore: { path: frozenStore, compression: { type: 'none' } },
        jobs: { backup: { sources: ['frozen'] } },
      },
      'frozen.yaml',
    );

    const hole = image.version + 2;
    await fs.writeFile(changelog, lines.filter((l) => !l.startsWith(`${hole}: `)).join('\n') + '\n');
    const bad = await runCli(['run', 'backup', '--config', cfg]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toContain(
      `changelogs miss versions ${hole}..${hole} after image version ${image.version} (newest line ${newest}): mfsmaster -a would stop at ${hole}`,
    );
    expect((await listSnapshots(frozenStore, {})).snapshots).toHaveLength(0);
    expect(await fs.readdir(path.join(frozenStore, '.tmp'))).toEqual([]);

    await fs.writeFile(changelog, text + `${newest + 1}: 1795650000|CREA`);
    const ok = await runCli(['run', 'backup', '--config', cfg]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`reaches version ${newest + 1}`);
    expect(ok.stdout).toContain('frozen: note: changelog.0.mfs: left out a cut last line');
    const [snap] = (await listSnapshots(frozenStore, {})).snapshots;
    expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
    expect(await fs.readFile(path.join(snap!.dir, 'changelog.0.mfs'), 'utf8')).toBe(text);
  });

  test('a host key that does not match known_hosts is refused, and so is an unknown host', async () => {
    const other = path.join(lab.dir, 'other_host_key');
    const gen = await execCapture('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other], { timeoutMs: 10_000 });
    expect(gen.code).toBe(0);
    const otherPub = (await fs.readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const wrong = path.join(lab.dir, 'known_hosts.wrong');
    await fs.writeFile(wrong, `[127.0.0.1]:${lab.sshd!.port} ${otherPub}\n`);
    const before = (await snapshots()).map((s) => s.id);
    const doc = lab.configDocument();
    const cfg = await lab.writeConfig({ ssh: { ...(doc.ssh as object), knownHosts: wrong } }, 'wrongkey.yaml');
    const res = await runCli(['run', 'backup', '--config', cfg]);
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(
      /^MFS BACKUP CRITICAL - master: master \(127\.0\.0\.1:\d+\): cannot connect over SSH: host key of \[127\.0\.0\.1\]:\d+ does not match .*known_hosts\.wrong/,
    );
    await fs.writeFile(wrong, `[127.0.0.1]:1 ${otherPub}\n`);
    const unknown = await runCli(['run', 'backup', '--config', cfg]);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toMatch(/is not in .*known_hosts\.wrong/);
    expect((await snapshots()).map((s) => s.id)).toEqual(before);
  });

  test('an unreachable host fails fast with a clear reason: refused port, silent port (timeout)', async () => {
    const doc = lab.configDocument();
    const closed = await freePort();
    const refused = await runCli([
      'run',
      'backup',
      '--config',
      await lab.writeConfig({ ssh: { ...(doc.ssh as object), port: closed } }, 'closed.yaml'),
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toMatch(
      /CRITICAL - master: master \(127\.0\.0\.1:\d+\): cannot connect over SSH: connection refused/,
    );

    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const started = Date.now();
      const res = await runCli([
        'run',
        'backup',
        '--config',
        await lab.writeConfig({ ssh: { ...(doc.ssh as object), port, connectTimeoutSeconds: 1 } }, 'silent.yaml'),
      ]);
      expect(res.code).toBe(2);
      expect(res.stdout).toMatch(/cannot connect over SSH: timed out connecting \(host unreachable\?\)/);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      silent.close();
    }
  });

  test('bootstrap_image_not_a_warning: a brand-new master with only the MFSM NEW bootstrap image: a snapshot, OK, the image named as the bootstrap image', async () => {
    const fresh = await LabMaster.create(path.join(lab.dir, 'fresh'));
    const { metadataVersion } = await fresh.start();
    try {
      const doc = lab.configDocument();
      const cfg = await lab.writeConfig(
        {
          masters: [
            ...(doc.masters as object[]),
            { name: 'fresh', host: '127.0.0.1', dataPath: fresh.dataPath, cliPort: fresh.ports.cl },
          ],
          snapshotStore: { path: path.join(lab.dir, 'fresh-store') },
          jobs: { backup: { sources: ['fresh'] } },
        },
        'fresh.yaml',
      );
      const res = await runCli(['run', 'backup', '--config', cfg]);
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(
        new RegExp(
          `^MFS BACKUP OK - fresh: snapshot \\S+-v${metadataVersion}: metadata\\.mfs\\.back MFSM NEW \\(the bootstrap image: no image downloaded or saved yet`,
        ),
      );
      const [snap] = (await listSnapshots(path.join(lab.dir, 'fresh-store'), {})).snapshots;
      expect(snap!.manifest.image).toMatchObject({ empty: true, version: 0 });
      expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
    } finally {
      await fresh.stop();
    }
  });

  describe('retention', () => {
    /** A copy of a real snapshot, dated `startedAt`: a realistic old restore point. */
    async function plant(
      target: string,
      from: { dir: string; manifest: Manifest },
      startedAt: string,
      version: number,
    ): Promise<string> {
      const id = `${startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-v${version}`;
      const dir = path.join(target, 'snapshots', id);
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      for (const f of from.manifest.files) await fs.copyFile(path.join(from.dir, f.name), path.join(dir, f.name));
      await fs.writeFile(
        path.join(dir, 'manifest.json'),
        JSON.stringify({ ...from.manifest, id, startedAt, finishedAt: startedAt }),
      );
      return id;
    }

    test('keep-last/hourly/daily/weekly like restic forget; --dry-run lists what would go and removes nothing', async () => {
      const source = (await snapshots()).filter((s) => s.manifest.source.name === 'master').pop()!;
      const target = path.join(lab.dir, 'retention-store');
      const at = [
        '2026-03-02T10:50:00.000Z',
        '2026-03-02T10:20:00.000Z',
        '2026-03-02T09:40:00.000Z',
        '2026-03-01T23:00:00.000Z',
        '2026-02-25T12:00:00.000Z',
        '2026-02-18T12:00:00.000Z',
        '2026-02-17T12:00:00.000Z',
      ];
      const [a, b, c, d, e, f, g] = await Promise.all(at.map((t, i) => plant(target, source, t, 100 + i)));
      const cfg = await lab.writeConfig(
        { snapshotStore: { path: target, retention: { keepLast: 1, keepHourly: 3, keepDaily: 3, keepWeekly: 3 } } },
        'retention.yaml',
      );
      const dry = await runCli(['run', 'backup', '--config', cfg, '--dry-run']);
      expect(dry.code).toBe(0);
      for (const id of [b, g]) expect(dry.stdout).toContain(`retention master: would remove ${id}`);
      expect(dry.stdout).toContain('would remove 2 old snapshots');
      expect((await listSnapshots(target, {})).snapshots).toHaveLength(7);

      // The planted snapshots hold the current image: the run itself copies nothing, then applies retention.
      const res = await runCli(['run', 'backup', '--config', cfg]);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain(`already have version ${source.manifest.reachesVersion} (snapshot ${a}`);
      expect((await listSnapshots(target, {})).snapshots.map((s) => s.id)).toEqual([f, e, d, c, a]);
      expect(res.stdout).toContain(`retention master: keep ${a} (last,hourly,daily,weekly)`);
      expect(res.stdout).toContain(`retention master: keep ${c} (hourly)`);
      expect(res.stdout).toContain(`retention master: keep ${d} (hourly,daily,weekly)`);
      expect(res.stdout).toContain(`retention master: keep ${e} (daily)`);
      expect(res.stdout).toContain(`retention master: keep ${f} (weekly)`);
      expect(res.stdout).toContain(`retention master: remove ${b}`);
      expect(res.stdout).toContain('removed 2 old snapshots');
      expect(await readLatest(target)).toBe(a);
      expect(await fs.readdir(path.join(target, '.tmp'))).toEqual([]);
    });

    test('a damaged newer snapshot never counts as the kept one: the only valid snapshot stays', async () => {
      const target = path.join(lab.dir, 'only-valid-store');
      const cfg = await lab.writeConfig(
        {
          snapshotStore: {
            path: target,
            compression: { type: 'none' },
            retention: { keepLast: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0 },
          },
        },
        'only-valid.yaml',
      );
      expect((await runCli(['run', 'backup', '--config', cfg])).code).toBe(0);
      const [valid] = (await listSnapshots(target, {})).snapshots;
      const damaged = await plant(target, valid!, '2099-01-01T00:00:00.000Z', 999);
      await fs.rm(path.join(target, 'snapshots', damaged, valid!.manifest.files[0]!.name));
      const res = await runCli(['run', 'backup', '--config', cfg]);
      expect(res.code).toBe(1);
      expect(res.stdout).toContain(`already have version ${valid!.manifest.reachesVersion}`);
      expect(res.stdout).toContain(
        `snapshot ${damaged} is not usable (metadata.mfs.back is missing); left in place for inspection`,
      );
      expect((await listSnapshots(target, {})).snapshots.map((s) => s.id)).toEqual([valid!.id, damaged]);
      expect(await readLatest(target)).toBe(valid!.id);
    });
  });

  test('snapshot list/show, export to tar.gz and import into another store: same manifest and checksums; a tampered archive is refused', async () => {
    const list = await runCli(['snapshot', 'list', '--config', config, '--json']);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout);
    const latest = listed.snapshots.find((s: { latest: boolean }) => s.latest);
    expect(latest.id).toBe(await readLatest(store));
    const table = await runCli(['snapshot', 'list', '--config', config]);
    expect(table.stdout).toMatch(
      new RegExp(
        `^ID\\s+SOURCE\\s+VERSION[^\\n]*\\n(.*\\n)*${latest.id} \\*\\s+${latest.source}\\s+${latest.reachesVersion}`,
      ),
    );
    const show = await runCli(['snapshot', 'show', 'latest', '--config', config]);
    expect(show.stdout).toContain(`snapshot    ${latest.id} (latest)`);

    const archive = path.join(lab.dir, 'exported.tar.gz');
    const exp = await runCli(['snapshot', 'export', latest.id, archive, '--config', config]);
    expect(exp.code).toBe(0);
    expect((await fs.stat(archive)).mode & 0o777).toBe(0o600);
    const other = path.join(lab.dir, 'imported-store');
    const otherCfg = await lab.writeConfig({ snapshotStore: { path: other } }, 'import.yaml');
    const imp = await runCli(['snapshot', 'import', archive, '--config', otherCfg]);
    expect(imp.code).toBe(0);
    expect(imp.stdout).toContain(`imported snapshot ${latest.id}`);
    const original = await readManifest(path.join(store, 'snapshots', latest.id), {});
    const copy = await readManifest(path.join(other, 'snapshots', latest.id), {});
    expect(copy).toEqual(original);
    expect(await verifySnapshot(path.join(other, 'snapshots', latest.id), undefined, {})).toEqual([]);
    expect(await readLatest(other)).toBe(latest.id);
    const again = await runCli(['snapshot', 'import', archive, '--config', otherCfg]);
    expect(again.stdout).toContain('already in the store');

    const unpacked = path.join(lab.dir, 'tamper');
    await fs.mkdir(unpacked);
    await tar.x({ file: archive, cwd: unpacked });
    const victim = path.join(unpacked, latest.id, original.files[0]!.name);
    const bytes = await fs.readFile(victim);
    bytes[100] = bytes[100]! ^ 0xff;
    await fs.writeFile(victim, bytes);
    const tampered = path.join(lab.dir, 'tampered.tar.gz');
    await tar.c({ gzip: true, file: tampered, cwd: unpacked }, [latest.id]);
    const third = await lab.writeConfig({ snapshotStore: { path: path.join(lab.dir, 'third-store') } }, 'third.yaml');
    const bad = await runCli(['snapshot', 'import', tampered, '--config', third]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      new RegExp(
        `^mfs-jobs: .*tampered\\.tar\\.gz: snapshot ${latest.id} does not verify, not imported: ${original.files[0]!.name}: sha256 .* does not match the manifest`,
      ),
    );
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect((await listSnapshots(path.join(lab.dir, 'third-store'), {})).snapshots).toEqual([]);
    expect(await fs.readdir(path.join(lab.dir, 'third-store', '.tmp'))).toEqual([]);
  });

  test('config mistakes are one line naming the key, exit 3', async () => {
    const res = await runCli([
      'run',
      'backup',
      '--config',
      await lab.writeConfig({ jobs: { backup: { sources: ['nope'] } } }, 'badsource.yaml'),
    ]);
    expect(res.code).toBe(3);
    expect(res.stdout).toMatch(
      /UNKNOWN - .*jobs\.backup\.sources\.0: no master or metalogger named "nope" \(known: master, ml1\)/,
    );
    const nostore = await lab.writeConfig({ snapshotStore: undefined }, 'nostore.yaml');
    const res2 = await runCli(['run', 'backup', '--config', nostore]);
    expect(res2.code).toBe(3);
    expect(res2.stdout).toContain('snapshotStore.path is needed by the backup job');
    const res3 = await runCli(['snapshot', 'show', 'nope', '--config', config]);
    expect(res3.code).toBe(3);
    expect(res3.stderr).toMatch(/^mfs-jobs: no snapshot "nope"/);
  });
});
