import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { ConfigError, MfsJobsError } from '../core/errors.js';

/**
 * Encryption at rest for snapshot files: AES-256-GCM in fixed chunks, so a file of any size streams
 * through in constant memory and every chunk is authenticated before a byte of it is used.
 *
 *   header  "MFSJGCM2" | key id (8 bytes) | salt (16) | nonce (12)                       44 bytes
 *   chunk i ciphertext of CHUNK_BYTES plaintext (the last one 0..CHUNK_BYTES) | tag (16)
 *
 * Each file gets its own key, HKDF-SHA256(master key, salt); chunk i's IV is the file nonce XOR i
 * (big-endian, in its last 8 bytes). The tag also covers the header, where the file belongs (`SealContext`:
 * the cluster's metaid, the snapshot id and the file name), i and a "last chunk" flag: a chunk moved
 * (reordered), dropped, a file cut at a chunk boundary, or a whole file moved to another snapshot or name
 * fails authentication. "MFSJGCM1" files (before the context was bound) are still read: their manifest's
 * MAC pins their exact bytes (stored.sha256), so they cannot be moved either.
 */
export const CHUNK_BYTES = 1 << 20;
const MAGIC = Buffer.from('MFSJGCM2', 'latin1');
const MAGIC_V1 = Buffer.from('MFSJGCM1', 'latin1');
export const HEADER_BYTES = MAGIC.length + 8 + 16 + 12;
const TAG_BYTES = 16;

/** Where a sealed file belongs; bound into every chunk's tag and into its sealed tail. */
export interface SealContext {
  /** The image's metaid as the manifest names it ('' for an MFSM NEW image). */
  metaid: string;
  snapshot: string;
  file: string;
}

/** The context as bytes: each part length-prefixed, so no two contexts share an encoding. */
function contextBytes(c: SealContext): Buffer {
  const parts = [c.metaid, c.snapshot, c.file].map((p) => Buffer.from(p, 'utf8'));
  const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    at = out.writeUInt32BE(p.length, at);
    at += p.copy(out, at);
  }
  return out;
}

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
 * Keys derived from the store key (or the signing key), one per purpose, never the key itself:
 * HKDF-SHA256(key, empty salt, info). Distinct infos keep a MAC key from ever being a sealing key.
 */
export type KeyPurpose = 'manifest mac' | 'content hmac' | 'tail seal';

export function derivedKey(k: StoreKey, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', k.key, Buffer.alloc(0), `mfs-jobs ${purpose} v1`, 32));
}

/** The keyed checksum an encrypted store keeps of a file's content: its sha256 would confirm a guess. */
export function contentHmac(k: StoreKey): ReturnType<typeof createHmac> {
  return createHmac('sha256', derivedKey(k, 'content hmac'));
}

/** The keys readers and writers have, from the config (stored-file.ts `storeKeys`). */
export interface StoreKeys {
  /** `snapshotStore.encryption.keyFile`: seals files, and signs manifests through a derived key. */
  key?: StoreKey;
  /** The configured key file is unusable (mode, format): said for every encrypted file and every manifest. */
  problem?: string;
  /** `snapshotStore.signingKeyFile` (a store without encryption): signs manifests only. */
  signing?: StoreKey;
  signingProblem?: string;
}

/**
 * The key file: 64 hex digits (`openssl rand -hex 32 > key`), owner-only. A file others may read is
 * refused: a key readable by the group is a key given away. `key`: the config key it was named by.
 */
export async function loadStoreKey(file: string, key = 'snapshotStore.encryption.keyFile'): Promise<StoreKey> {
  let st;
  try {
    st = await fs.stat(file);
  } catch (err) {
    throw new ConfigError(
      key,
      `${key} ${file}: cannot read the key file (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  if (!st.isFile()) throw new ConfigError(key, `${key} ${file}: not a regular file`);
  if (st.mode & 0o077)
    throw new ConfigError(
      key,
      `${key} ${file}: readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  if (st.size > 200)
    throw new ConfigError(
      key,
      `${key} ${file}: not a key file (${st.size} bytes; expected 64 hex digits, openssl rand -hex 32)`,
    );
  const text = (await fs.readFile(file, 'latin1')).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text))
    throw new ConfigError(key, `${key} ${file}: not a key file (expected 64 hex digits, openssl rand -hex 32)`);
  const raw = Buffer.from(text, 'hex');
  return { id: keyIdOf(raw), key: raw, file };
}

/**
 * Why a stream could not be decrypted: a wrong key, damage, or a cut-off file; `subject` is the file. The
 * message leaves the file out: the reader (stored-file.ts) says where it was read from.
 */
export class SealError extends MfsJobsError {}

function fileKey(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, 'mfs-jobs snapshot file v1', 32));
}

function ivFor(nonce: Buffer, index: number): Buffer {
  const iv = Buffer.from(nonce);
  const tail = iv.readBigUInt64BE(4) ^ BigInt(index);
  iv.writeBigUInt64BE(tail, 4);
  return iv;
}

/** A v2 header's AAD prefix is the header and the context; a v1 header's the header alone. */
function aadFor(prefix: Buffer, index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(prefix.length + 9);
  prefix.copy(aad);
  aad.writeBigUInt64BE(BigInt(index), prefix.length);
  aad[prefix.length + 8] = last ? 1 : 0;
  return aad;
}

function sealChunk(k: Buffer, header: Buffer, nonce: Buffer, index: number, last: boolean, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', k, ivFor(nonce, index));
  c.setAAD(aadFor(header, index, last));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([body, c.getAuthTag()]);
}

