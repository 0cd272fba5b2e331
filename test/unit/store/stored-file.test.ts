import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execCapture } from '../../../lib/core/exec.js';
import type { ManifestFile, StoredSnapshot } from '../../../lib/store/manifest.js';
import { keyIdOf, type StoreKey } from '../../../lib/store/sealed.js';
import { openSnapshotFile, readSnapshotRange, sameContent, storeStagedFile } from '../../../lib/store/stored-file.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function read(snapshot: StoredSnapshot, f: ManifestFile): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of openSnapshotFile(snapshot, f)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The stored form written and read back with the real zstd CLI, and what a damaged one gives. */
describe('stored files (zstd through a pipe)', () => {
  let dir: string;
  let snapshot: StoredSnapshot;
  let content: Buffer;
  let f: ManifestFile;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-stored-'));
    snapshot = { id: '20260501T100000Z-v12', dir, manifest: {} as StoredSnapshot['manifest'] };
    // Half random (incompressible), half repetitive: several zstd blocks.
    content = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(3 << 20, 'changelog line\n')]);
    await fs.writeFile(path.join(dir, 'changelog.1.mfs'), content);
    const plain: ManifestFile = {
      name: 'changelog.1.mfs',
      role: 'changelog',
      size: content.length,
      sha256: sha(content),
      sourcePath: '/x',
      sourceSize: content.length,
      sourceMtimeMs: 0,
    };
    f = await storeStagedFile(
      dir,
      plain,
      { compression: { type: 'zstd', level: 3 } },
      { id: snapshot.id, image: { metaid: 'AB' } },
    );
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('written as <name>.zst (0600, the plain file gone), read back byte for byte; ranges from the head and the kept tail', async () => {
    expect(f.stored!.name).toBe('changelog.1.mfs.zst');
    expect(await fs.readdir(dir)).toEqual(['changelog.1.mfs.zst']);
    expect((await fs.stat(path.join(dir, 'changelog.1.mfs.zst'))).mode & 0o777).toBe(0o600);
    expect((await read(snapshot, f)).equals(content)).toBe(true);
    expect((await readSnapshotRange(snapshot, f, 10, 100)).equals(content.subarray(10, 110))).toBe(true);
    expect((await readSnapshotRange(snapshot, f, content.length - 50, 50)).equals(content.subarray(-50))).toBe(true);
  });

  test("bytes on disk that are not zstd, with the manifest agreeing: zstd's own complaint, one line naming the file, no hang", async () => {
    const garbage = randomBytes(1 << 20);
    await fs.writeFile(path.join(dir, 'garbage.zst'), garbage);
    const bad: ManifestFile = {
      ...f,
      name: 'garbage',
      stored: { ...f.stored!, name: 'garbage.zst', size: garbage.length, sha256: sha(garbage) },
    };
    await expect(read(snapshot, bad)).rejects.toThrow(
      `snapshot ${snapshot.id}: garbage: garbage.zst is not valid zstd data`,
    );
  });

  test('a flipped byte on disk: named by the stored checksum, whatever zstd makes of it', async () => {
    const bytes = await fs.readFile(path.join(dir, 'changelog.1.mfs.zst'));
    for (const at of [20, bytes.length >> 1, bytes.length - 3]) {
      const copy = Buffer.from(bytes);
      copy[at]! ^= 0x55;
      await fs.writeFile(path.join(dir, 'flipped.zst'), copy);
      const flipped: ManifestFile = { ...f, stored: { ...f.stored!, name: 'flipped.zst' } };
      await expect(read(snapshot, flipped)).rejects.toThrow(
        new RegExp(
          `^snapshot ${snapshot.id}: changelog\\.1\\.mfs: stored file flipped\\.zst: sha256 [0-9a-f]{12}… does not match the manifest`,
        ),
      );
    }
  });

  test('content bigger than the manifest says (a zstd bomb in an archive) stops at the limit', async () => {
    const small: ManifestFile = { ...f, size: 1000 };
    await expect(read(snapshot, small)).rejects.toThrow(
      `snapshot ${snapshot.id}: changelog.1.mfs: more than the 1000 bytes the manifest says`,
    );
  });
});

