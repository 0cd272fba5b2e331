import { createHmac, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ChainError } from '../core/errors.js';
import { plainNameProblem, shownName } from '../core/names.js';
import { derivedKey, sealedTailBytes, type StoreKey, type StoreKeys } from './sealed.js';

/**
 * The snapshot store's on-disk format (documented in docs/snapshot-store.md):
 *
 *   <store>/snapshots/<YYYYMMDDTHHMMSSZ>-v<version>/   one directory per restore point, complete or absent
 *       <image>            metadata.mfs.back or metadata_ml.mfs.back, as named on the source
 *       changelog*.mfs     the changelogs that roll the image forward, as named on the source
 *       sessions.mfs       (MooseFS 1.x) the client sessions, sessions.mfs or sessions_ml.mfs on the source
 *                          each stored as its `stored.name` when the manifest says so: <name>.zst
 *                          (zstd), <name>.zst.enc / <name>.enc (sealed, lib/store/sealed.ts)
 *       manifest.json      this file's `Manifest`
 *   <store>/latest         symlink to snapshots/<id>, replaced atomically
 *   <store>/.tmp/          snapshots being written; removed by the next run after a crash
 */
export const MANIFEST = 'manifest.json';
export const SNAPSHOTS_DIR = 'snapshots';
export const TMP_DIR = '.tmp';
export const LATEST = 'latest';

/** How a file lies on disk when it is not the MooseFS file itself (absent: it is, as before compression). */
export interface StoredForm {
  /** `<name>.zst`, `<name>.zst.enc` or `<name>.enc`. */
  name: string;
  /** Size and sha256 of the bytes on disk. */
  size: number;
  sha256: string;
  compression: 'zstd' | 'none';
  /** AES-256-GCM in chunks of `chunkBytes` (sealed.ts), with the key whose id this is (never the key). */
  encryption?: { cipher: 'aes-256-gcm-chunked'; keyId: string; chunkBytes: number };
  /**
   * The content's last TAIL_BYTES (base64): an image's end marker and a changelog's last lines, which
   * promote reads of every snapshot, without decompressing whole files. Checked against the content
   * whenever the file is read in full (verify, import, prune). Never in an encrypted file's entry.
   */
  tail?: string;
  /** An encrypted file's tail, sealed (sealed.ts `sealTail`): the plaintext tail would show names. */
  tailSealed?: string;
}

/** How much of a stored file's content end the manifest keeps (`StoredForm.tail`). */
export const TAIL_BYTES = 4096;

export interface ManifestFile {
  /** The MooseFS file's name (what a restore places); `size` and `sha256`/`hmac` are of its content. */
  name: string;
  /** `sessions`: a 1.x `sessions.mfs` (client sessions; later generations keep them in the image). */
  role: 'image' | 'changelog' | 'sessions';
  size: number;
  /** The content's sha256: unencrypted files only (of a sealed file it would confirm a guessed content). */
  sha256?: string;
  /** An encrypted file's content checksum: HMAC-SHA256 under a key derived from the store key. */
  hmac?: string;
  /** Where it came from, and how it looked there before the copy. */
  sourcePath: string;
  sourceSize: number;
  sourceMtimeMs: number;
  /** Changelogs: first and last version inside. */
  firstVersion?: number;
  lastVersion?: number;
  stored?: StoredForm;
}

export interface Manifest {
  formatVersion: 1;
  id: string;
  source: { name: string; host: string; role: 'master' | 'metalogger'; dataPath: string };
  image: { name: string; version: number; metaid: string; empty: boolean };
  changelogs: { first?: number; last?: number };
  /** Metadata version a restore from this snapshot reaches (image rolled forward, gap-free). */
  reachesVersion: number;
  files: ManifestFile[];
  mfsJobsVersion: string;
  startedAt: string;
  finishedAt: string;
  /** HMAC-SHA256 of the rest of the manifest (`manifestMac`), when the store has a key. */
  mac?: ManifestMac;
}

export interface ManifestMac {
  alg: 'hmac-sha256';
  /** The id of the key it was derived from (the store key's, or the signing key's). */
  keyId: string;
  value: string;
}

/** A manifest refused for trust (no or a wrong MAC, an encrypted store's rules, another directory's id), not damage. */
export class UntrustedManifestError extends ChainError {}

/** `20261125T221500Z-v1234`, the form `snapshotId` makes. */
export const ID_PATTERN = /^\d{8}T\d{6}Z-v\d+$/;

