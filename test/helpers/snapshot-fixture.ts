import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { rollForward } from '../../lib/chain.js';
import { scanChangelogFile } from '../../lib/changelog.js';
import { LATEST, MANIFEST, snapshotId, snapshotsDir, type Manifest, type ManifestFile } from '../../lib/manifest.js';
import { readImageHeader } from '../../lib/metadata.js';

/**
 * A snapshot in the store's format (lib/manifest.ts) made from a real master's or metalogger's
 * files, with true sizes and sha256 — the way the backup job writes one, without needing it.
 * `dropVersion` removes that changelog line before checksumming: a snapshot with a hole that still
 * passes its checksums, so only mfsmaster -a can find the fault.
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
  const files: ManifestFile[] = [];
  const pieces = [];
  for (const [name, role] of [[o.image, 'image'] as const, ...o.changelogs.map((c) => [c, 'changelog'] as const)]) {
    const data = await fs.readFile(path.join(work, name));
    const src = await fs.stat(path.join(o.dataPath, name));
    const file: ManifestFile = { name, role, size: data.length, sha256: createHash('sha256').update(data).digest('hex'), sourcePath: path.join(o.dataPath, name), sourceSize: src.size, sourceMtimeMs: src.mtimeMs };
    if (role === 'changelog') {
      const scan = await scanChangelogFile(path.join(work, name));
      Object.assign(file, { firstVersion: scan.first, lastVersion: scan.last });
      pieces.push(...scan.segments.map((s) => ({ ...s, file: name })));
    }
    files.push(file);
  }
  const chain = rollForward(header.empty ? 1 : header.version, pieces);
  const id = snapshotId(at, chain.reached);
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    source: o.source ?? { name: 'master', host: '127.0.0.1', role: 'master', dataPath: o.dataPath },
    image: { name: o.image, version: header.version, metaid: header.metaid, empty: header.empty },
    changelogs: { first: Math.min(...pieces.map((p) => p.first)), last: Math.max(...pieces.map((p) => p.last)) },
    reachesVersion: chain.reached,
    files,
    mfsJobsVersion: 'test-fixture',
    startedAt: at.toISOString(),
    finishedAt: new Date().toISOString(),
  };
  await fs.writeFile(path.join(work, MANIFEST), JSON.stringify(manifest, null, 2));
  const dir = path.join(snapshotsDir(o.store), id);
  await fs.mkdir(snapshotsDir(o.store), { recursive: true, mode: 0o700 });
  await fs.rename(work, dir);
  const link = path.join(o.store, LATEST);
  await fs.rm(link, { force: true });
  await fs.symlink(path.join('snapshots', id), link);
  return { id, dir, manifest };
}