/** Issue #23 case 4: an encrypted file's entry keeps nothing of the plaintext in clear. */
describe('the content hash is taken in the same read as compression (issue 28)', () => {
  let dir: string;
  const content = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(1 << 20, 'x')]);
  const entry = (extra: Partial<ManifestFile> = {}): ManifestFile => ({
    ...{ name: 'metadata.mfs.back', role: 'image', size: content.length, sourcePath: '/x' },
    ...{ sourceSize: content.length, sourceMtimeMs: 0, ...extra },
  });
  const zstd = { compression: { type: 'zstd', level: 3 } } as const;
  const into = { id: '20260501T100000Z-v12', image: { metaid: 'AB' } };
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-stored-hash-'));
    await fs.writeFile(path.join(dir, 'metadata.mfs.back'), content);
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test("a staged entry without sha256 gets the content's, zstd or kept as it is", async () => {
    const zst = await storeStagedFile(dir, entry(), zstd, into);
    expect(zst.sha256).toBe(sha(content));
    await fs.writeFile(path.join(dir, 'metadata.mfs.back'), content);
    const plain = await storeStagedFile(dir, entry(), { compression: { type: 'none', level: 3 } }, into);
    expect(plain.sha256).toBe(sha(content));
    expect(plain.stored).toBeUndefined();
  });

  test('a given sha256 that the bytes do not have, or a size that differs: refused, naming the file', async () => {
    const other = entry({ sha256: sha(Buffer.from('other')) });
    const changed = storeStagedFile(dir, other, zstd, into);
    await expect(changed).rejects.toThrow(/metadata\.mfs\.back: content changed while storing/);
    await fs.rm(path.join(dir, 'metadata.mfs.back.zst'), { force: true });
    await fs.writeFile(path.join(dir, 'metadata.mfs.back'), content);
    const short = storeStagedFile(dir, entry({ size: 5 }), { compression: { type: 'none', level: 3 } }, into);
    await expect(short).rejects.toThrow(/metadata\.mfs\.back: \d+ bytes while storing, 5 when checked/);
  });
});

describe('stored files, sealed', () => {
  let dir: string;
  const raw = randomBytes(32);
  const key: StoreKey = { id: keyIdOf(raw), key: raw, file: '/test/key' };
  const secret = Buffer.from('CREATE(1,salaries-2026-CONFIDENTIAL.xlsx,1,438,0,0,0,0)\n');
  let content: Buffer;
  let snapshot: StoredSnapshot;
  let f: ManifestFile;
  const manifest = (id: string) => ({ id, image: { metaid: 'AB12' } }) as StoredSnapshot['manifest'];
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-sealed-'));
    snapshot = { id: '20260501T100000Z-v12', dir, manifest: manifest('20260501T100000Z-v12') };
    content = Buffer.concat([randomBytes(2 << 20), Buffer.alloc(1 << 20, 'x'), secret]);
    await fs.writeFile(path.join(dir, 'changelog.1.mfs'), content);
    const plain: ManifestFile = {
      name: 'changelog.1.mfs',
      role: 'changelog',
      size: content.length,
      sha256: sha(content),
      sourcePath: '/x',
      sourceSize: content.length,
      sourceMtimeMs: 0,
    };
    f = await storeStagedFile(dir, plain, { compression: { type: 'zstd', level: 3 }, key }, snapshot.manifest);
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('the entry has a keyed hmac and a sealed tail, no sha256 and no clear tail; the manifest text holds no plaintext', async () => {
    expect(f.sha256).toBeUndefined();
    expect(f.hmac).toMatch(/^[0-9a-f]{64}$/);
    expect(f.hmac).not.toBe(sha(content));
    expect(f.stored).toMatchObject({ name: 'changelog.1.mfs.zst.enc', encryption: { keyId: key.id } });
    expect(f.stored!.tail).toBeUndefined();
    const text = JSON.stringify(f);
    expect(text).not.toContain(sha(content));
    expect(text).not.toContain(secret.toString('base64').slice(0, 20));
    expect(text).not.toContain('salaries');
    expect((await fs.readFile(path.join(dir, f.stored!.name))).includes(Buffer.from('salaries'))).toBe(false);
  });

  test('read back with the key; the end comes from the sealed tail; sameContent checks the hmac', async () => {
    const parts: Buffer[] = [];
    for await (const c of openSnapshotFile(snapshot, f, { keys: { key } })) parts.push(c as Buffer);
    expect(Buffer.concat(parts).equals(content)).toBe(true);
    expect(
      (await readSnapshotRange(snapshot, f, content.length - secret.length, secret.length, { key })).equals(secret),
    ).toBe(true);
    await fs.writeFile(path.join(dir, 'probe'), content);
    expect(await sameContent(path.join(dir, 'probe'), f, key)).toBe(true);
    expect(await sameContent(path.join(dir, 'probe'), f, undefined)).toBe(false);
  });

  test('the same sealed file and entry under another snapshot id: refused (chunks and tail are bound to their snapshot)', async () => {
    const moved: StoredSnapshot = { id: '20260601T100000Z-v13', dir, manifest: manifest('20260601T100000Z-v13') };
    const read = async () => {
      for await (const _ of openSnapshotFile(moved, f, { keys: { key } })) void _;
    };
    await expect(read()).rejects.toThrow(
      'snapshot 20260601T100000Z-v13: changelog.1.mfs: cannot decrypt changelog.1.mfs.zst.enc: chunk 0 fails authentication',
    );
    await expect(readSnapshotRange(moved, f, content.length - 10, 10, { key })).rejects.toThrow(
      'sealed tail fails authentication',
    );
  });
});

