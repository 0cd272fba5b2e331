import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readManifest } from '../../../lib/store/manifest.js';

/** A manifest is outside input (an imported archive): its stored form is checked before any field is used. */
describe('manifest stored form', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-manifest-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const sha = 'a'.repeat(64);
  const file = (stored?: unknown) => ({
    name: 'metadata.mfs.back',
    role: 'image',
    size: 10,
    sha256: sha,
    sourcePath: '/x',
    sourceSize: 10,
    sourceMtimeMs: 1,
    ...(stored === undefined ? {} : { stored }),
  });
  const manifest = (f: unknown) => ({
    formatVersion: 1,
    id: '20260501T100000Z-v12',
    source: {},
    image: { name: 'metadata.mfs.back', version: 12, metaid: 'AB', empty: false },
    changelogs: {},
    reachesVersion: 12,
    files: [f],
  });
  async function read(f: unknown) {
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest(f)));
    return readManifest(dir, {});
  }
  const zst = { name: 'metadata.mfs.back.zst', size: 5, sha256: sha, compression: 'zstd' };
  const enc = { cipher: 'aes-256-gcm-chunked', keyId: '0123456789abcdef', chunkBytes: 1 << 20 };

  test('old manifests (no stored form) and each valid stored form are read', async () => {
    expect((await read(file())).files[0]!.stored).toBeUndefined();
    expect((await read(file(zst))).files[0]!.stored).toEqual(zst);
    expect((await read(file({ ...zst, tail: Buffer.alloc(10, 1).toString('base64') }))).files[0]!.stored!.tail).toBe(
      'AQEBAQEBAQEBAQ==',
    );
    expect(
      (await read(file({ ...zst, name: 'metadata.mfs.back.zst.enc', encryption: enc }))).files[0]!.stored!.encryption,
    ).toEqual(enc);
    expect(
      (await read(file({ ...zst, name: 'metadata.mfs.back.enc', compression: 'none', encryption: enc }))).files[0]!
        .stored!.compression,
    ).toBe('none');
  });

  test.each([
    [
      'a stored name that is not <name>.zst',
      { ...zst, name: '../../etc/passwd' },
      /files\[0\]\.stored\.name .* is not "metadata\.mfs\.back\.zst"/,
    ],
    ["another file's stored name", { ...zst, name: 'changelog.0.mfs.zst' }, /stored\.name/],
    ['an unknown compression', { ...zst, compression: 'lz4' }, /stored\.compression "lz4" is not zstd or none/],
    ['a negative stored size', { ...zst, size: -1 }, /stored\.size "-1" is not a size/],
    ['a stored sha256 that is not one', { ...zst, sha256: 'xyz' }, /stored\.sha256 is not a sha256/],
    [
      'another cipher',
      { ...zst, name: 'metadata.mfs.back.zst.enc', encryption: { ...enc, cipher: 'aes-128-cbc' } },
      /encryption\.cipher/,
    ],
    [
      'a key id that is not 16 hex digits',
      { ...zst, name: 'metadata.mfs.back.zst.enc', encryption: { ...enc, keyId: 'KEY' } },
      /encryption\.keyId/,
    ],
    [
      'a chunk size of its own (memory)',
      { ...zst, name: 'metadata.mfs.back.zst.enc', encryption: { ...enc, chunkBytes: 2 ** 31 } },
      /encryption\.chunkBytes/,
    ],
    [
      "a tail of another length than the content's last bytes",
      { ...zst, tail: Buffer.alloc(3).toString('base64') },
      /stored\.tail is not the last 10 bytes/,
    ],
    ['a tail that is not base64', { ...zst, tail: '<script>' }, /stored\.tail/],
    [
      'neither compressed nor encrypted',
      { ...zst, name: 'metadata.mfs.back', compression: 'none' },
      /neither compressed nor encrypted/,
    ],
  ])('refused: %s', async (_, stored, message) => {
    await expect(read(file(stored))).rejects.toThrow(message);
  });

  test('content sizes and checksums are checked too', async () => {
    await expect(read({ ...file(), size: 1.5 })).rejects.toThrow(/files\[0\]\.size "1\.5" is not a size/);
    await expect(read({ ...file(), sha256: 'nope' })).rejects.toThrow(/files\[0\]\.sha256 is not a sha256/);
  });
});
