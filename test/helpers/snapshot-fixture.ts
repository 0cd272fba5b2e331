import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { rollForward, type ChangelogPiece } from '../../lib/moosefs/chain.js';
import { scanChangelogFile } from '../../lib/moosefs/changelog.js';
import { snapshotId, type Manifest, type ManifestFile, type StoredSnapshot } from '../../lib/store/manifest.js';
import { isChangelogName, readImageHeader, restoreFrom } from '../../lib/moosefs/metadata.js';
import { finaliseSnapshot, makeStageDir, setLatest } from '../../lib/store/snapshot-store.js';

/**
 * Snapshots in the store's format (lib/store/manifest.ts) made from real image and changelog files, with
 * true sizes and sha256, staged in `.tmp/` and renamed into `snapshots/` with `latest` pointed at
 * them the way the backup job does — for tests of the jobs that READ the store (verify, drill,
 * prune, promote) without depending on backup.
 */
export interface SnapshotFixture {
  store: string;
  /** The image file to copy; it keeps its name in the snapshot. */
  image: string;
  /** The changelog files to copy; default every changelog in the image's directory. */
  changelogs?: string[];
  /** When the snapshot was taken: its id, startedAt and finishedAt (prune's age). Default now. */
  at?: Date;
  /** Default a master named `master` whose DATA_PATH is the image's directory. */
  source?: Manifest['source'];
  /** Change the copied files before they are checksummed: a backup that copied damage faithfully. */
  edit?: (dir: string) => Promise<void>;
  /** What the manifest promises; default what the copied files really reach (rolled forward). */
  reachesVersion?: number;
}

/**
 * A still copy of a live master's image and changelogs, its changelogs joined into one `changelog.0.mfs`
 * (oldest first): the master's hourly timer may rotate `changelog.0.mfs` away at any moment, and a test
 * that copies it at the top of the hour would find it gone. Tried again if a rotation lands mid-copy.
 */
export async function freezeDataPath(dataPath: string, into: string): Promise<void> {
  await fs.mkdir(into, { recursive: true, mode: 0o700 });
  for (let attempt = 1; ; attempt++) {
    try {
      const names = (await fs.readdir(dataPath))
        .filter(isChangelogName)
        .sort((a, b) => Number(b.split('.')[1]) - Number(a.split('.')[1]));
      const parts = await Promise.all(names.map((n) => fs.readFile(path.join(dataPath, n))));
      await fs.copyFile(path.join(dataPath, 'metadata.mfs.back'), path.join(into, 'metadata.mfs.back'));
      await fs.writeFile(path.join(into, 'changelog.0.mfs'), Buffer.concat(parts));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
    }
  }
}

export async function writeSnapshot(o: SnapshotFixture): Promise<StoredSnapshot> {
  const at = o.at ?? new Date();
  const from = path.dirname(o.image);
  const sources = [
    o.image,
    ...(o.changelogs ??
      (await fs.readdir(from))
        .filter(isChangelogName)
        .sort()
        .map((n) => path.join(from, n))),
  ];
  const stage = await makeStageDir(o.store, 'fixture');
  for (const src of sources) await fs.copyFile(src, path.join(stage, path.basename(src)));
  await o.edit?.(stage);
  const files: ManifestFile[] = [];
  const pieces: ChangelogPiece[] = [];
  for (const src of sources) {
    const name = path.basename(src);
    const body = await fs.readFile(path.join(stage, name));
    const st = await fs.stat(src);
    const file: ManifestFile = {
      name,
      role: src === o.image ? 'image' : 'changelog',
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      sourcePath: src,
      sourceSize: st.size,
      sourceMtimeMs: st.mtimeMs,
    };
    if (file.role === 'changelog') {
      const scan = await scanChangelogFile(path.join(stage, name));
      file.firstVersion = scan.first;
      file.lastVersion = scan.last;
      pieces.push(...scan.segments.map((s) => ({ ...s, file: name })));
    }
    files.push(file);
  }
  const header = await readImageHeader(path.join(stage, path.basename(o.image)));
  const reachesVersion = o.reachesVersion ?? rollForward(restoreFrom(header), pieces).reached;
  const id = snapshotId(at, reachesVersion);
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    source: o.source ?? { name: 'master', host: '127.0.0.1', role: 'master', dataPath: from },
    image: { name: path.basename(o.image), version: header.version, metaid: header.metaid, empty: header.empty },
    changelogs: pieces.length
      ? { first: Math.min(...pieces.map((p) => p.first)), last: Math.max(...pieces.map((p) => p.last)) }
      : {},
    reachesVersion,
    files,
    mfsJobsVersion: 'test-fixture',
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
  };
  const dir = await finaliseSnapshot(o.store, stage, manifest, {});
  await setLatest(o.store, id);
  return { id, dir, manifest };
}

/** Delete one version's line from every changelog in `dir` (a metalogger may hold it in two files). */
export async function deleteVersion(dir: string, version: number): Promise<void> {
  for (const n of await fs.readdir(dir)) {
    if (!n.startsWith('changelog')) continue;
    const text = await fs.readFile(path.join(dir, n), 'utf8');
    await fs.writeFile(
      path.join(dir, n),
      text
        .split('\n')
        .filter((l) => !l.startsWith(`${version}: `))
        .join('\n'),
    );
  }
}