/** When a snapshot id says it was taken (its UTC second), or undefined if it is not an id. */
export function idTime(id: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-v\d+$/.exec(id);
  if (!m) return undefined;
  const at = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

export function snapshotsDir(store: string): string {
  return path.join(store, SNAPSHOTS_DIR);
}

/** `20261125T221500Z-v1234`: sorts by time, names the version. */
export function snapshotId(at: Date, version: number): string {
  return `${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-v${version}`;
}

/** Only `snapshot sign` reads manifests without their MAC: to check and re-sign them (docs/snapshot-store.md). */
export interface ManifestReadOptions {
  unsignedToMigrate?: boolean;
}

export async function readManifest(dir: string, keys: StoreKeys, o: ManifestReadOptions = {}): Promise<Manifest> {
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ChainError(file, `${file}: unreadable manifest (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  return parseManifest(text, file, keys, o);
}

/**
 * A manifest's text, checked like `readManifest` does (a remote copy's manifest is outside input too):
 * the one place a manifest is read, so its MAC and the encrypted store's rules (`trustProblem`) hold
 * for every reader — verify, drill, restore, promote, prune, copies, export/import.
 */
export function parseManifest(text: string, file: string, keys: StoreKeys, o: ManifestReadOptions = {}): Manifest {
  let parsed: Manifest;
  try {
    parsed = JSON.parse(text) as Manifest;
  } catch (err) {
    // JSON.parse's message quotes the text around the fault: never let file content into a message.
    const why = err instanceof SyntaxError ? 'not valid JSON' : ((err as NodeJS.ErrnoException).code ?? 'unreadable');
    throw new ChainError(file, `${file}: unreadable manifest (${why})`);
  }
  if (!parsed || parsed.formatVersion !== 1 || !Array.isArray(parsed.files) || !parsed.image)
    throw new ChainError(
      file,
      `${file}: not an mfs-jobs manifest (format ${shownName(String(parsed?.formatVersion))})`,
    );
  if (typeof parsed.id !== 'string' || !ID_PATTERN.test(parsed.id))
    throw new ChainError(file, `${file}: manifest id ${shownName(parsed.id)} is not a snapshot id`);
  // Before any name is joined to a path, hashed or opened: a manifest is outside input (an archive).
  for (const [at, name] of [
    ['image.name', parsed.image.name],
    ...parsed.files.map((f, i) => [`files[${i}].name`, f?.name] as const),
  ] as const) {
    const problem = plainNameProblem(name);
    if (problem) throw new ChainError(file, `${file}: ${at} ${shownName(name)} is not a plain file name (${problem})`);
  }
  for (const [i, f] of parsed.files.entries()) {
    const problem = fileProblem(f);
    if (problem) throw new ChainError(file, `${file}: files[${i}]${problem}`);
  }
  const untrusted = trustProblem(parsed, keys, o);
  if (untrusted) throw new UntrustedManifestError(file, `${file}: snapshot ${parsed.id}: ${untrusted}`);
  return parsed;
}

/** The key manifests are signed with: derived from the store key, else from the signing key. */
export function macKeyOf(keys: StoreKeys): { key?: StoreKey; problem?: string } {
  if (keys.problem) return { problem: `the configured key is unusable: ${keys.problem}` };
  if (keys.key) return { key: keys.key };
  if (keys.signingProblem) return { problem: `the configured signing key is unusable: ${keys.signingProblem}` };
  if (keys.signing) return { key: keys.signing };
  return {};
}

/**
 * JSON with object keys sorted and no spaces: the bytes the MAC covers, whatever whitespace or key
 * order the file has. Numbers and strings as JSON.stringify writes them.
 */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** HMAC-SHA256, under the derived manifest key, of the manifest without its `mac`. */
export function manifestMac(m: Manifest, key: StoreKey): ManifestMac {
  return documentMac(m, key, MANIFEST_DOMAIN);
}

const MANIFEST_DOMAIN = 'mfs-jobs manifest v1';

/**
 * The MAC of any signed document of the store (a snapshot's manifest, an archive segment's), without its
 * `mac`; `domain` keeps one kind of document from passing as another.
 */
export function documentMac(doc: object, key: StoreKey, domain: string): ManifestMac {
  const { mac: _mac, ...rest } = doc as { mac?: unknown };
  const hmac = createHmac('sha256', derivedKey(key, 'manifest mac'));
  const value = hmac.update(`${domain}\0`).update(canonical(rest)).digest('hex');
  return { alg: 'hmac-sha256', keyId: key.id, value };
}

/** Why a signed document's `mac` (present) is not the one `key` gives, or undefined (manifests and segments alike). */
export function macProblem(doc: { mac?: unknown }, key: StoreKey, domain: string): string | undefined {
  const got = doc.mac as Partial<ManifestMac>;
  if (!got || got.alg !== 'hmac-sha256' || typeof got.value !== 'string' || !SHA256.test(got.value)) {
    return 'its manifest MAC is not an hmac-sha256; refused';
  }
  if (got.keyId !== key.id) {
    return `its manifest is signed with key ${shownName(String(got.keyId))}, the configured key is ${key.id}; refused`;
  }
  const want = Buffer.from(documentMac(doc, key, domain).value, 'hex');
  if (!timingSafeEqual(want, Buffer.from(got.value, 'hex')))
    return 'its manifest MAC does not match (edited or forged); refused';
  return undefined;
}

/** In an encrypted store, why these files' entries are not to be trusted (unsealed, another key, clear digests). */
export function sealedFilesProblem(files: readonly ManifestFile[], keys: StoreKeys): string | undefined {
  if (!keys.key) return undefined;
  for (const f of files) {
    const enc = f.stored?.encryption;
    if (!enc) return `${f.name} is not encrypted, in an encrypted store; refused`;
    if (enc.keyId !== keys.key.id)
      return `${f.name} is encrypted with key ${enc.keyId}, not the store's ${keys.key.id}; refused`;
    if (f.hmac === undefined || f.stored!.tail !== undefined) {
      return `${f.name}: its entry keeps a plaintext sha256 or tail, in an encrypted store; refused`;
    }
  }
  return undefined;
}

/** The manifest with its MAC (unchanged when the store has no key: such a store is not authenticated). */
export function signManifest(m: Manifest, keys: StoreKeys): Manifest {
  const { key, problem } = macKeyOf(keys);
  if (problem) throw new ChainError(m.id, `snapshot ${m.id}: cannot sign its manifest: ${problem}`);
  const { mac: _mac, ...rest } = m;
  return key ? { ...rest, mac: manifestMac(rest, key) } : rest;
}

/**
 * Why a manifest is not to be trusted with these keys, or undefined. With a key: it must carry a MAC by
 * that key; with an encryption key also every file sealed by it, with no plaintext-derived field in clear.
 * Without any key nothing can be checked: the store works as before (docs: what that does not protect).
 */
function trustProblem(m: Manifest, keys: StoreKeys, o: ManifestReadOptions): string | undefined {
  const { key, problem } = macKeyOf(keys);
  if (problem) return `cannot check its manifest: ${problem}`;
  if (!key) return undefined;
  if (o.unsignedToMigrate) return undefined;
  const mac = m.mac as unknown;
  if (mac === undefined) {
    return 'its manifest carries no MAC (forged, or written before manifests were signed: mfs-jobs snapshot sign); refused';
  }
  return macProblem(m, key, MANIFEST_DOMAIN) ?? sealedFilesProblem(m.files, keys);
}

const SHA256 = /^[0-9a-f]{64}$/;
const isSize = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/** What is wrong with a manifest entry's sizes, checksums and stored form (outside input, like its names). */
export function fileProblem(f: ManifestFile): string | undefined {
  if (!isSize(f.size)) return `.size ${shownName(String(f.size))} is not a size`;
  const isDigest = (d: unknown, lower = false) => typeof d === 'string' && SHA256.test(lower ? d.toLowerCase() : d);
  if (f.sha256 !== undefined && !isDigest(f.sha256, true)) return `.sha256 is not a sha256`;
  if (f.hmac !== undefined && !isDigest(f.hmac)) return '.hmac is not an hmac-sha256';
  if ((f.sha256 === undefined) === (f.hmac === undefined)) return ' has both or neither of sha256 and hmac';
  if (f.hmac !== undefined && !f.stored?.encryption) return '.hmac on a file that is not encrypted';
  const s = f.stored as unknown;
  if (s === undefined) return undefined;
  if (!s || typeof s !== 'object') return '.stored is not an object';
  const st = s as StoredForm;
  if (st.compression !== 'zstd' && st.compression !== 'none')
    return `.stored.compression ${shownName(String(st.compression))} is not zstd or none`;
  const enc = st.encryption as unknown;
  if (enc !== undefined) {
    const e = enc as NonNullable<StoredForm['encryption']>;
    if (!e || e.cipher !== 'aes-256-gcm-chunked') return '.stored.encryption.cipher is not aes-256-gcm-chunked';
    if (typeof e.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(e.keyId))
      return '.stored.encryption.keyId is not a key id (16 hex digits)';
    if (e.chunkBytes !== 1 << 20)
      return `.stored.encryption.chunkBytes ${shownName(String(e.chunkBytes))} is not ${1 << 20}`;
  }
  if (st.compression === 'none' && enc === undefined) return '.stored says neither compressed nor encrypted';
  const expected = `${f.name}${st.compression === 'zstd' ? '.zst' : ''}${enc ? '.enc' : ''}`;
  if (st.name !== expected) return `.stored.name ${shownName(st.name)} is not ${shownName(expected)}`;
  if (!isSize(st.size)) return `.stored.size ${shownName(String(st.size))} is not a size`;
  if (typeof st.sha256 !== 'string' || !SHA256.test(st.sha256)) return '.stored.sha256 is not a sha256';
  const tailBytes = Math.min(f.size, TAIL_BYTES);
  const base64Of = (v: unknown, bytes: number) =>
    typeof v === 'string' && BASE64.test(v) && Buffer.from(v, 'base64').length === bytes;
  if (st.tail !== undefined && !base64Of(st.tail, tailBytes))
    return `.stored.tail is not the last ${tailBytes} bytes (base64)`;
  const sealed = st.tailSealed as unknown;
  if (sealed !== undefined && (!enc || !base64Of(sealed, sealedTailBytes(tailBytes))))
    return '.stored.tailSealed is not a sealed tail of this file';
  // An encrypted file's content shows in neither a clear tail nor a plain sha256 (new manifests; old ones
  // are refused by trustProblem when a key is configured, and re-written by `snapshot sign`).
  if (enc && f.hmac !== undefined && st.tail !== undefined) return '.stored.tail in clear on an encrypted file';
  return undefined;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The file as it lies in a snapshot directory — and on an off-site copy, which holds the same bytes: its
 * stored name, size and sha256 (the compressed/sealed form), or the content's own for a raw file.
 */
export function onDisk(f: ManifestFile): { name: string; size: number; sha256: string } {
  // A file without `stored` is never encrypted, so it has its sha256 (fileProblem).
  if (f.stored) return { name: f.stored.name, size: f.stored.size, sha256: f.stored.sha256 };
  return { name: f.name, size: f.size, sha256: f.sha256! };
}

/** A file's content checksum as the manifest has it: its sha256, or an encrypted file's keyed HMAC. */
export function contentDigest(f: ManifestFile): { alg: 'sha256' | 'hmac-sha256'; value: string } {
  if (f.hmac !== undefined) return { alg: 'hmac-sha256', value: f.hmac };
  return { alg: 'sha256', value: f.sha256!.toLowerCase() };
}

/** A snapshot directory that is not a usable snapshot; `untrusted`: its manifest was refused for trust (CRITICAL). */
export interface BrokenSnapshot {
  id: string;
  error: string;
  untrusted?: boolean;
}

export interface StoredSnapshot {
  id: string;
  dir: string;
  manifest: Manifest;
}

/**
 * Complete snapshots, oldest first. A directory without a readable (and, with a key, authentic) manifest,
 * or whose manifest names another id, is reported, not listed.
 */
export async function listSnapshots(
  store: string,
  keys: StoreKeys,
): Promise<{ snapshots: StoredSnapshot[]; broken: BrokenSnapshot[] }> {
  const root = snapshotsDir(store);
  const names = await fs.readdir(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const snapshots: StoredSnapshot[] = [];
  const broken: BrokenSnapshot[] = [];
  for (const id of names.sort()) {
    const dir = path.join(root, id);
    try {
      const manifest = await readManifest(dir, keys);
      // A signed manifest copied into another directory would otherwise pass as that snapshot.
      if (manifest.id !== id) {
        const why = `manifest says id ${shownName(manifest.id)}, not ${shownName(id)}`;
        throw new UntrustedManifestError(dir, `${path.join(dir, MANIFEST)}: ${why}`);
      }
      snapshots.push({ id, dir, manifest });
    } catch (err) {
      const untrusted = err instanceof UntrustedManifestError ? { untrusted: true } : {};
      broken.push({ id, error: (err as Error).message, ...untrusted });
    }
  }
  return { snapshots, broken };
}
