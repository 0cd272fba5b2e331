import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { listSnapshots, type StoredSnapshot } from '../../lib/store/manifest.js';
import { loadStoreKey, type StoreKeys } from '../../lib/store/sealed.js';
import { openSnapshotFile } from '../../lib/store/stored-file.js';
import { runCli } from '../helpers/cli.js';
import { attackTest } from '../faults/results.js';
import { writeSnapshot } from '../helpers/snapshot-fixture.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { processesIn } from '../lab/proc.js';
import { LabS3 } from '../lab/s3.js';
import { LabSshd } from '../lab/sshd.js';
import { withoutStore as losingStore } from '../helpers/store-loss.js';

/** The file name the namespace must never show through an encrypted store (issue #23 case 4). */
const SECRET = 'salaries-2026-CONFIDENTIAL.xlsx';
const SECRET_LATER = 'bonus-2027-CONFIDENTIAL.docx';

interface Report {
  status: string;
  summary: string;
  lines: string[];
}

/** Every file under `dir` (recursively), with its bytes. */
async function filesUnder(dir: string): Promise<{ file: string; bytes: Buffer }[]> {
  const out: { file: string; bytes: Buffer }[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push({ file: p, bytes: await fs.readFile(p) });
  }
  return out;
}

/** Every string value in a JSON document (a manifest), and what each is as base64, if it is some. */
function jsonStrings(bytes: Buffer): Buffer[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return [];
  }
  const out: Buffer[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      out.push(Buffer.from(v, 'utf8'));
      if (/^[A-Za-z0-9+/]{8,}={0,2}$/.test(v)) out.push(Buffer.from(v, 'base64'));
    } else if (v && typeof v === 'object') Object.values(v as Record<string, unknown>).forEach(walk);
  };
  walk(doc);
  return out;
}

/**
 * Issue #23 cases 4 and 5 on the store side, against a real master with a FUSE mount, a real sshd as
 * the SFTP copy and a real Ceph RGW as the S3 copy: an encrypted store (files, manifests, copies) shows
 * nothing of the namespace, and a manifest the store did not sign — a forged snapshot on a copy, an
 * edited entry, a sealed file moved — is refused by every reader, naming the snapshot.
 */
