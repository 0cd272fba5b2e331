import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listSnapshots, manifestMac, readManifest, signManifest, type Manifest } from '../../../lib/store/manifest.js';
import { keyIdOf, sealedTailBytes, type StoreKey, type StoreKeys } from '../../../lib/store/sealed.js';

const keyOf = (raw = randomBytes(32), file = '/test/key'): StoreKey => ({ id: keyIdOf(raw), key: raw, file });

/**
 * Issue #23 case 5: a manifest is authenticated (HMAC under a key derived from the store key, or the
 * signing key) and checked in parseManifest, the one place every reader goes through; an encrypted
 * store's manifest keeps nothing from the plaintext in clear, and lists only files sealed by its key.
 */
describe("manifest MAC and the encrypted store's rules", () => {
  let dir: string;
  const key = keyOf();
  const sealedKeys: StoreKeys = { key };
  const signingKeys: StoreKeys = { signing: keyOf(randomBytes(32), '/test/signing') };
  const id = '20260501T100000Z-v12';
  const hex = (c: string) => c.repeat(64);

  const plainFile = {
    name: 'metadata.mfs.back',
    role: 'image',
    size: 10,
    sha256: hex('a'),
    sourcePath: '/x',
    sourceSize: 10,
    sourceMtimeMs: 1,
    stored: {
      name: 'metadata.mfs.back.zst',
      size: 5,
      sha256: hex('b'),
      compression: 'zstd',
      tail: Buffer.alloc(10, 1).toString('base64'),
    },
  };
  const sealedFile = (keyId = key.id) => ({
    name: 'metadata.mfs.back',
    role: 'image',
    size: 10,
    hmac: hex('c'),
    sourcePath: '/x',
    sourceSize: 10,
    sourceMtimeMs: 1,
    stored: {
      name: 'metadata.mfs.back.zst.enc',
      size: 80,
      sha256: hex('d'),
      compression: 'zstd',
      encryption: { cipher: 'aes-256-gcm-chunked', keyId, chunkBytes: 1 << 20 },
      tailSealed: randomBytes(sealedTailBytes(10)).toString('base64'),
    },
  });
  const manifestOf = (files: unknown[], over: Record<string, unknown> = {}) =>
    ({
      formatVersion: 1,
      id,
      source: { name: 'm', host: 'h', role: 'master', dataPath: '/d' },
      image: { name: 'metadata.mfs.back', version: 12, metaid: 'AB', empty: false },
      changelogs: {},
      reachesVersion: 12,
      files,
      mfsJobsVersion: 't',
      startedAt: 'a',
      finishedAt: 'b',
      ...over,
    }) as unknown as Manifest;

  async function write(m: unknown, into = path.join(dir, 'snapshots', id)): Promise<string> {
    await fs.mkdir(into, { recursive: true });
    await fs.writeFile(path.join(into, 'manifest.json'), JSON.stringify(m, null, 2));
    return into;
  }

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-trust-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('signed with the store key (or the signing key): read back; the MAC ignores whitespace and key order', async () => {
    const sealed = signManifest(manifestOf([sealedFile()]), sealedKeys);
    expect(sealed.mac).toMatchObject({
      alg: 'hmac-sha256',
      keyId: key.id,
      value: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect((await readManifest(await write(sealed), sealedKeys)).mac).toEqual(sealed.mac);
    const reordered = Object.fromEntries(Object.entries(sealed).reverse());
    await fs.writeFile(path.join(dir, 'snapshots', id, 'manifest.json'), JSON.stringify(reordered));
    await expect(readManifest(path.join(dir, 'snapshots', id), sealedKeys)).resolves.toBeDefined();
    const plain = signManifest(manifestOf([plainFile]), signingKeys);
    expect(plain.mac!.keyId).toBe(signingKeys.signing!.id);
    await expect(readManifest(await write(plain), signingKeys)).resolves.toBeDefined();
  });

  test('no key configured: unsigned manifests read as before (the store is not authenticated)', async () => {
    await expect(readManifest(await write(manifestOf([plainFile])), {})).resolves.toBeDefined();
  });

  test.each([
    [
      'a manifest without MAC (a forged snapshot on a copy)',
      (m: Manifest) => ({ ...m, mac: undefined }),
      /snapshot 20260501T100000Z-v12: its manifest carries no MAC .*refused/,
    ],
    [
      'the image version raised',
      (m: Manifest) => ({ ...m, reachesVersion: 17 }),
      /its manifest MAC does not match \(edited or forged\); refused/,
    ],
    [
      'a content hmac edited',
      (m: Manifest) => ({ ...m, files: [{ ...m.files[0]!, hmac: hex('e') }] }),
      /MAC does not match/,
    ],
    [
      'a stored size edited',
      (m: Manifest) => ({ ...m, files: [{ ...m.files[0]!, stored: { ...m.files[0]!.stored!, size: 81 } }] }),
      /MAC does not match/,
    ],
    [
      'a sealed tail swapped',
      (m: Manifest) => ({
        ...m,
        files: [
          {
            ...m.files[0]!,
            stored: { ...m.files[0]!.stored!, tailSealed: randomBytes(sealedTailBytes(10)).toString('base64') },
          },
        ],
      }),
      /MAC does not match/,
    ],
    ['the metaid changed', (m: Manifest) => ({ ...m, image: { ...m.image, metaid: 'CD' } }), /MAC does not match/],
    [
      'a MAC that is not one',
      (m: Manifest) => ({ ...m, mac: { alg: 'md5', keyId: key.id, value: 'x' } }),
      /MAC is not an hmac-sha256/,
    ],
    [
      'a MAC by another key',
      (m: Manifest) => signManifest(m, { key: keyOf() }),
      /its manifest is signed with key "[0-9a-f]{16}", the configured key is [0-9a-f]{16}; refused/,
    ],
  ])('refused with the store key: %s', async (_, change, message) => {
    const m = change(signManifest(manifestOf([sealedFile()]), sealedKeys));
    await expect(readManifest(await write(m), sealedKeys)).rejects.toThrow(message);
  });

  test('an encrypted store refuses, naming the file, an unsealed file, a file of another key, or a plaintext sha256/tail — even in a manifest it signed', async () => {
    const plain = signManifest(manifestOf([plainFile]), sealedKeys);
    await expect(readManifest(await write(plain), sealedKeys)).rejects.toThrow(
      'snapshot 20260501T100000Z-v12: metadata.mfs.back is not encrypted, in an encrypted store; refused',
    );
    const other = signManifest(manifestOf([sealedFile('0123456789abcdef')]), sealedKeys);
    await expect(readManifest(await write(other), sealedKeys)).rejects.toThrow(
      `metadata.mfs.back is encrypted with key 0123456789abcdef, not the store's ${key.id}; refused`,
    );
    const { hmac: _h, ...withSha } = sealedFile();
    const leaky = signManifest(manifestOf([{ ...withSha, sha256: hex('a') }]), sealedKeys);
    await expect(readManifest(await write(leaky), sealedKeys)).rejects.toThrow(
      'metadata.mfs.back: its entry keeps a plaintext sha256 or tail, in an encrypted store; refused',
    );
  });

  test('a configured key that is unusable refuses every manifest (nothing can be checked), naming the key problem', async () => {
    const m = signManifest(manifestOf([sealedFile()]), sealedKeys);
    await expect(
      readManifest(await write(m), { problem: 'snapshotStore.encryption.keyFile /k: readable by others' }),
    ).rejects.toThrow(
      'cannot check its manifest: the configured key is unusable: snapshotStore.encryption.keyFile /k: readable by others',
    );
  });

  test('entry forms: hmac only on an encrypted file, never both or neither of sha256 and hmac, a sealed tail of the right size', async () => {
    const read = (f: unknown) => write(manifestOf([f])).then((d) => readManifest(d, {}));
    await expect(read({ ...plainFile, hmac: hex('c') })).rejects.toThrow(
      'files[0] has both or neither of sha256 and hmac',
    );
    const { sha256: _s, ...noDigest } = plainFile;
    await expect(read(noDigest)).rejects.toThrow('files[0] has both or neither of sha256 and hmac');
    await expect(read({ ...noDigest, hmac: hex('c') })).rejects.toThrow(
      'files[0].hmac on a file that is not encrypted',
    );
    const f = sealedFile();
    await expect(read({ ...f, stored: { ...f.stored, tailSealed: 'AAAA' } })).rejects.toThrow(
      'files[0].stored.tailSealed is not a sealed tail of this file',
    );
    await expect(read({ ...f, stored: { ...f.stored, tail: Buffer.alloc(10).toString('base64') } })).rejects.toThrow(
      'files[0].stored.tail in clear on an encrypted file',
    );
  });

  test("a signed manifest copied into another snapshot's directory is not that snapshot (listSnapshots)", async () => {
    const m = signManifest(manifestOf([sealedFile()]), sealedKeys);
    await write(m);
    await write(m, path.join(dir, 'snapshots', '20260601T100000Z-v99'));
    const { snapshots, broken } = await listSnapshots(dir, sealedKeys);
    expect(snapshots.map((s) => s.id)).toEqual([id]);
    expect(broken).toEqual([
      {
        id: '20260601T100000Z-v99',
        error: expect.stringContaining(`manifest says id "${id}", not "20260601T100000Z-v99"`),
        untrusted: true,
      },
    ]);
  });

  test('the MAC covers every field but itself (manifestMac is deterministic)', () => {
    const m = manifestOf([sealedFile()]);
    expect(manifestMac(m, key)).toEqual(manifestMac(JSON.parse(JSON.stringify(m)) as Manifest, key));
    expect(manifestMac({ ...m, mfsJobsVersion: 'u' }, key).value).not.toBe(manifestMac(m, key).value);
  });
});