/**
 * zstd bombs in a hostile store or copy (issue #23, "try and record"), against the real zstd CLI: a
 * few KiB that expand to 512 MiB stop at the manifest's size, and a frame asking for a 2 GiB window
 * is refused by zstd itself (its default memory limit, 128 MiB), in one line naming the file.
 */
describe('zstd bombs', () => {
  let dir: string;
  let snapshot: StoredSnapshot;
  const children = async () =>
    (await execCapture('ps', ['-o', 'comm=', '--ppid', String(process.pid)])).stdout
      .split('\n')
      .filter((c) => c === 'zstd');
  const bombOf = async (name: string, shell: string): Promise<ManifestFile> => {
    const file = path.join(dir, `${name}.zst`);
    expect((await execCapture('bash', ['-c', `${shell} > ${file}`])).code).toBe(0);
    const bytes = await fs.readFile(file);
    const stored = { name: `${name}.zst`, size: bytes.length, sha256: sha(bytes), compression: 'zstd' as const };
    return {
      name,
      role: 'changelog',
      size: 1 << 20,
      sha256: sha(Buffer.alloc(1 << 20)),
      sourcePath: '/x',
      sourceSize: 1 << 20,
      sourceMtimeMs: 0,
      stored,
    };
  };
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-bomb-'));
    snapshot = { id: '20260501T100000Z-v12', dir, manifest: {} as StoredSnapshot['manifest'] };
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('512 MiB of zeros in a few KiB, the manifest saying 1 MiB: stopped at 1 MiB, zstd killed, in seconds', async () => {
    const bomb = await bombOf('changelog.1.mfs', 'head -c 512M /dev/zero | zstd -q -1 -c');
    expect(bomb.stored!.size).toBeLessThan(64 * 1024);
    const started = Date.now();
    await expect(read(snapshot, bomb)).rejects.toThrow(
      `snapshot ${snapshot.id}: changelog.1.mfs: more than the ${1 << 20} bytes the manifest says`,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await children()).toEqual([]);
  }, 30_000);

  test('a frame that needs a 2 GiB window: zstd refuses to allocate it, one line naming the file', async () => {
    const bomb = await bombOf('changelog.2.mfs', 'head -c 4M /dev/urandom | zstd -q --long=31 -c');
    await expect(read(snapshot, bomb)).rejects.toThrow(
      new RegExp(
        `^snapshot ${snapshot.id}: changelog\\.2\\.mfs: changelog\\.2\\.mfs\\.zst is not valid zstd data \\(.*(memory|Window size)`,
      ),
    );
  }, 30_000);
});