describe('an encrypted, signed snapshot store and its copies against an attacker who can write the copies', () => {
  let lab: Lab;
  let copySshd: LabSshd;
  let s3: LabS3;
  let client: S3Client;
  let store: string;
  let remoteDir: string;
  let keyFile: string;
  let keys: StoreKeys;
  let config: string;
  const bucket = 'mfs-trust';
  let genuine: StoredSnapshot;

  /** The lab's master, read from its DATA_PATH on this machine (no sshd in this lab). */
  const local = () => ({
    masters: [
      { name: 'master', host: '127.0.0.1', cliPort: lab.master.ports.cl, dataPath: lab.master.dataPath, local: true },
    ],
    metaloggers: [],
  });
  const copies = () => [
    {
      name: 'offsite-sftp',
      type: 'sftp',
      host: '127.0.0.1',
      port: copySshd.port,
      user: 'root',
      identityFile: copySshd.clientKey,
      knownHosts: copySshd.knownHosts,
      path: remoteDir,
      timeoutSeconds: 5,
    },
    {
      name: 'offsite',
      type: 's3',
      endpoint: s3.endpoint,
      bucket,
      prefix: 'mfs/',
      forcePathStyle: true,
      credentialsFile: path.join(lab.dir, 's3-credentials.json'),
      timeoutSeconds: 5,
    },
  ];
  const s3Objects = async (prefix = 'mfs/') => {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const out: { file: string; bytes: Buffer }[] = [];
    for (const o of listed.Contents ?? []) {
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      out.push({ file: `s3://${bucket}/${o.Key}`, bytes: Buffer.from(await got.Body!.transformToByteArray()) });
    }
    return out;
  };
  const json = async (args: string[]) => {
    const res = await runCli([...args, '--config', config, '--json']);
    return { code: res.code, report: JSON.parse(res.stdout) as Report, stderr: res.stderr };
  };

  /** `fn` with the local store's disk lost (moved aside), put back afterwards. */
  const withoutStore = (fn: () => Promise<void>) => losingStore(store, fn);

  beforeAll(async () => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    lab = await Lab.start({ metalogger: false, mount: true, sshd: false });
    [copySshd, s3] = await Promise.all([
      LabSshd.start(path.join(lab.dir, 'copy-ssh')),
      LabS3.start(path.join(lab.dir, 's3')),
    ]);
    await s3.writeCredentials(path.join(lab.dir, 's3-credentials.json'));
    client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: LabS3.ACCESS_KEY, secretAccessKey: LabS3.SECRET_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    store = path.join(lab.dir, 'snapshots');
    remoteDir = path.join(lab.dir, 'offsite');
    keyFile = path.join(lab.dir, 'store.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    keys = { key: await loadStoreKey(keyFile) };
    config = await lab.writeConfig({
      ...local(),
      snapshotStore: { path: store, encryption: { keyFile }, copies: copies() },
      jobs: { backup: { snapshotOnNewChangelogs: true }, drill: { scratchDir: path.join(lab.dir, 'scratch') } },
    });
    // The name in the image (saved after it was made) and in a changelog (made after the image).
    await fs.writeFile(path.join(lab.mount!.dir, SECRET), ''); // no chunkserver: names only, no data
    await lab.makeChanges('before-image', 5);
    await lab.saveImage();
    await fs.writeFile(path.join(lab.mount!.dir, SECRET_LATER), '');
    await fs.rename(path.join(lab.mount!.dir, SECRET_LATER), path.join(lab.mount!.dir, `${SECRET_LATER}.old`));
    const res = await runCli(['run', 'backup', '--config', config]);
    if (res.code !== 0) throw new Error(`backup: ${res.code}: ${res.stdout}${res.stderr}`);
    genuine = (await listSnapshots(store, keys)).snapshots.at(-1)!;
  }, 180_000);

  afterAll(async () => {
    for (const pid of await processesIn(path.join(lab.dir, 'scratch')).catch(() => [] as number[]))
      process.kill(pid, 'SIGKILL');
    client?.destroy();
    await s3?.stop();
    await copySshd?.stop();
    await lab?.stop();
  }, 60_000);

  attackTest(
    'store trust',
    'namespace read from an encrypted store and its copies',
    'case 4: no byte of the store, its manifests or either copy names a file of the namespace, or confirms the plaintext (sha256, tails)',
    async () => {
      // The names are really in the snapshot's content (decrypted with the key): the search below has something to miss.
      const plain: Buffer[] = [];
      for (const f of genuine.manifest.files) {
        const parts: Buffer[] = [];
        for await (const c of openSnapshotFile(genuine, f, { keys })) parts.push(c as Buffer);
        plain.push(Buffer.concat(parts));
      }
      expect(plain.some((b) => b.includes(Buffer.from(SECRET)))).toBe(true);
      expect(plain.some((b) => b.includes(Buffer.from(SECRET_LATER)))).toBe(true);
      const digests = plain.map((b) => createHash('sha256').update(b).digest('hex'));
      const tails = plain.map((b) => b.subarray(-64));

      const everything = [...(await filesUnder(store)), ...(await filesUnder(remoteDir)), ...(await s3Objects())];
      expect(everything.filter((f) => f.file.endsWith('manifest.json'))).toHaveLength(3);
      const found: string[] = [];
      for (const { file, bytes } of everything) {
        for (const hay of [bytes, ...jsonStrings(bytes)]) {
          for (const needle of ['CONFIDENTIAL', 'salaries', ...digests])
            if (hay.includes(Buffer.from(needle))) found.push(`${file}: ${needle}`);
          for (const t of tails) if (hay.includes(t)) found.push(`${file}: a content tail`);
        }
      }
      expect(found).toEqual([]);
      // The manifest: keyed content checksums and sealed tails, a MAC, the key named by its id only.
      for (const f of genuine.manifest.files) {
        expect(f).toMatchObject({
          hmac: expect.stringMatching(/^[0-9a-f]{64}$/),
          stored: { tailSealed: expect.any(String), encryption: { keyId: keys.key!.id } },
        });
        expect(f.sha256).toBeUndefined();
        expect(f.stored!.tail).toBeUndefined();
      }
      expect(genuine.manifest.mac).toMatchObject({ alg: 'hmac-sha256', keyId: keys.key!.id });
    },
  );

  attackTest(
    'store trust',
    'forged snapshot of another filesystem on S3/SFTP copies',
    'case 5 (A): a newer snapshot of another filesystem, plain files and an unsigned manifest, put in the S3 and SFTP copies: restore and drill from the copy never use it, and name it',
    async () => {
      // Another filesystem: a master of its own, its saved image as a plain snapshot (no `stored`, no MAC).
      const other = await LabMaster.create(path.join(lab.dir, 'other-fs'));
      await other.start();
      await other.stop();
      // A stopped master leaves its image as metadata.mfs: taken as the forger's metadata.mfs.back.
      const otherImage = path.join(lab.dir, 'other-image');
      await fs.mkdir(otherImage);
      await fs.copyFile(path.join(other.dataPath, 'metadata.mfs'), path.join(otherImage, 'metadata.mfs.back'));
      const forgeStore = path.join(lab.dir, 'forge');
      const forged = await writeSnapshot({
        store: forgeStore,
        image: path.join(otherImage, 'metadata.mfs.back'),
        changelogs: [],
        at: new Date(Date.now() + 1000),
      });
      expect(forged.id > genuine.id).toBe(true);
      expect(forged.manifest.image.metaid).not.toBe(genuine.manifest.image.metaid);
      const names = [...forged.manifest.files.map((f) => f.name), 'manifest.json'];
      for (const name of names) {
        const body = await fs.readFile(path.join(forged.dir, name));
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: `mfs/snapshots/${forged.id}/${name}`,
            Body: body,
            Metadata: { sha256: createHash('sha256').update(body).digest('hex') },
          }),
        );
        await fs.mkdir(path.join(remoteDir, 'snapshots', forged.id), { recursive: true });
        await fs.writeFile(path.join(remoteDir, 'snapshots', forged.id, name), body);
      }
      const listed = JSON.parse(
        (await runCli(['snapshot', 'list', '--copy', 'offsite', '--config', config, '--json'])).stdout,
      ) as { snapshots: { id: string }[]; broken: { id: string; error: string }[] };
      expect(listed.snapshots.map((s) => s.id)).toEqual([genuine.id]);
      expect(listed.broken).toEqual([
        { id: forged.id, error: expect.stringContaining(`snapshot ${forged.id}: its manifest carries no MAC`) },
      ]);
      await withoutStore(async () => {
        const dataPath = path.join(lab.dir, 'restored-a');
        const latest = await json(['run', 'restore', '--from', 'copy:offsite', '--data-path', dataPath]);
        // The newest snapshot the copy holds that the store signed: the genuine one, never the forgery.
        expect(latest.report.summary).toContain(`snapshot ${genuine.id} of copy offsite`);
        expect(latest.report.summary).not.toContain(forged.id);
        const named = await json([
          'run',
          'restore',
          '--from',
          'copy:offsite',
          '--snapshot',
          forged.id,
          '--data-path',
          path.join(lab.dir, 'restored-a2'),
        ]);
        expect(named.code).toBe(2);
        expect(named.report.summary).toContain(`copy offsite: snapshot ${forged.id} is broken: `);
        expect(named.report.summary).toContain('its manifest carries no MAC');
        const drill = await json(['run', 'drill', '--from', 'copy:offsite-sftp', '--snapshot', forged.id]);
        expect(drill.code).toBe(2);
        expect(drill.report.summary).toContain(`copy offsite-sftp: snapshot ${forged.id} is broken: `);
      });
      // verify names the forgery on both copies (a copy someone writes to is worth a look).
      const verify = JSON.parse((await runCli(['run', 'verify', '--config', config, '--json'])).stdout) as {
        details: { copies: Record<string, { broken: { id: string; error: string }[] }> };
      };
      for (const c of ['offsite', 'offsite-sftp'])
        expect(verify.details.copies[c]!.broken.map((b) => b.id)).toEqual([forged.id]);
    },
    180_000,
  );

  attackTest(
    'store trust',
    'manifest entry edited, sealed file moved',
    'case 5 (B): an edited manifest entry (hmac, size, sealed tail) or a sealed file moved from another snapshot is refused, naming the snapshot',
    async () => {
      await lab.makeChanges('second', 3);
      expect((await runCli(['run', 'backup', '--config', config])).code).toBe(0);
      const [older, newer] = (await listSnapshots(store, keys)).snapshots.slice(-2);
      const manifestFile = path.join(remoteDir, 'snapshots', newer!.id, 'manifest.json');
      const original = await fs.readFile(manifestFile, 'utf8');
      type Entry = {
        role: string;
        hmac: string;
        size: number;
        stored: { tailSealed: string; size: number; sha256: string };
      };
      const edits: [string, (e: Entry) => void][] = [
        ['hmac', (e) => (e.hmac = 'f'.repeat(64))],
        ['stored size', (e) => (e.stored.size += 1)],
        [
          'tail',
          (e) =>
            (e.stored.tailSealed = randomBytes(Buffer.from(e.stored.tailSealed, 'base64').length).toString('base64')),
        ],
      ];
      for (const [what, edit] of edits) {
        const m = JSON.parse(original) as { files: Entry[] };
        edit(m.files[0]!);
        await fs.writeFile(manifestFile, JSON.stringify(m, null, 2));
        const drill = await json(['run', 'drill', '--from', 'copy:offsite-sftp', '--snapshot', newer!.id]);
        expect({ what, code: drill.code }).toEqual({ what, code: 2 });
        expect(drill.report.summary).toContain(
          `snapshot ${newer!.id}: its manifest MAC does not match (edited or forged); refused`,
        );
      }
      await fs.writeFile(manifestFile, original);

      // In the store itself: the older snapshot's sealed image moved into the newer one, its entry made to
      // match (size, stored sha256) as an attacker would — the MAC no longer matches.
      const image = (s: StoredSnapshot) => s.manifest.files.find((f) => f.role === 'image')!;
      const moved = path.join(older!.dir, image(older!).stored!.name);
      const target = path.join(newer!.dir, image(newer!).stored!.name);
      const saved = await fs.readFile(target);
      const savedManifest = await fs.readFile(path.join(newer!.dir, 'manifest.json'), 'utf8');
      try {
        await fs.copyFile(moved, target);
        const m = JSON.parse(savedManifest) as { files: Entry[] };
        const entry = m.files.find((f) => f.role === 'image')!;
        entry.stored.size = (await fs.stat(moved)).size;
        entry.stored.sha256 = image(older!).stored!.sha256;
        await fs.writeFile(path.join(newer!.dir, 'manifest.json'), JSON.stringify(m, null, 2));
        const list = JSON.parse((await runCli(['snapshot', 'list', '--config', config, '--json'])).stdout) as {
          broken: { id: string; error: string }[];
        };
        expect(list.broken).toEqual([
          {
            id: newer!.id,
            error: expect.stringContaining(`snapshot ${newer!.id}: its manifest MAC does not match`),
            untrusted: true,
          },
        ]);
        const verify = await json(['run', 'verify']);
        expect(verify.code).toBe(2);
        expect(verify.report.summary).toContain(`snapshot ${newer!.id} refused: `);
      } finally {
        await fs.writeFile(target, saved);
        await fs.writeFile(path.join(newer!.dir, 'manifest.json'), savedManifest);
      }
    },
    180_000,
  );

  test("migration: a store's unsigned plain snapshots are refused once a key is configured, until `snapshot sign --yes` verifies and re-seals them", async () => {
    const oldStore = path.join(lab.dir, 'old-store');
    await lab.saveImage();
    const frozen = path.join(lab.dir, 'frozen-old');
    await fs.mkdir(frozen, { recursive: true });
    await fs.copyFile(path.join(lab.master.dataPath, 'metadata.mfs.back'), path.join(frozen, 'metadata.mfs.back'));
    const old = await writeSnapshot({ store: oldStore, image: path.join(frozen, 'metadata.mfs.back'), changelogs: [] });
    const cfg = await lab.writeConfig(
      {
        ...local(),
        snapshotStore: { path: oldStore, encryption: { keyFile } },
        jobs: { drill: { scratchDir: path.join(lab.dir, 'scratch') } },
      },
      'config-old.yaml',
    );
    const before = JSON.parse((await runCli(['snapshot', 'list', '--config', cfg, '--json'])).stdout) as {
      snapshots: unknown[];
      broken: { id: string; error: string }[];
    };
    expect(before.snapshots).toEqual([]);
    expect(before.broken).toEqual([
      {
        id: old.id,
        error: expect.stringContaining(
          'its manifest carries no MAC (forged, or written before manifests were signed: mfs-jobs snapshot sign); refused',
        ),
        untrusted: true,
      },
    ]);
    const dry = await runCli(['snapshot', 'sign', '--config', cfg]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would sign (re-sealed): ${old.id}`);
    expect(JSON.parse((await runCli(['snapshot', 'list', '--config', cfg, '--json'])).stdout).snapshots).toEqual([]);
    const done = await runCli(['snapshot', 'sign', '--yes', '--config', cfg]);
    expect({ code: done.code, out: done.stdout }).toMatchObject({
      code: 0,
      out: expect.stringContaining(`signed (re-sealed): ${old.id}`),
    });
    const [signed] = (await listSnapshots(oldStore, keys)).snapshots;
    expect(signed!.id).toBe(old.id);
    expect(
      signed!.manifest.files.every(
        (f) => f.stored?.encryption?.keyId === keys.key!.id && f.hmac !== undefined && f.sha256 === undefined,
      ),
    ).toBe(true);
    for (const f of signed!.manifest.files)
      expect((await fs.readFile(path.join(signed!.dir, f.stored!.name))).subarray(0, 8).toString('latin1')).toBe(
        'MFSJGCM2',
      );
    const drill = await runCli(['run', 'drill', '--snapshot', old.id, '--config', cfg]);
    expect(drill.stdout).toContain(`snapshot ${old.id} restored to metadata version ${old.manifest.reachesVersion}`);
    // Signed once: a second run has nothing to do; a forged MAC is never re-signed.
    expect((await runCli(['snapshot', 'sign', '--yes', '--config', cfg])).stdout).toContain(
      '1 already signed, 0 signed now, 0 refused',
    );
  }, 180_000);

  attackTest(
    'store trust',
    'forged manifest on a copy of a signed plain store',
    'an unencrypted store with snapshotStore.signingKeyFile: backup signs, a forged snapshot on the SFTP copy is refused; without any key a store works as before',
    async () => {
      const signingKey = path.join(lab.dir, 'signing.key');
      await fs.writeFile(signingKey, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
      const plainStore = path.join(lab.dir, 'signed-store');
      const plainRemote = path.join(lab.dir, 'signed-offsite');
      const sftpCopy = { ...copies()[0]!, name: 'signed-sftp', path: plainRemote };
      const cfg = await lab.writeConfig(
        {
          ...local(),
          snapshotStore: { path: plainStore, signingKeyFile: signingKey, copies: [sftpCopy] },
          jobs: { drill: { scratchDir: path.join(lab.dir, 'scratch') } },
        },
        'config-signed.yaml',
      );
      await lab.makeChanges('signed', 2);
      expect((await runCli(['run', 'backup', '--config', cfg])).code).toBe(0);
      const signingKeys = { signing: await loadStoreKey(signingKey, 'snapshotStore.signingKeyFile') };
      const [snap] = (await listSnapshots(plainStore, signingKeys)).snapshots;
      expect(snap!.manifest.mac?.keyId).toBe(signingKeys.signing.id);
      expect(snap!.manifest.files.every((f) => f.sha256 !== undefined && f.stored?.encryption === undefined)).toBe(
        true,
      );
      // The copy's manifest with a version raised: refused; the store without a key configured takes it (not authenticated).
      const manifestFile = path.join(plainRemote, 'snapshots', snap!.id, 'manifest.json');
      const m = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as { reachesVersion: number; mac?: unknown };
      m.reachesVersion += 5;
      delete m.mac;
      await fs.writeFile(manifestFile, JSON.stringify(m));
      const listed = JSON.parse(
        (await runCli(['snapshot', 'list', '--copy', 'signed-sftp', '--config', cfg, '--json'])).stdout,
      ) as { snapshots: unknown[]; broken: { id: string; error: string }[] };
      expect(listed.snapshots).toEqual([]);
      expect(listed.broken[0]).toEqual({ id: snap!.id, error: expect.stringContaining('its manifest carries no MAC') });
      const unkeyed = await lab.writeConfig(
        { ...local(), snapshotStore: { path: plainStore, copies: [sftpCopy] } },
        'config-unkeyed.yaml',
      );
      const open = JSON.parse(
        (await runCli(['snapshot', 'list', '--copy', 'signed-sftp', '--config', unkeyed, '--json'])).stdout,
      ) as { snapshots: { id: string }[] };
      expect(open.snapshots.map((s) => s.id)).toEqual([snap!.id]);
      // Both keys at once is a config error naming the key.
      const both = await lab.writeConfig(
        { ...local(), snapshotStore: { path: plainStore, signingKeyFile: signingKey, encryption: { keyFile } } },
        'config-both.yaml',
      );
      const refused = await runCli(['snapshot', 'list', '--config', both]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain('snapshotStore.signingKeyFile');
    },
    180_000,
  );
});
