import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DIR_MODE, ensureDir, fsyncDir, pathExists, renameDurable, writeFileAtomic } from '../core/atomic.js';
import { rollForward, type ChangelogPiece } from '../moosefs/chain.js';
import type { ChangelogScan } from '../moosefs/changelog.js';
import { restoreFrom } from '../moosefs/metadata.js';
import { readSnapshotContent, storedPathOf, storedSizeOf, type ContentFacts, type StoreKeys } from './stored-file.js';
import { ChainError, StoreError } from '../core/errors.js';
import { formatBytes } from '../core/progress.js';
import { printable } from '../core/names.js';
import {
  LATEST,
  listSnapshots,
  MANIFEST,
  readManifest,
  signManifest,
  snapshotsDir,
  TMP_DIR,
  type BrokenSnapshot,
  type Manifest,
  type StoredSnapshot,
} from './manifest.js';

/**
 * The write side of the snapshot store (format: lib/store/manifest.ts). Only backup and `snapshot import`
 * write here, always under the backup lock: a snapshot is built in `.tmp/backup-*`, every file
 * fsynced, then the directory is renamed into `snapshots/` — it is complete or absent.
 */

/** Every temp entry this module makes starts with this, so a later run knows what it may remove. */
export const TEMP_PREFIX = 'backup-';

export function tmpDir(store: string): string {
  return path.join(store, TMP_DIR);
}

export async function prepareStore(store: string): Promise<void> {
  await ensureDir(store);
  await ensureDir(snapshotsDir(store));
  await ensureDir(tmpDir(store));
}

/** Temp dirs left by a run that was killed (the caller holds the backup lock, so none is live). */
export async function leftoverTemps(store: string): Promise<string[]> {
  const names = await fs.readdir(tmpDir(store)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names.filter((n) => n.startsWith(TEMP_PREFIX)).sort();
}

export async function removeLeftoverTemps(store: string): Promise<string[]> {
  const names = await leftoverTemps(store);
  for (const name of names) await fs.rm(path.join(tmpDir(store), name), { recursive: true, force: true });
  if (names.length) await fsyncDir(tmpDir(store));
  return names;
}

/** A fresh private directory under `.tmp/` to build a snapshot (or unpack an import) in. */
export async function makeStageDir(store: string, purpose: string): Promise<string> {
  await prepareStore(store);
  const dir = await fs.mkdtemp(path.join(tmpDir(store), `${TEMP_PREFIX}${purpose}-${process.pid}-`));
  await fs.chmod(dir, DIR_MODE);
  return dir;
}

/** Room always left free on the store's filesystem: 5% of it, at most 64 MiB (others may write there too). */
function reserveBytes(totalBytes: number): number {
  return Math.min(64 * 2 ** 20, Math.floor(totalBytes * 0.05));
}

/**
 * Refuse a snapshot that cannot fit before copying a byte: filling the store's filesystem to the
 * last block would fail the copy anyway, and hurt whatever else writes there meanwhile.
 */
export async function ensureStoreSpace(store: string, bytes: number, what = 'this snapshot'): Promise<void> {
  const st = await fs.statfs(store);
  const free = st.bavail * st.bsize;
  const need = bytes + reserveBytes(st.blocks * st.bsize);
  if (free < need) {
    throw new StoreError(
      store,
      `snapshot store ${store}: not enough free space for ${what}: it needs ${formatBytes(bytes)} (+ ${formatBytes(need - bytes)} kept free), ${formatBytes(free)} are free; the copy would fail with ENOSPC`,
    );
  }
}

/** ENOSPC anywhere in an error's chain (an SFTP library wraps the local write's error in its own). */
export function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC' || /\bENOSPC\b/.test((e as Error).message ?? '')) return true;
  }
  return false;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), hash);
  return hash.digest('hex');
}

/**
 * Write the manifest (signed when the store has a key) into a staged snapshot and move it into
 * `snapshots/<id>`. The files in `stage` must already be fsynced; after this returns the snapshot
 * survives a crash.
 */
export async function finaliseSnapshot(
  store: string,
  stage: string,
  manifest: Manifest,
  keys: StoreKeys,
): Promise<string> {
  const target = path.join(snapshotsDir(store), manifest.id);
  if (await pathExists(target)) throw new ChainError(target, `${target}: a snapshot with this id already exists`);
  await writeFileAtomic(path.join(stage, MANIFEST), JSON.stringify(signManifest(manifest, keys), null, 2) + '\n');
  await fs.chmod(stage, DIR_MODE);
  await fsyncDir(stage);
  await renameDurable(stage, target);
  return target;
}

/** An id not taken yet: the same second twice (two sources, one run) moves the later one on. */
export async function freeSnapshotId(
  store: string,
  at: Date,
  version: number,
  idFor: (at: Date, version: number) => string,
): Promise<string> {
  for (let shift = 0; ; shift++) {
    const id = idFor(new Date(at.getTime() + shift * 1000), version);
    if (!(await pathExists(path.join(snapshotsDir(store), id)))) return id;
  }
}

/** Remove a snapshot so no reader ever sees half of it: rename into `.tmp/`, then delete. */
export async function removeSnapshot(store: string, id: string): Promise<void> {
  const dir = path.join(snapshotsDir(store), id);
  const doomed = path.join(tmpDir(store), `${TEMP_PREFIX}delete-${id}-${process.pid}`);
  await ensureDir(tmpDir(store));
  await renameDurable(dir, doomed);
  await fs.rm(doomed, { recursive: true, force: true });
  await fsyncDir(tmpDir(store));
}

