import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { ConfigError } from '../core/errors.js';

/**
 * Encryption at rest for snapshot files: AES-256-GCM in fixed chunks, so a file of any size streams
 * through in constant memory and every chunk is authenticated before a byte of it is used.
 *
 *   header  "MFSJGCM1" | key id (8 bytes) | salt (16) | nonce (12)                       44 bytes
 *   chunk i ciphertext of CHUNK_BYTES plaintext (the last one 0..CHUNK_BYTES) | tag (16)
 *
 * Each file gets its own key, HKDF-SHA256(master key, salt); chunk i's IV is the file nonce XOR i
 * (big-endian, in its last 8 bytes). The tag also covers the header, i and a "last chunk" flag:
 * a chunk moved (reordered), dropped, or a file cut at a chunk boundary fails authentication.
 */
export const CHUNK_BYTES = 1 << 20;
const MAGIC = Buffer.from('MFSJGCM1', 'latin1');
export const HEADER_BYTES = MAGIC.length + 8 + 16 + 12;
const TAG_BYTES = 16;

export interface StoreKey {
  /** First 16 hex digits of a hash of the key (never the key): what manifests name. */
  id: string;
  key: Buffer;
  file: string;
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('mfs-jobs snapshot key id\0').update(key).digest('hex').slice(0, 16);
}

/**
 * The key file: 64 hex digits (`openssl rand -hex 32 > key`), owner-only. A file others may read is
 * refused: a key readable by the group is a key given away.
 */
export async function loadStoreKey(file: string): Promise<StoreKey> {
  const key = 'snapshotStore.encryption.keyFile';
  let st;
  try {
    st = await fs.stat(file);
  } catch (err) {
    throw new ConfigError(key, `${key} ${file}: cannot read the key file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (!st.isFile()) throw new ConfigError(key, `${key} ${file}: not a regular file`);
  if (st.mode & 0o077) throw new ConfigError(key, `${key} ${file}: readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  if (st.size > 200) throw new ConfigError(key, `${key} ${file}: not a key file (${st.size} bytes; expected 64 hex digits, openssl rand -hex 32)`);
  const text = (await fs.readFile(file, 'latin1')).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new ConfigError(key, `${key} ${file}: not a key file (expected 64 hex digits, openssl rand -hex 32)`);
  const raw = Buffer.from(text, 'hex');
  return { id: keyIdOf(raw), key: raw, file };
}

/** Why a stream could not be decrypted: a wrong key, damage, or a cut-off file. */
export class SealError extends Error {}

function fileKey(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, 'mfs-jobs snapshot file v1', 32));
}

function ivFor(nonce: Buffer, index: number): Buffer {
  const iv = Buffer.from(nonce);
  const tail = iv.readBigUInt64BE(4) ^ BigInt(index);
  iv.writeBigUInt64BE(tail, 4);
  return iv;
}

function aadFor(header: Buffer, index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(header.length + 9);
  header.copy(aad);
  aad.writeBigUInt64BE(BigInt(index), header.length);
  aad[header.length + 8] = last ? 1 : 0;
  return aad;
}

function sealChunk(k: Buffer, header: Buffer, nonce: Buffer, index: number, last: boolean, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', k, ivFor(nonce, index));
  c.setAAD(aadFor(header, index, last));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([body, c.getAuthTag()]);
}

function openChunk(k: Buffer, header: Buffer, nonce: Buffer, index: number, last: boolean, sealed: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', k, ivFor(nonce, index));
  d.setAAD(aadFor(header, index, last));
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new SealError(`chunk ${index} fails authentication (damaged, reordered or cut off)`);
  }
}

/** Encrypt a byte stream (pipeline stage). */
export function encryptStage(key: StoreKey): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    const salt = randomBytes(16);
    const nonce = randomBytes(12);
    const header = Buffer.concat([MAGIC, Buffer.from(key.id, 'hex'), salt, nonce]);
    const k = fileKey(key.key, salt);
    yield header;
    let pending: Buffer[] = [];
    let length = 0;
    let index = 0;
    for await (const chunk of source) {
      pending.push(chunk);
      length += chunk.length;
      // Strictly more than a chunk: the last chunk (flagged) is only known at the end.
      while (length > CHUNK_BYTES) {
        const all = Buffer.concat(pending);
        yield sealChunk(k, header, nonce, index++, false, all.subarray(0, CHUNK_BYTES));
        pending = [all.subarray(CHUNK_BYTES)];
        length = all.length - CHUNK_BYTES;
      }
    }
    yield sealChunk(k, header, nonce, index, true, Buffer.concat(pending));
  };
}

/** The key id a sealed file's header names (undefined: not a sealed file). */
export function sealedKeyId(header: Buffer): string | undefined {
  if (header.length < HEADER_BYTES || !header.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  return header.subarray(MAGIC.length, MAGIC.length + 8).toString('hex');
}

/** Decrypt a stream made by `encryptStage`; a SealError on a wrong key, damage, reordering or truncation. */
export function decryptStage(key: StoreKey | undefined, expectedKeyId: string): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    let pending: Buffer[] = [];
    let length = 0;
    let header: Buffer | undefined;
    let k: Buffer | undefined;
    let nonce: Buffer | undefined;
    let index = 0;
    const full = CHUNK_BYTES + TAG_BYTES;
    for await (const chunk of source) {
      pending.push(chunk);
      length += chunk.length;
      if (!header) {
        if (length < HEADER_BYTES) continue;
        const all = Buffer.concat(pending);
        header = Buffer.from(all.subarray(0, HEADER_BYTES));
        pending = [all.subarray(HEADER_BYTES)];
        length -= HEADER_BYTES;
        const id = sealedKeyId(header);
        if (id === undefined) throw new SealError('not an encrypted mfs-jobs file (bad header)');
        if (id !== expectedKeyId) throw new SealError(`its header names key ${id}, the manifest ${expectedKeyId} (damaged or swapped file)`);
        if (!key) throw new SealError(`encrypted with key ${id}, and no snapshotStore.encryption.keyFile is configured`);
        if (key.id !== id) throw new SealError(`encrypted with key ${id}, but ${key.file} holds key ${key.id} (wrong key)`);
        k = fileKey(key.key, header.subarray(MAGIC.length + 8, MAGIC.length + 24));
        nonce = header.subarray(MAGIC.length + 24, HEADER_BYTES);
      }
      // Strictly more than a sealed chunk: only the end of the stream tells which chunk is the last.
      while (length > full) {
        const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
        yield openChunk(k!, header, nonce!, index++, false, all.subarray(0, full));
        pending = [all.subarray(full)];
        length -= full;
      }
    }
    if (!header) throw new SealError('cut off inside its header');
    if (length < TAG_BYTES) throw new SealError(`cut off after chunk ${index - 1}`);
    yield openChunk(k!, header, nonce!, index, true, Buffer.concat(pending));
  };
}
