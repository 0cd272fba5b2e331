import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CHUNK_BYTES,
  decryptStage,
  encryptStage,
  HEADER_BYTES,
  keyIdOf,
  loadStoreKey,
  openTail,
  SealError,
  sealTail,
  type SealContext,
  type StoreKey,
} from '../../../lib/store/sealed.js';

const TAG = 16;
const keyOf = (raw = randomBytes(32)): StoreKey => ({ id: keyIdOf(raw), key: raw, file: '/test/key' });

async function collect(gen: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

/** Feed `data` in pieces of `piece` bytes (chunk boundaries must not matter). */
function feed(data: Buffer, piece = 65536): AsyncIterable<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return Readable.from(parts.length ? parts : [Buffer.alloc(0)]);
}

const here: SealContext = { metaid: '1A2B3C', snapshot: '20260501T100000Z-v12', file: 'metadata.mfs.back' };
const seal = (key: StoreKey, plain: Buffer, at = here) => collect(encryptStage(key, at)(feed(plain)));
const unseal = (key: StoreKey | undefined, sealed: Buffer, piece?: number, at = here) =>
  collect(decryptStage(key, key?.id ?? keyIdOf(Buffer.alloc(32)), at)(feed(sealed, piece)));

describe('chunked AES-256-GCM framing', () => {
  const key = keyOf();

  test.each([0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 12345])(
    'round trip of %i bytes, fed in any piece size',
    async (n) => {
      const plain = randomBytes(n);
      const sealed = await seal(key, plain);
      expect(sealed.length).toBe(HEADER_BYTES + plain.length + TAG * Math.max(1, Math.ceil(n / CHUNK_BYTES)));
      expect((await unseal(key, sealed)).equals(plain)).toBe(true);
      expect((await unseal(key, sealed, 7777)).equals(plain)).toBe(true);
    },
  );

  test('the same content never seals to the same bytes (a fresh salt and nonce per file)', async () => {
    const plain = Buffer.alloc(1000, 0x41);
    const [a, b] = [await seal(key, plain), await seal(key, plain)];
    expect(a.equals(b)).toBe(false);
    expect(a.includes(plain.subarray(0, 32))).toBe(false);
  });

  test('a file cut at a chunk boundary is refused (the last chunk is flagged)', async () => {
    const sealed = await seal(key, randomBytes(2 * CHUNK_BYTES + 10));
    const cut = sealed.subarray(0, HEADER_BYTES + 2 * (CHUNK_BYTES + TAG));
    await expect(unseal(key, cut)).rejects.toThrow(/chunk 1 fails authentication/);
    await expect(unseal(key, sealed.subarray(0, HEADER_BYTES + CHUNK_BYTES + TAG))).rejects.toThrow(SealError);
    await expect(unseal(key, sealed.subarray(0, 20))).rejects.toThrow('cut off inside its header');
    await expect(unseal(key, sealed.subarray(0, sealed.length - 3))).rejects.toThrow(SealError);
  });

  test('chunks swapped (reordered) are refused', async () => {
    const sealed = await seal(key, randomBytes(3 * CHUNK_BYTES));
    const c = (i: number) =>
      sealed.subarray(HEADER_BYTES + i * (CHUNK_BYTES + TAG), HEADER_BYTES + (i + 1) * (CHUNK_BYTES + TAG));
    const swapped = Buffer.concat([sealed.subarray(0, HEADER_BYTES), c(1), c(0), c(2)]);
    await expect(unseal(key, swapped)).rejects.toThrow(/chunk 0 fails authentication/);
  });

  // Issue #23: "multi-chunk reorder within a sealed file" — every permutation of a 4-chunk file, a chunk
  // repeated in place of another, the last chunk moved to the middle, and one dropped: none decrypts.
  test('every reordering, duplication or removal of chunks within one sealed file is refused', async () => {
    const plain = randomBytes(3 * CHUNK_BYTES + 777);
    const sealed = await seal(key, plain);
    const c = (i: number) =>
      sealed.subarray(
        HEADER_BYTES + i * (CHUNK_BYTES + TAG),
        Math.min(sealed.length, HEADER_BYTES + (i + 1) * (CHUNK_BYTES + TAG)),
      );
    const head = sealed.subarray(0, HEADER_BYTES);
    const perms = (xs: number[]): number[][] =>
      xs.length <= 1
        ? [xs]
        : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
    const orders = [
      ...perms([0, 1, 2, 3]).filter((p) => p.join() !== '0,1,2,3'),
      [0, 0, 2, 3],
      [0, 1, 1, 3],
      [0, 3, 1, 2],
      [0, 1, 3],
      [1, 2, 3],
      [0, 1, 2],
    ];
    for (const order of orders) {
      await expect(unseal(key, Buffer.concat([head, ...order.map(c)]))).rejects.toThrow(SealError);
    }
    expect((await unseal(key, Buffer.concat([head, c(0), c(1), c(2), c(3)]))).equals(plain)).toBe(true);
  });

  test('a sealed file is bound to its snapshot, name and filesystem: moved to another, it fails authentication', async () => {
    const sealed = await seal(key, randomBytes(CHUNK_BYTES + 10));
    for (const elsewhere of [
      { ...here, snapshot: '20260601T100000Z-v13' },
      { ...here, file: 'changelog.0.mfs' },
      { ...here, metaid: 'FFFF' },
    ]) {
      await expect(unseal(key, sealed, undefined, elsewhere)).rejects.toThrow(/chunk 0 fails authentication/);
    }
    // Contexts are length-prefixed: moving a character from one part to the next is another context.
    await expect(
      unseal(key, sealed, undefined, { ...here, metaid: '1A2B3', snapshot: `C${here.snapshot}` }),
    ).rejects.toThrow(SealError);
  });

  test('files sealed before the context was bound (MFSJGCM1) still open: their bytes are pinned by the signed manifest', async () => {
    const plain = randomBytes(2 * CHUNK_BYTES + 5);
    const v2 = await seal(key, plain);
    expect(v2.subarray(0, 8).toString('latin1')).toBe('MFSJGCM2');
    // The v1 form: same framing, header magic MFSJGCM1, tags over the header alone (made with the cipher directly).
    const { createCipheriv, hkdfSync } = await import('node:crypto');
    const header = Buffer.from(v2.subarray(0, HEADER_BYTES));
    header.write('MFSJGCM1', 0, 'latin1');
    const k = Buffer.from(hkdfSync('sha256', key.key, header.subarray(16, 32), 'mfs-jobs snapshot file v1', 32));
    const nonce = header.subarray(32, 44);
    const parts = [header];
    for (let i = 0, at = 0; at < plain.length; i++, at += CHUNK_BYTES) {
      const iv = Buffer.from(nonce);
      iv.writeBigUInt64BE(iv.readBigUInt64BE(4) ^ BigInt(i), 4);
      const aad = Buffer.alloc(HEADER_BYTES + 9);
      header.copy(aad);
      aad.writeBigUInt64BE(BigInt(i), HEADER_BYTES);
      aad[HEADER_BYTES + 8] = at + CHUNK_BYTES >= plain.length ? 1 : 0;
      const ci = createCipheriv('aes-256-gcm', k, iv).setAAD(aad);
      parts.push(ci.update(plain.subarray(at, at + CHUNK_BYTES)), ci.final(), ci.getAuthTag());
    }
    expect((await unseal(key, Buffer.concat(parts))).equals(plain)).toBe(true);
  });

  test('a sealed tail opens only for its file and content size, with its key', () => {
    const tail = randomBytes(4096);
    const sealed = sealTail(key, here, 9999, tail);
    expect(Buffer.from(sealed, 'base64').includes(tail.subarray(0, 16))).toBe(false);
    expect(openTail(key, here, 9999, sealed).equals(tail)).toBe(true);
    expect(() => openTail(key, { ...here, snapshot: '20260601T100000Z-v13' }, 9999, sealed)).toThrow(
      'sealed tail fails authentication',
    );
    expect(() => openTail(key, { ...here, file: 'changelog.0.mfs' }, 9999, sealed)).toThrow(SealError);
    expect(() => openTail(key, here, 9998, sealed)).toThrow(SealError);
    expect(() => openTail(keyOf(), here, 9999, sealed)).toThrow(SealError);
  });

  test('a flipped bit in a tag, in the ciphertext or in the header is refused', async () => {
    const sealed = await seal(key, randomBytes(CHUNK_BYTES + 100));
    for (const at of [HEADER_BYTES + CHUNK_BYTES + 5, HEADER_BYTES + 10, sealed.length - 1, HEADER_BYTES - 1]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 0x01;
      await expect(unseal(key, bad)).rejects.toThrow(SealError);
    }
  });

  test('a chunk from another file sealed with the same key is refused', async () => {
    const a = await seal(key, randomBytes(2 * CHUNK_BYTES));
    const b = await seal(key, randomBytes(2 * CHUNK_BYTES));
    const mixed = Buffer.concat([
      a.subarray(0, HEADER_BYTES + CHUNK_BYTES + TAG),
      b.subarray(HEADER_BYTES + CHUNK_BYTES + TAG),
    ]);
    await expect(unseal(key, mixed)).rejects.toThrow(/chunk 1 fails authentication/);
  });

  test('a wrong key and a missing key are named, with both key ids', async () => {
    const sealed = await seal(key, randomBytes(100));
    const other = keyOf();
    await expect(collect(decryptStage(other, key.id, here)(feed(sealed)))).rejects.toThrow(
      `encrypted with key ${key.id}, but /test/key holds key ${other.id} (wrong key)`,
    );
    await expect(collect(decryptStage(undefined, key.id, here)(feed(sealed)))).rejects.toThrow(
      `encrypted with key ${key.id}, and no snapshotStore.encryption.keyFile is configured`,
    );
    await expect(collect(decryptStage(key, other.id, here)(feed(sealed)))).rejects.toThrow(
      `its header names key ${key.id}, the manifest ${other.id}`,
    );
  });
});