/** The id `latest` points to, if it is a symlink into snapshots/. */
export async function readLatest(store: string): Promise<string | undefined> {
  const target = await fs.readlink(path.join(store, LATEST)).catch(() => undefined);
  return target ? path.basename(target) : undefined;
}

/** Point `latest` at `snapshots/<id>` (relative, so the store can move) or remove it; atomic rename. */
export async function setLatest(store: string, id: string | undefined): Promise<void> {
  const link = path.join(store, LATEST);
  if (id === undefined) {
    await fs.rm(link, { force: true });
  } else {
    if ((await readLatest(store)) === id) return;
    // Made in .tmp/ under the temp prefix: a run killed before the rename leaves it where the next
    // run's cleanup looks, not as a stray in the store's top directory.
    await ensureDir(tmpDir(store));
    const tmp = path.join(tmpDir(store), `${TEMP_PREFIX}${LATEST}-${process.pid}`);
    await fs.rm(tmp, { force: true });
    await fs.symlink(path.join('snapshots', id), tmp);
    await renameDurable(tmp, link);
  }
  await fsyncDir(store);
}

/** Cheap health check (no reading): every manifest file is there with its recorded size. */
export async function snapshotProblem(snapshot: StoredSnapshot): Promise<string | undefined> {
  for (const f of snapshot.manifest.files) {
    const name = f.stored?.name ?? f.name;
    const st = await fs.stat(storedPathOf(snapshot, f)).catch(() => undefined);
    if (!st) return `${name} is missing`;
    if (st.size !== storedSizeOf(f)) return `${name} is ${st.size} bytes, manifest says ${storedSizeOf(f)}`;
  }
  return undefined;
}

export interface StoreView {
  /** Complete snapshots whose files are all present, oldest first. */
  healthy: StoredSnapshot[];
  /** Directories that are not usable snapshots, with why. Retention never touches them. */
  broken: BrokenSnapshot[];
}

export async function viewStore(store: string, keys: StoreKeys): Promise<StoreView> {
  const { snapshots, broken } = await listSnapshots(store, keys);
  const healthy: StoredSnapshot[] = [];
  for (const s of snapshots) {
    const problem = await snapshotProblem(s);
    if (problem) broken.push({ id: s.id, error: problem });
    else healthy.push(s);
  }
  return { healthy, broken };
}

/** Point `latest` at the newest healthy snapshot (ids sort by time). */
export async function refreshLatest(store: string, keys: StoreKeys): Promise<string | undefined> {
  const { healthy } = await viewStore(store, keys);
  const newest = healthy[healthy.length - 1]?.id;
  await setLatest(store, newest);
  return newest;
}

/**
 * Full check of a snapshot directory against its manifest: stored sizes and sha256, the content's
 * (decompressed, decrypted) size and sha256, image header and ending, every changelog parses with the
 * recorded versions, and the chain reaches `reachesVersion`. Returns the problems (empty = good).
 * Reads every byte once.
 */
export async function verifySnapshot(dir: string, manifest: Manifest | undefined, keys: StoreKeys): Promise<string[]> {
  const m = manifest ?? (await readManifest(dir, keys));
  const snapshot = { id: m.id, dir, manifest: m };
  const problems: string[] = [];
  const pieces: ChangelogPiece[] = [];
  const listed = new Set(m.files.map((f) => f.stored?.name ?? f.name));
  for (const f of m.files) {
    let facts;
    try {
      facts = await readSnapshotContent(snapshot, f, { keys });
    } catch (err) {
      problems.push((err as Error).message.replace(`snapshot ${m.id}: `, ''));
      continue;
    }
    if (f.role === 'image') problems.push(...imageProblems(facts, f.name, m));
    else if (f.role === 'changelog') pieces.push(...changelogPieces(facts.scan!, f.name, f, problems));
  }
  if (!m.files.some((f) => f.role === 'image')) problems.push('manifest lists no image');
  for (const name of await fs.readdir(dir)) {
    if (name !== MANIFEST && !listed.has(name)) problems.push(`${printable(name)}: not in the manifest`);
  }
  const start = restoreFrom(m.image);
  const reached = rollForward(start, pieces).reached;
  if (problems.length === 0 && reached !== m.reachesVersion)
    problems.push(`chain reaches version ${reached}, manifest says ${m.reachesVersion}`);
  return problems;
}

function imageProblems(facts: ContentFacts, name: string, m: Manifest): string[] {
  const header = facts.header;
  if (!header) return [`${name}: ${facts.headerError}`];
  if (
    header.empty !== m.image.empty ||
    (!header.empty && (header.version !== m.image.version || header.metaid !== m.image.metaid))
  ) {
    return [
      `${name}: header says version ${header.version} metaid ${header.metaid || '-'}, manifest says ${m.image.version} ${m.image.metaid || '-'}`,
    ];
  }
  return [];
}

function changelogPieces(
  scan: ChangelogScan,
  name: string,
  f: Manifest['files'][number],
  problems: string[],
): ChangelogPiece[] {
  for (const p of scan.problems.slice(0, 3)) problems.push(`${name}:${p.line}: ${p.reason}`);
  if (
    (f.firstVersion !== undefined && scan.first !== f.firstVersion) ||
    (f.lastVersion !== undefined && scan.last !== f.lastVersion)
  ) {
    problems.push(
      `${name}: holds versions ${scan.first ?? '-'}..${scan.last ?? '-'}, manifest says ${f.firstVersion ?? '-'}..${f.lastVersion ?? '-'}`,
    );
  }
  return scan.segments.map((s) => ({ ...s, file: name }));
}
