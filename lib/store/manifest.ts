import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ChainError } from '../core/errors.js';
import { plainNameProblem, shownName } from '../core/names.js';

/**
 * The snapshot store's on-disk format (documented in the README):
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
   * whenever the file is read in full (verify, import, prune).
   */
  tail?: string;
}

/** How much of a stored file's content end the manifest keeps (`StoredForm.tail`). */
export const TAIL_BYTES = 4096;

export interface ManifestFile {
  /** The MooseFS file's name (what a restore places); `size` and `sha256` are of its content. */
  name: string;
  /** `sessions`: a 1.x `sessions.mfs` (client sessions; later generations keep them in the image). */
  role: 'image' | 'changelog' | 'sessions';
  size: number;
  sha256: string;
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
}

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
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-v${version}`;
}

export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ChainError(file, `${file}: unreadable manifest (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  return parseManifest(text, file);
}

/** A manifest's text, checked like `readManifest` does (a remote copy's manifest is outside input too). */
export function parseManifest(text: string, file: string): Manifest {
  let parsed: Manifest;
  try {
    parsed = JSON.parse(text) as Manifest;
  } catch (err) {
    // JSON.parse's message quotes the text around the fault: never let file content into a message.
    const why = err instanceof SyntaxError ? 'not valid JSON' : ((err as NodeJS.ErrnoException).code ?? 'unreadable');
    throw new ChainError(file, `${file}: unreadable manifest (${why})`);
  }
  if (!parsed || parsed.formatVersion !== 1 || !Array.isArray(parsed.files) || !parsed.image) throw new ChainError(file, `${file}: not an mfs-jobs manifest (format ${shownName(String(parsed?.formatVersion))})`);
  if (typeof parsed.id !== 'string' || !ID_PATTERN.test(parsed.id)) throw new ChainError(file, `${file}: manifest id ${shownName(parsed.id)} is not a snapshot id`);
  // Before any name is joined to a path, hashed or opened: a manifest is outside input (an archive).
  for (const [at, name] of [['image.name', parsed.image.name], ...parsed.files.map((f, i) => [`files[${i}].name`, f?.name] as const)] as const) {
    const problem = plainNameProblem(name);
    if (problem) throw new ChainError(file, `${file}: ${at} ${shownName(name)} is not a plain file name (${problem})`);
  }
  for (const [i, f] of parsed.files.entries()) {
    const problem = fileProblem(f);
    if (problem) throw new ChainError(file, `${file}: files[${i}]${problem}`);
  }
  return parsed;
}

const SHA256 = /^[0-9a-f]{64}$/;
const isSize = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/** What is wrong with a manifest entry's sizes, checksums and stored form (outside input, like its names). */
function fileProblem(f: ManifestFile): string | undefined {
  if (!isSize(f.size)) return `.size ${shownName(String(f.size))} is not a size`;
  if (typeof f.sha256 !== 'string' || !SHA256.test(f.sha256.toLowerCase())) return `.sha256 is not a sha256`;
  const s = f.stored as unknown;
  if (s === undefined) return undefined;
  if (!s || typeof s !== 'object') return '.stored is not an object';
  const st = s as StoredForm;
  if (st.compression !== 'zstd' && st.compression !== 'none') return `.stored.compression ${shownName(String(st.compression))} is not zstd or none`;
  const enc = st.encryption as unknown;
  if (enc !== undefined) {
    const e = enc as NonNullable<StoredForm['encryption']>;
    if (!e || e.cipher !== 'aes-256-gcm-chunked') return '.stored.encryption.cipher is not aes-256-gcm-chunked';
    if (typeof e.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(e.keyId)) return '.stored.encryption.keyId is not a key id (16 hex digits)';
    if (e.chunkBytes !== 1 << 20) return `.stored.encryption.chunkBytes ${shownName(String(e.chunkBytes))} is not ${1 << 20}`;
  }
  if (st.compression === 'none' && enc === undefined) return '.stored says neither compressed nor encrypted';
  const expected = `${f.name}${st.compression === 'zstd' ? '.zst' : ''}${enc ? '.enc' : ''}`;
  if (st.name !== expected) return `.stored.name ${shownName(st.name)} is not ${shownName(expected)}`;
  if (!isSize(st.size)) return `.stored.size ${shownName(String(st.size))} is not a size`;
  if (typeof st.sha256 !== 'string' || !SHA256.test(st.sha256)) return '.stored.sha256 is not a sha256';
  if (st.tail !== undefined && (typeof st.tail !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(st.tail) || Buffer.from(st.tail, 'base64').length !== Math.min(f.size, TAIL_BYTES))) return `.stored.tail is not the last ${Math.min(f.size, TAIL_BYTES)} bytes (base64)`;
  return undefined;
}

/**
 * The file as it lies in a snapshot directory — and on an off-site copy, which holds the same bytes: its
 * stored name, size and sha256 (the compressed/sealed form), or the content's own for a raw file.
 */
export function onDisk(f: ManifestFile): { name: string; size: number; sha256: string } {
  return f.stored ? { name: f.stored.name, size: f.stored.size, sha256: f.stored.sha256 } : { name: f.name, size: f.size, sha256: f.sha256 };
}

export interface StoredSnapshot {
  id: string;
  dir: string;
  manifest: Manifest;
}

/** Complete snapshots, oldest first. A directory without a readable manifest is reported, not listed. */
export async function listSnapshots(store: string): Promise<{ snapshots: StoredSnapshot[]; broken: { id: string; error: string }[] }> {
  const root = snapshotsDir(store);
  const names = await fs.readdir(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const snapshots: StoredSnapshot[] = [];
  const broken: { id: string; error: string }[] = [];
  for (const id of names.sort()) {
    const dir = path.join(root, id);
    try {
      snapshots.push({ id, dir, manifest: await readManifest(dir) });
    } catch (err) {
      broken.push({ id, error: (err as Error).message });
    }
  }
  return { snapshots, broken };
}