describe('key files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-key-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  const write = async (name: string, text: string, mode: number) => {
    const file = path.join(dir, name);
    await fs.writeFile(file, text, { mode });
    await fs.chmod(file, mode);
    return file;
  };

  test('64 hex digits, owner-only: loaded, named by an id that is not the key', async () => {
    const hex = randomBytes(32).toString('hex');
    const key = await loadStoreKey(await write('good', `${hex}\n`, 0o600));
    expect(key.key.toString('hex')).toBe(hex);
    expect(key.id).toMatch(/^[0-9a-f]{16}$/);
    expect(hex.includes(key.id)).toBe(false);
  });

  test('a key file the group or others may read is refused, naming the file and its mode', async () => {
    const file = await write('open', randomBytes(32).toString('hex'), 0o640);
    await expect(loadStoreKey(file)).rejects.toThrow(
      `snapshotStore.encryption.keyFile ${file}: readable by others (mode 640); chmod 600 it`,
    );
  });

  test('a key of the wrong size or format is refused', async () => {
    for (const [name, text] of [
      ['short', 'abcd'],
      ['raw', randomBytes(32).toString('latin1')],
      ['long', randomBytes(33).toString('hex')],
    ] as const) {
      const file = await write(name, text, 0o600);
      await expect(loadStoreKey(file)).rejects.toThrow(`snapshotStore.encryption.keyFile ${file}: not a key file`);
    }
    await expect(loadStoreKey(path.join(dir, 'absent'))).rejects.toThrow('cannot read the key file (ENOENT)');
  });
});
