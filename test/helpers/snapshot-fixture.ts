import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { rollForward, type ChangelogPiece } from '../../lib/chain.js';
import { scanChangelogFile } from '../../lib/changelog.js';
import { LATEST, MANIFEST, snapshotId, snapshotsDir, type Manifest, type ManifestFile } from '../../lib/manifest.js';
import { isChangelogName, readImageHeader } from '../../lib/metadata.js';

/**
 * Snapshots in the store's format (lib/manifest.ts) made from a real master's or metalogger's files,
 * with true sizes and sha256 — the way the backup job writes one — for tests of the jobs that READ
 * the store (verify, drill, prune, promote) without depending on backup.
 */

/** Manifest entries for files already in `dir`, copied from `fromDataPath`; also their version pieces. */
async function describeFiles(dir: string, fromDataPath: string, image: string, names: string[]): Promise<{ files: ManifestFile[]; pieces: ChangelogPiece[] }> {
  const files: ManifestFile[] = [];
  const pieces: ChangelogPiece[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const body = await fs.readFile(file);
    const src = await fs.stat(path.join(fromDataPath, name));
    const entry: ManifestFile = { name, role: name === image ? 'image' : 'changelog', size: body.length, sha256: createHash('sha256').update(body).digest('hex'), sourcePath: path.join(fromDataPath, name), sourceSize: src.size, sourceMtimeMs: src.mtimeMs };
    if (entry.role === 'changelog') {
      const scan = await scanChangelogFile(file);
      entry.firstVersion = scan.first;
      entry.lastVersion = scan.last;
      pieces.push(...scan.segments.map((s) => ({ ...s, file: name })));
    }
    files.push(entry);
  }
  return { files, pieces };
}

async function writeManifestIn(dir: string, o: { id: string; at: Date; image: string; source: Manifest['source']; reachesVersion: number; files: ManifestFile[]; pieces: ChangelogPiece[] }): Promise<Manifest> {
  const header = await readImageHeader(path.join(dir, o.image));
  const manifest: Manifest = {
    formatVersion: 1,
    id: o.id,
    source: o.source,
    image: { name: o.image, version: header.version, metaid: header.metaid, empty: header.empty },
    changelogs: { first: Math.min(...o.pieces.map((p) => p.first)), last: Math.max(...o.pieces.map((p) => p.last)) },
    reachesVersion: o.reachesVersion,
    files: o.files,
    mfsJobsVersion: 'test-fixture',
    startedAt: o.at.toISOString(),
    finishedAt: new Date().toISOString(),
  };
  await fs.writeFile(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2), { mode: 0o600 });
  return manifest;
}

/**
 * A snapshot of `image` + `changelogs` from `dataPath`, its version computed by rollForward, `latest`
 * pointed at it. `dropVersion` removes that changelog line before checksumming: a snapshot with a hole
 * that still passes its checksums, so only mfsmaster -a can find the fault.
 */
export async function makeSnapshot(o: {
  store: string;
  dataPath: string;
  image: string;
  changelogs: string[];
  at?: Date;
  dropVersion?: number;
  source?: Manifest['source'];
}): Promise<{ id: string; dir: string; manifest: Manifest }> {
  const at = o.at ?? new Date();
  const work = path.join(o.store, '.tmp', `fixture-${process.pid}-${Date.now()}`);
  await fs.mkdir(work, { recursive: true, mode: 0o700 });
  await fs.copyFile(path.join(o.dataPath, o.image), path.join(work, o.image));
  for (const name of o.changelogs) {
    let text = await fs.readFile(path.join(o.dataPath, name), 'utf8');
    if (o.dropVersion !== undefined) text = text.split('\n').filter((l) => !l.startsWith(`${o.dropVersion}: `)).join('\n');
    await fs.writeFile(path.join(work, name), text);
  }
  const header = await readImageHeader(path.join(work, o.image));
  const { files, pieces } = await describeFiles(work, o.dataPath, o.image, [o.image, ...o.changelogs]);
  const reached = rollForward(header.empty ? 1 : header.version, pieces).reached;
  const id = snapshotId(at, reached);
  const source = o.source ?? { name: 'master', host: '127.0.0.1', role: 'master', dataPath: o.dataPath };
  const manifest = await writeManifestIn(work, { id, at, image: o.image, source, reachesVersion: reached, files, pieces });
  const dir = path.join(snapshotsDir(o.store), id);
  await fs.mkdir(snapshotsDir(o.store), { recursive: true, mode: 0o700 });
  await fs.rename(work, dir);
  const link = path.join(o.store, LATEST);
  await fs.rm(link, { force: true });
  await fs.symlink(path.join('snapshots', id), link);
  return { id, dir, manifest };
}

/**
 * A snapshot of `image` and every changelog in `fromDataPath` (a metalogger's), with the
 * `reachesVersion` the caller knows (the master's version when the files were copied). `edit` changes
 * the copied files before the manifest is written (a backup that copied damage faithfully).
 */
export async function writeSnapshotFixture(o: {
  store: string;
  fromDataPath: string;
  image: string;
  reachesVersion: number;
  at?: Date;
  edit?: (dir: string) => Promise<void>;
}): Promise<{ id: string; dir: string; manifest: Manifest }> {
  const at = o.at ?? new Date();
  const id = snapshotId(at, o.reachesVersion);
  const dir = path.join(snapshotsDir(o.store), id);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const names = (await fs.readdir(o.fromDataPath)).filter((n) => n === o.image || isChangelogName(n));
  for (const n of names) await fs.copyFile(path.join(o.fromDataPath, n), path.join(dir, n));
  await o.edit?.(dir);
  const { files, pieces } = await describeFiles(dir, o.fromDataPath, o.image, names);
  const source: Manifest['source'] = { name: 'ml1', host: '127.0.0.1', role: 'metalogger', dataPath: o.fromDataPath };
  const manifest = await writeManifestIn(dir, { id, at, image: o.image, source, reachesVersion: o.reachesVersion, files, pieces });
  return { id, dir, manifest };
}
