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
 *       manifest.json      this file's `Manifest`
 *   <store>/latest         symlink to snapshots/<id>, replaced atomically
 *   <store>/.tmp/          snapshots being written; removed by the next run after a crash
 */
export const MANIFEST = 'manifest.json';
export const SNAPSHOTS_DIR = 'snapshots';
export const TMP_DIR = '.tmp';
export const LATEST = 'latest';

export interface ManifestFile {
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
  // Sizes bound every read of a copy's file and checksums decide its use: both must be what they say.
  for (const [i, f] of parsed.files.entries()) {
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw new ChainError(file, `${file}: files[${i}].size is not a byte count`);
    if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(f.sha256)) throw new ChainError(file, `${file}: files[${i}].sha256 is not a sha256`);
  }
  return parsed;
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