function openChunk(
  file: string,
  k: Buffer,
  header: Buffer,
  nonce: Buffer,
  index: number,
  last: boolean,
  sealed: Buffer,
): Buffer {
  const d = createDecipheriv('aes-256-gcm', k, ivFor(nonce, index));
  d.setAAD(aadFor(header, index, last));
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new SealError(file, `chunk ${index} fails authentication (damaged, reordered or cut off)`);
  }
}

/** Encrypt a byte stream (pipeline stage) for the file `context` names. */
type Stage = (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>;

export function encryptStage(key: StoreKey, context: SealContext): Stage {
  return async function* (source) {
    const salt = randomBytes(16);
    const nonce = randomBytes(12);
    const header = Buffer.concat([MAGIC, Buffer.from(key.id, 'hex'), salt, nonce]);
    const k = fileKey(key.key, salt);
    yield header;
    const prefix = Buffer.concat([header, contextBytes(context)]);
    let pending: Buffer[] = [];
    let length = 0;
    let index = 0;
    for await (const chunk of source) {
      pending.push(chunk);
      length += chunk.length;
      // Strictly more than a chunk: the last chunk (flagged) is only known at the end.
      while (length > CHUNK_BYTES) {
        const all = Buffer.concat(pending);
        yield sealChunk(k, prefix, nonce, index++, false, all.subarray(0, CHUNK_BYTES));
        pending = [all.subarray(CHUNK_BYTES)];
        length = all.length - CHUNK_BYTES;
      }
    }
    yield sealChunk(k, prefix, nonce, index, true, Buffer.concat(pending));
  };
}

/** The key id a sealed file's header names (undefined: not a sealed file). */
export function sealedKeyId(header: Buffer): string | undefined {
  if (header.length < HEADER_BYTES) return undefined;
  const magic = header.subarray(0, MAGIC.length);
  if (!magic.equals(MAGIC) && !magic.equals(MAGIC_V1)) return undefined;
  return header.subarray(MAGIC.length, MAGIC.length + 8).toString('hex');
}

/**
 * Decrypt a stream made by `encryptStage`; a SealError on a wrong key, damage, reordering, truncation,
 * or a file sealed for another place (`context`).
 */
export function decryptStage(key: StoreKey | undefined, expectedKeyId: string, context: SealContext): Stage {
  return async function* (source) {
    let pending: Buffer[] = [];
    let length = 0;
    let header: Buffer | undefined;
    let prefix: Buffer | undefined;
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
        if (id === undefined) throw new SealError(context.file, 'not an encrypted mfs-jobs file (bad header)');
        if (id !== expectedKeyId)
          throw new SealError(
            context.file,
            `its header names key ${id}, the manifest ${expectedKeyId} (damaged or swapped file)`,
          );
        if (!key)
          throw new SealError(
            context.file,
            `encrypted with key ${id}, and no snapshotStore.encryption.keyFile is configured`,
          );
        if (key.id !== id)
          throw new SealError(
            context.file,
            `encrypted with key ${id}, but ${key.file} holds key ${key.id} (wrong key)`,
          );
        k = fileKey(key.key, header.subarray(MAGIC.length + 8, MAGIC.length + 24));
        nonce = header.subarray(MAGIC.length + 24, HEADER_BYTES);
        const bound = header.subarray(0, MAGIC.length).equals(MAGIC);
        prefix = bound ? Buffer.concat([header, contextBytes(context)]) : header;
      }
      // Strictly more than a sealed chunk: only the end of the stream tells which chunk is the last.
      while (length > full) {
        const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
        yield openChunk(context.file, k!, prefix!, nonce!, index++, false, all.subarray(0, full));
        pending = [all.subarray(full)];
        length -= full;
      }
    }
    if (!header) throw new SealError(context.file, 'cut off inside its header');
    if (length < TAG_BYTES) throw new SealError(context.file, `cut off after chunk ${index - 1}`);
    yield openChunk(context.file, k!, prefix!, nonce!, index, true, Buffer.concat(pending));
  };
}

const TAIL_IV = 12;

/**
 * An encrypted store's `stored.tailSealed`: the content's last bytes (what promote reads of every
 * snapshot instead of decrypting and decompressing whole files), AES-256-GCM under the derived tail key
 * with a random IV; the tag covers the context and the content size. base64 of iv | ciphertext | tag.
 */
export function sealTail(key: StoreKey, context: SealContext, contentSize: number, tail: Buffer): string {
  const iv = randomBytes(TAIL_IV);
  const c = createCipheriv('aes-256-gcm', derivedKey(key, 'tail seal'), iv);
  c.setAAD(tailAad(context, contentSize));
  const body = Buffer.concat([c.update(tail), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64');
}

export function openTail(key: StoreKey, context: SealContext, contentSize: number, sealed: string): Buffer {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < TAIL_IV + TAG_BYTES) throw new SealError(context.file, 'sealed tail is cut off');
  const d = createDecipheriv('aes-256-gcm', derivedKey(key, 'tail seal'), raw.subarray(0, TAIL_IV));
  d.setAAD(tailAad(context, contentSize));
  d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(raw.subarray(TAIL_IV, raw.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new SealError(context.file, 'sealed tail fails authentication (damaged, or moved from another file)');
  }
}

/** Bytes a sealed tail of `tailBytes` takes before base64. */
export function sealedTailBytes(tailBytes: number): number {
  return TAIL_IV + tailBytes + TAG_BYTES;
}

function tailAad(context: SealContext, contentSize: number): Buffer {
  const size = Buffer.alloc(8);
  size.writeBigUInt64BE(BigInt(contentSize));
  return Buffer.concat([Buffer.from('mfs-jobs tail\0', 'latin1'), contextBytes(context), size]);
}
