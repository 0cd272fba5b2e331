import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { scanChangelogFile } from '../../lib/changelog.js';
import { LATEST, MANIFEST, snapshotId, snapshotsDir, TMP_DIR, type Manifest, type ManifestFile } from '../../lib/manifest.js';
import { readImageHeader } from '../../lib/metadata.js';
import { rollForward } from '../../lib/chain.js';

/**
 * Write a snapshot in the store format of lib/manifest.ts from real files, the way the backup job
 * does (temp directory, then one rename into `snapshots/`), so prune's tests need not wait for it.
 */
export async function writeSnapshot(store: string, o: { image: string; changelogs: string[]; takenAt: Date; source?: Manifest['source'] }): Promise<{ id: string; dir: string; manifest: Manifest }> {
  const header = await readImageHeader(o.image);
  const id = snapshotId(o.takenAt, header.version);
  const tmp = path.join(store, TMP_DIR, `test-${id}`);
  await fs.mkdir(tmp, { recursive: true, mode: 0o700 });
  await fs.mkdir(snapshotsDir(store), { recursive: true, mode: 0o700 });
  const files: ManifestFile[] = [];
  const pieces = [];
  for (const [role, src] of [['image', o.image] as const, ...o.changelogs.map((c) => ['changelog', c] as const)]) {
    const name = path.basename(src);
    await fs.copyFile(src, path.join(tmp, name));
    const st = await fs.stat(src);
    const data = await fs.readFile(path.join(tmp, name));
    const file: ManifestFile = { name, role, size: data.length, sha256: createHash('sha256').update(data).digest('hex'), sourcePath: src, sourceSize: st.size, sourceMtimeMs: st.mtimeMs };
    if (role === 'changelog') {
      const scan = await scanChangelogFile(path.join(tmp, name));
      file.firstVersion = scan.first;
      file.lastVersion = scan.last;
      pieces.push(...scan.segments.map((s) => ({ file: name, ...s })));
    }
    files.push(file);
  }
  const versions = files.filter((f) => f.role === 'changelog');
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    source: o.source ?? { name: 'master', host: '127.0.0.1', role: 'master', dataPath: path.dirname(o.image) },
    image: { name: path.basename(o.image), version: header.version, metaid: header.metaid, empty: header.empty },
    changelogs: { first: Math.min(...versions.map((f) => f.firstVersion ?? Infinity)), last: Math.max(...versions.map((f) => f.lastVersion ?? -Infinity)) },
    reachesVersion: rollForward(header.version, pieces).reached,
    files,
    mfsJobsVersion: 'test',
    startedAt: o.takenAt.toISOString(),
    finishedAt: o.takenAt.toISOString(),
  };
  await fs.writeFile(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 2), { mode: 0o600 });
  const dir = path.join(snapshotsDir(store), id);
  await fs.rename(tmp, dir);
  const link = path.join(store, `${LATEST}.tmp`);
  await fs.rm(link, { force: true });
  await fs.symlink(path.join(path.basename(snapshotsDir(store)), id), link);
  await fs.rename(link, path.join(store, LATEST));
  return { id, dir, manifest };
}
