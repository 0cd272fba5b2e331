import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { execCapture } from '../../lib/core/exec.js';
import { listSnapshots, type StoredSnapshot } from '../../lib/store/manifest.js';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { cacheFile } from '../../lib/verify/snapshot-cache.js';
import { runCli } from '../helpers/cli.js';
import { freezeDataPath, writeSnapshot } from '../helpers/snapshot-fixture.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

interface VerifyReport {
  status: string;
  summary: string;
  lines: string[];
  details: {
    sources: Record<
      string,
      {
        status: string;
        checked?: number;
        rechecked?: number;
        cached?: number;
        findings: { status: string; text: string }[];
      }
    >;
  };
}

/**
 * The snapshot store as a new config gets it (zstd), and sealed (AES-256-GCM), against a real
 * MooseFS master: backup writes compressed and encrypted files, and everything that reads a snapshot
 * — show, drill (a real scratch master boots from it), restore, export/import, verify, promote — reads
 * them back through the store; a wrong, missing or exposed key is one clear line and a non-zero exit.
 */
describe('a compressed and encrypted snapshot store, with a real master', () => {
  let lab: Lab;
  let zstdStore: string;
  let sealedStore: string;
  let keyFile: string;
  let zstdConfig: string;
  let sealedConfig: string;

  const masters = () => [
    { name: 'master', host: '127.0.0.1', cliPort: lab.master.ports.cl, dataPath: lab.master.dataPath, local: true },
  ];

  async function writeConfig(
    name: string,
    snapshotStore: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    const doc = lab.configDocument({
      masters: masters(),
      metaloggers: [],
      snapshotStore,
      jobs: { backup: { snapshotOnNewChangelogs: true }, drill: { scratchDir: path.join(lab.dir, 'scratch') } },
      ...extra,
    });
    const file = path.join(lab.dir, `${name}.yaml`);
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return file;
  }

  async function newKey(name: string, mode = 0o600): Promise<string> {
    const file = path.join(lab.dir, name);
    await fs.writeFile(file, randomBytes(32).toString('hex') + '\n', { mode });
    await fs.chmod(file, mode);
    return file;
  }

  async function snapshots(store: string): Promise<StoredSnapshot[]> {
    return (await listSnapshots(store, {})).snapshots;
  }

  async function verify(config: string): Promise<{ code: number; report: VerifyReport }> {
    const res = await runCli(['run', 'verify', '--config', config, '--json']);
    return { code: res.code ?? -1, report: JSON.parse(res.stdout) as VerifyReport };
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: true, sshd: false });
    zstdStore = path.join(lab.dir, 'store-zstd');
    sealedStore = path.join(lab.dir, 'store-sealed');
    keyFile = await newKey('store.key');
    zstdConfig = await writeConfig('zstd', { path: zstdStore });
    sealedConfig = await writeConfig('sealed', {
      path: sealedStore,
      compression: { type: 'zstd', level: 3 },
      encryption: { keyFile },
    });
    await lab.makeChanges('before-image', 20);
    await lab.saveImage();
    await lab.makeChanges('after-image', 10);
    for (const config of [zstdConfig, sealedConfig]) {
      const res = await runCli(['run', 'backup', '--config', config]);
      expect({ code: res.code, out: res.stdout }).toMatchObject({ code: 0 });
    }
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  test('by default the files are zstd on disk (zstd -t passes), and snapshot show names the compression and the ratio', async () => {
    const [snap] = await snapshots(zstdStore);
    expect(snap!.manifest.files.length).toBeGreaterThan(1);
    for (const f of snap!.manifest.files) {
      expect(f.stored).toMatchObject({ name: `${f.name}.zst`, compression: 'zstd' });
      const onDisk = await fs.readFile(path.join(snap!.dir, f.stored!.name));
      expect(onDisk.subarray(0, 4).equals(ZSTD_MAGIC)).toBe(true);
      expect(onDisk.length).toBe(f.stored!.size);
      expect((await execCapture('zstd', ['-t', '-q', path.join(snap!.dir, f.stored!.name)])).code).toBe(0);
      expect((await fs.stat(path.join(snap!.dir, f.stored!.name))).mode & 0o777).toBe(0o600);
      // The content's end is in the manifest (promote reads it instead of decompressing the whole file).
      const content = (
        await execCapture('sh', [
          '-c',
          `zstd -dc < '${path.join(snap!.dir, f.stored!.name)}' | tail -c 4096 | base64 -w0`,
        ])
      ).stdout;
      expect(f.stored!.tail).toBe(content);
    }
    expect(await fs.readdir(snap!.dir)).not.toContain(snap!.manifest.image.name);
    const show = await runCli(['snapshot', 'show', snap!.id, '--config', zstdConfig]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/stored +zstd: .* of metadata, ratio \d+\.\dx/);
    const json = JSON.parse(
      (await runCli(['snapshot', 'show', snap!.id, '--config', zstdConfig, '--json'])).stdout,
    ) as { storage: string; ratio: string; storedBytes: number; bytes: number };
    expect(json.storage).toBe('zstd');
    expect(json.storedBytes).toBeLessThan(json.bytes);
    expect(json.ratio).toBe(`${(json.bytes / json.storedBytes).toFixed(1)}x`);
  });

  test('a store of plain snapshots (made before compression) takes compressed ones beside: both verify, list shows each form, drill restores the plain one', async () => {
    const mixedStore = path.join(lab.dir, 'store-mixed');
    const frozen = path.join(lab.dir, 'frozen-for-mixed');
    await freezeDataPath(lab.master.dataPath, frozen);
    const plain = await writeSnapshot({
      store: mixedStore,
      image: path.join(frozen, 'metadata.mfs.back'),
      at: new Date(Date.now() - 60_000),
    });
    expect(plain.manifest.files.every((f) => f.stored === undefined)).toBe(true);
    const mixedConfig = await writeConfig('mixed', { path: mixedStore });
    await lab.makeChanges('mixed', 3);
    expect((await runCli(['run', 'backup', '--config', mixedConfig])).code).toBe(0);
    const [old, fresh] = await snapshots(mixedStore);
    expect(old!.id).toBe(plain.id);
    expect(fresh!.manifest.files.every((f) => f.stored?.compression === 'zstd')).toBe(true);
    const list = JSON.parse((await runCli(['snapshot', 'list', '--config', mixedConfig, '--json'])).stdout) as {
      snapshots: { id: string; storage: string }[];
    };
    expect(list.snapshots.map((r) => r.storage)).toEqual(['none', 'zstd']);
    const checked = await verify(mixedConfig);
    expect(checked.report.details.sources['older snapshots']).toMatchObject({ status: 'OK', checked: 1 });
    expect(checked.report.details.sources[`snapshot ${fresh!.id}`]!.status).toBe('OK');
    const drill = await runCli(['drill', '--snapshot', plain.id, '--config', mixedConfig]);
    expect(drill.stdout).toContain(
      `MFS DRILL OK - snapshot ${plain.id} restored to metadata version ${plain.manifest.reachesVersion}`,
    );
  });

  test('sealed: no file holds plaintext (no image magic, no zstd magic, no changelog text); the manifest names the key by id only', async () => {
    const [snap] = await snapshots(sealedStore);
    const key = (await fs.readFile(keyFile, 'latin1')).trim();
    for (const f of snap!.manifest.files) {
      expect(f.stored).toMatchObject({
        name: `${f.name}.zst.enc`,
        compression: 'zstd',
        encryption: { cipher: 'aes-256-gcm-chunked', chunkBytes: 1 << 20 },
      });
      const onDisk = await fs.readFile(path.join(snap!.dir, f.stored!.name));
      expect(onDisk.includes(Buffer.from('MFSM'))).toBe(false);
      expect(onDisk.includes(ZSTD_MAGIC)).toBe(false);
      expect(onDisk.includes(Buffer.from('after-image'))).toBe(false);
      expect(onDisk.subarray(0, 8).toString('latin1')).toBe('MFSJGCM2');
    }
    const manifestText = await fs.readFile(path.join(snap!.dir, 'manifest.json'), 'utf8');
    expect(manifestText).not.toContain(key);
    expect(snap!.manifest.files[0]!.stored!.encryption!.keyId).toMatch(/^[0-9a-f]{16}$/);
    const list = await runCli(['snapshot', 'list', '--config', sealedConfig]);
    expect(list.stdout).toContain('zstd + aes-256-gcm');
    expect(list.stdout).not.toContain('cannot be read');
  });

  test('drill boots a real scratch master from the compressed and encrypted snapshot', async () => {
    const [snap] = await snapshots(sealedStore);
    const res = await runCli(['drill', '--snapshot', snap!.id, '--config', sealedConfig]);
    expect(res.stdout).toContain(
      `MFS DRILL OK - snapshot ${snap!.id} restored to metadata version ${snap!.manifest.reachesVersion} and served`,
    );
    expect(res.code).toBe(0);
  });

  test('restore places plain MooseFS files from the sealed snapshot (the image header reads, the changelog is text)', async () => {
    const [snap] = await snapshots(sealedStore);
    const dataPath = path.join(lab.dir, 'restored');
    await fs.mkdir(dataPath, { mode: 0o700 });
    const target = snap!.manifest.reachesVersion - 1;
    const res = await runCli([
      'restore',
      '--snapshot',
      snap!.id,
      '--to-version',
      String(target),
      '--data-path',
      dataPath,
      '--config',
      sealedConfig,
    ]);
    expect({ code: res.code, out: res.stdout }).toMatchObject({ code: 0 });
    const names = await fs.readdir(dataPath);
    const image = names.find((n) => n.startsWith('metadata'))!;
    expect((await readImageHeader(path.join(dataPath, image))).version).toBe(snap!.manifest.image.version);
    const changelog = names.find((n) => n.startsWith('changelog'))!;
    expect(await fs.readFile(path.join(dataPath, changelog), 'latin1')).toMatch(/^\d+: \d+\|/);
  });

  test('export/import round trip of a compressed snapshot: the archive carries the stored files, the import verifies them', async () => {
    const [snap] = await snapshots(zstdStore);
    const archive = path.join(lab.dir, 'zstd.tar.gz');
    const exported = await runCli(['snapshot', 'export', snap!.id, archive, '--config', zstdConfig]);
    expect(exported.stdout).toContain(`exported snapshot ${snap!.id}`);
    const listed = (await execCapture('tar', ['tzf', archive])).stdout.split('\n').filter(Boolean);
    expect(listed).toEqual(
      expect.arrayContaining([
        `${snap!.id}/manifest.json`,
        ...snap!.manifest.files.map((f) => `${snap!.id}/${f.name}.zst`),
      ]),
    );
    const otherConfig = await writeConfig('imported', { path: path.join(lab.dir, 'store-imported') });
    const imported = await runCli(['snapshot', 'import', archive, '--config', otherConfig]);
    expect(imported.stdout).toContain(`imported snapshot ${snap!.id}, checksums and chain verified`);
    const [copy] = await snapshots(path.join(lab.dir, 'store-imported'));
    expect(copy!.manifest.files.map((f) => f.stored?.sha256)).toEqual(
      snap!.manifest.files.map((f) => f.stored?.sha256),
    );
    // A flipped byte in the archive's stored file: refused on import, naming the snapshot and file.
    const tree = path.join(lab.dir, 'tampered-tree');
    await fs.mkdir(tree);
    await execCapture('tar', ['xzf', archive, '-C', tree]);
    const stored = path.join(tree, snap!.id, snap!.manifest.files[0]!.stored!.name);
    const bytes = await fs.readFile(stored);
    bytes[bytes.length >> 1]! ^= 0xff;
    await fs.writeFile(stored, bytes);
    const tampered = path.join(lab.dir, 'tampered.tar.gz');
    await execCapture('tar', ['czf', tampered, '-C', tree, snap!.id]);
    const refused = await runCli([
      'snapshot',
      'import',
      tampered,
      '--config',
      await writeConfig('imported2', { path: path.join(lab.dir, 'store-imported2') }),
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(
      `snapshot ${snap!.id} does not verify, not imported: ${snap!.manifest.files[0]!.name}: `,
    );
    // A manifest whose stored tail lies (what promote would read as the file's end) is refused too.
    await execCapture('tar', ['xzf', archive, '-C', tree]);
    const manifestFile = path.join(tree, snap!.id, 'manifest.json');
    const m = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as { files: { stored: { tail: string } }[] };
    const lie = Buffer.from(m.files[0]!.stored.tail, 'base64');
    lie[lie.length - 2]! ^= 0x01;
    m.files[0]!.stored.tail = lie.toString('base64');
    await fs.writeFile(manifestFile, JSON.stringify(m));
    await execCapture('tar', ['czf', tampered, '-C', tree, snap!.id]);
    const lied = await runCli([
      'snapshot',
      'import',
      tampered,
      '--config',
      await writeConfig('imported3', { path: path.join(lab.dir, 'store-imported3') }),
    ]);
    expect(lied.code).toBe(2);
    expect(lied.stderr).toContain(
      `${snap!.manifest.files[0]!.name}: the manifest's stored.tail does not match the content's last`,
    );
  });

  test('verify checks every snapshot, reads an unchanged one only once, and names a flipped byte in an older one', async () => {
    await lab.makeChanges('second', 5);
    const second = await runCli(['run', 'backup', '--config', zstdConfig]);
    expect(second.code).toBe(0);
    const [old, newest] = await snapshots(zstdStore);
    expect(newest).toBeDefined();

    const first = await verify(zstdConfig);
    expect(first.report.details.sources['older snapshots']).toMatchObject({ status: 'OK', checked: 1 });
    const cache = cacheFile(path.join(lab.dir, 'state'));
    expect((await fs.stat(cache)).mode & 0o777).toBe(0o600);
    // Nothing changed: nothing is read again (the cache vouches for both snapshots).
    const again = await verify(zstdConfig);
    expect(again.report.details.sources['older snapshots']).toMatchObject({
      status: 'OK',
      checked: 1,
      rechecked: 0,
      cached: 1,
    });
    expect(again.report.details.sources[`snapshot ${newest!.id}`]!.status).toBe('OK');

    // Bit rot in the OLD snapshot's compressed image: found, named, CRITICAL.
    const f = old!.manifest.files.find((x) => x.role === 'image')!;
    const file = path.join(old!.dir, f.stored!.name);
    const bytes = await fs.readFile(file);
    bytes[bytes.length >> 1]! ^= 0x01;
    await fs.chmod(file, 0o600);
    await fs.writeFile(file, bytes);
    const broken = await verify(zstdConfig);
    expect(broken.code).toBe(2);
    expect(broken.report.status).toBe('CRITICAL');
    const older = broken.report.details.sources['older snapshots']!;
    expect(older).toMatchObject({ status: 'CRITICAL', rechecked: 1 });
    expect(older.findings[0]!.text).toMatch(
      new RegExp(
        `^snapshot ${old!.id}: ${f.name}: stored file ${f.stored!.name}: sha256 [0-9a-f]{12}… does not match the manifest`,
      ),
    );
    expect(broken.report.summary).toContain(`snapshot ${old!.id}`);
    // A damaged snapshot is never cached: the next run reads (and names) it again.
    expect((await verify(zstdConfig)).report.details.sources['older snapshots']).toMatchObject({
      status: 'CRITICAL',
      rechecked: 1,
    });
    // Drill re-checks what it copies: the damaged snapshot is refused, naming it.
    const drill = await runCli(['drill', '--snapshot', old!.id, '--config', zstdConfig]);
    expect(drill.code).toBe(2);
    expect(drill.stdout).toContain(`snapshot ${old!.id}: ${f.name}: stored file ${f.stored!.name}: sha256`);
  });

  test('a wrong key, a missing key and a key file others can read: each one clear line and a non-zero exit', async () => {
    const [snap] = await snapshots(sealedStore);
    const image = snap!.manifest.files.find((x) => x.role === 'image')!;

    const wrongConfig = await writeConfig('wrong-key', {
      path: sealedStore,
      encryption: { keyFile: await newKey('other.key') },
    });
    const wrong = await verify(wrongConfig);
    // Its manifest is signed with the store's key: with another, the snapshot is refused before any file is read.
    expect(wrong.code).toBe(2);
    expect(wrong.report.summary).toContain(`snapshot ${snap!.id} refused: `);
    expect(wrong.report.summary).toContain(
      `its manifest is signed with key "${image.stored!.encryption!.keyId}", the configured key is `,
    );
    const drill = await runCli(['drill', '--snapshot', snap!.id, '--config', wrongConfig]);
    expect(drill.code).toBe(2);
    expect(drill.stdout.split('\n')[0]).toMatch(
      new RegExp(
        `^MFS DRILL CRITICAL - .*snapshot ${snap!.id} is broken: .*its manifest is signed with key "${image.stored!.encryption!.keyId}"`,
      ),
    );

    const missingConfig = await writeConfig('no-key', { path: sealedStore });
    const missing = await verify(missingConfig);
    expect(missing.code).toBe(2);
    expect(missing.report.summary).toContain('no snapshotStore.encryption.keyFile is configured (key missing)');
    const list = await runCli(['snapshot', 'list', '--config', missingConfig]);
    expect(list.stdout).toContain(
      `cannot be read: ${snap!.id}: encrypted with key ${image.stored!.encryption!.keyId}, and no snapshotStore.encryption.keyFile is configured (key missing)`,
    );

    const exposed = await newKey('exposed.key', 0o640);
    const exposedConfig = await writeConfig('exposed', { path: sealedStore, encryption: { keyFile: exposed } });
    const backup = await runCli(['run', 'backup', '--config', exposedConfig]);
    expect(backup.code).not.toBe(0);
    const lines = backup.stdout.trim().split('\n');
    expect(lines[0]).toContain(
      `snapshotStore.encryption.keyFile ${exposed} is group-readable (mode 0640): any user of group 0 can read it; chmod 600 it`,
    );
    expect((await snapshots(sealedStore)).length).toBe(1);
  });

  test('without the zstd binary a backup fails in one line naming zstd, and takes no snapshot', async () => {
    await lab.makeChanges('no-zstd', 3);
    const before = (await snapshots(zstdStore)).length;
    const res = await runCli(['run', 'backup', '--config', zstdConfig], {
      env: { MFS_JOBS_ZSTD: path.join(lab.dir, 'no-such-zstd') },
    });
    expect(res.code).toBe(2);
    expect(res.stdout.split('\n')[0]).toMatch(
      /^MFS BACKUP CRITICAL - master: zstd is not installed \(the snapshot store compresses with it\): apt-get install zstd \|/,
    );
    expect((await snapshots(zstdStore)).length).toBe(before);
    expect(await fs.readdir(path.join(zstdStore, '.tmp'))).toEqual([]);
  });

  test('promote restores a standby from the sealed snapshot alone (snapshot store as the only source)', async () => {
    const [snap] = await snapshots(sealedStore);
    await lab.mount!.unmount();
    await lab.master.kill9();
    const standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    try {
      const doc = lab.configDocument({
        masters: [{ name: 'master', host: '127.0.0.1', cliPort: lab.master.ports.cl, dataPath: lab.master.dataPath }],
        metaloggers: [],
        snapshotStore: { path: sealedStore, encryption: { keyFile } },
        standby: {
          dataPath: standby.dataPath,
          masterConfig: standby.configFile,
          cliHost: '127.0.0.1',
          cliPort: standby.ports.cl,
        },
        jobs: { promote: { fenceTimeoutSeconds: 1 } },
      });
      const file = path.join(lab.dir, 'promote.yaml');
      await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
      const res = await runCli(['run', 'promote', '--config', file, '--json']);
      const report = JSON.parse(res.stdout) as {
        status: string;
        details: { plan: { image: { source: string }; reached: number } };
      };
      expect(report.details.plan.image.source).toBe(`snapshot:${snap!.id}`);
      expect(report.details.plan.reached).toBe(snap!.manifest.reachesVersion);
      expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBe(
        snap!.manifest.reachesVersion,
      );
    } finally {
      const pid = await runningMasterPid(standby.dataPath);
      if (pid !== undefined) {
        process.kill(pid, 'SIGKILL');
        await waitFor('standby master to exit', async () => (await runningMasterPid(standby.dataPath)) === undefined);
      }
    }
  }, 120_000);
});
