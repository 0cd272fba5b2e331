import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { scanChangelogFile } from '../../lib/changelog.js';
import { MANIFEST, snapshotId, snapshotsDir, type Manifest, type ManifestFile } from '../../lib/manifest.js';
import { isChangelogName, readImageHeader } from '../../lib/metadata.js';

/**
 * Write a snapshot in the documented store format from real MooseFS files, as the backup job would:
 * `<store>/snapshots/<id>/{image, changelogs, manifest.json}`. Verify reads stores it did not write;
 * this stands in for backup in verify's tests. `reachesVersion` is what the caller knows (the master's
 * version when the files were copied), not something computed here.
 */
export async function writeSnapshotFixture(o: {
  store: string;
  fromDataPath: string;
  image: string;
  reachesVersion: number;
  at?: Date;
  /** Edit the copied files before the manifest is written (a backup that copied damage faithfully). */
  edit?: (dir: string) => Promise<void>;
}): Promise<{ id: string; dir: string; manifest: Manifest }> {
  const at = o.at ?? new Date();
  const id = snapshotId(at, o.reachesVersion);
  const dir = path.join(snapshotsDir(o.store), id);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const names = (await fs.readdir(o.fromDataPath)).filter((n) => n === o.image || isChangelogName(n));
  for (const n of names) await fs.copyFile(path.join(o.fromDataPath, n), path.join(dir, n));
  await o.edit?.(dir);
  const files: ManifestFile[] = [];
  for (const n of names) {
    const file = path.join(dir, n);
    const body = await fs.readFile(file);
    const src = await fs.stat(path.join(o.fromDataPath, n));
    const entry: ManifestFile = { name: n, role: n === o.image ? 'image' : 'changelog', size: body.length, sha256: createHash('sha256').update(body).digest('hex'), sourcePath: path.join(o.fromDataPath, n), sourceSize: src.size, sourceMtimeMs: src.mtimeMs };
    if (entry.role === 'changelog') {
      const scan = await scanChangelogFile(file);
      entry.firstVersion = scan.first;
      entry.lastVersion = scan.last;
    }
    files.push(entry);
  }
  const header = await readImageHeader(path.join(dir, o.image));
  const versions = files.filter((f) => f.firstVersion !== undefined);
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    source: { name: 'ml1', host: '127.0.0.1', role: 'metalogger', dataPath: o.fromDataPath },
    image: { name: o.image, version: header.version, metaid: header.metaid, empty: header.empty },
    changelogs: { first: Math.min(...versions.map((f) => f.firstVersion!)), last: Math.max(...versions.map((f) => f.lastVersion!)) },
    reachesVersion: o.reachesVersion,
    files,
    mfsJobsVersion: 'test',
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
  };
  await fs.writeFile(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2), { mode: 0o600 });
  return { id, dir, manifest };
}
