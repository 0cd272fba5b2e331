import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DIR_MODE, fsyncDir, pathExists, renameDurable, sealFile, tempNameFor } from '../core/atomic.js';
import { ChainError, UsageError } from '../core/errors.js';
import { MANIFEST, readManifest, snapshotsDir, type StoredSnapshot } from './manifest.js';
import { isChangelogName, isImageName, isSessionsName } from '../moosefs/metadata.js';
import { makeStageDir, prepareStore, readLatest, refreshLatest, verifySnapshot } from './snapshot-store.js';

/**
 * A snapshot as one portable `tar.gz` (to carry off-site) and back. The archive holds
 * `<id>/manifest.json` and the snapshot's files; both directions verify every checksum, so an archive
 * that rotted on tape is refused on import instead of becoming a restore point.
 */

const ID_PATTERN = /^\d{8}T\d{6}Z-v\d+$/;

/** A snapshot by id, or the one `latest` points to. */
export async function findSnapshot(store: string, id: string): Promise<StoredSnapshot> {
  const wanted = id === 'latest' ? await readLatest(store) : id;
  if (!wanted || !ID_PATTERN.test(wanted)) throw new UsageError(id, `no snapshot "${id}" in ${store} (ids look like 20261125T221500Z-v1234; see mfs-jobs snapshot list)`);
  const dir = path.join(snapshotsDir(store), wanted);
  if (!(await pathExists(dir))) throw new UsageError(id, `no snapshot "${wanted}" in ${store} (see mfs-jobs snapshot list)`);
  return { id: wanted, dir, manifest: await readManifest(dir) };
}

export async function exportSnapshot(store: string, id: string, file: string): Promise<{ id: string; file: string; bytes: number }> {
  const snap = await findSnapshot(store, id);
  const problems = await verifySnapshot(snap.dir, snap.manifest);
  if (problems.length) throw new ChainError(snap.dir, `snapshot ${snap.id} does not verify, not exported: ${problems.join('; ')}`);
  const target = path.resolve(file);
  const tmp = tempNameFor(target);
  const members = [MANIFEST, ...snap.manifest.files.map((f) => f.name)].map((n) => `${snap.id}/${n}`);
  try {
    // Loaded here, not at start-up: every mfs-jobs command would otherwise pay for it (npm run bench, case 5).
    const tar = await import('tar');
    await tar.c({ gzip: true, file: tmp, cwd: snapshotsDir(store), portable: true }, members);
    await sealFile(tmp);
    await renameDurable(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  return { id: snap.id, file: target, bytes: (await fs.stat(target)).size };
}

/** Only `<id>/` and the names a snapshot holds: nothing else may come out of an archive. */
function archiveMember(p: string, type: string): { id: string; name?: string } | undefined {
  const parts = p.replace(/\/+$/, '').split('/');
  const [id, name, ...rest] = parts;
  if (!id || !ID_PATTERN.test(id) || rest.length) return undefined;
  if (name === undefined) return type === 'Directory' ? { id } : undefined;
  if (type !== 'File' && type !== 'OldFile') return undefined;
  return name === MANIFEST || isImageName(name) || isChangelogName(name) || isSessionsName(name) ? { id, name } : undefined;
}

async function unpack(file: string, stage: string): Promise<string> {
  const ids = new Set<string>();
  const refused: string[] = [];
  try {
    const tar = await import('tar');
    await tar.x({
      file,
      cwd: stage,
      strict: true,
      filter: (p, entry) => {
        const type = 'type' in entry ? String(entry.type) : 'File';
        const member = archiveMember(p, type);
        if (!member) refused.push(`${p} (${type})`);
        else ids.add(member.id);
        return member !== undefined;
      },
    });
  } catch (err) {
    throw new ChainError(file, `${file}: not a readable snapshot archive (${(err as Error).message})`);
  }
  if (refused.length) throw new ChainError(file, `${file}: unexpected entries in a snapshot archive: ${refused.slice(0, 3).join(', ')}`);
  if (ids.size !== 1) throw new ChainError(file, `${file}: expected one snapshot directory, found ${ids.size}`);
  return [...ids][0]!;
}

export async function importSnapshot(store: string, file: string): Promise<{ id: string; already: boolean }> {
  if (!(await pathExists(file))) throw new UsageError(file, `${file}: no such file`);
  await prepareStore(store);
  const stage = await makeStageDir(store, 'import');
  try {
    const id = await unpack(path.resolve(file), stage);
    const dir = path.join(stage, id);
    const manifest = await readManifest(dir);
    if (manifest.id !== id) throw new ChainError(file, `${file}: manifest id ${manifest.id} does not match its directory ${id}`);
    const problems = await verifySnapshot(dir, manifest);
    if (problems.length) throw new ChainError(file, `${file}: snapshot ${id} does not verify, not imported: ${problems.join('; ')}`);
    const target = path.join(snapshotsDir(store), id);
    if (await pathExists(target)) {
      const existing = await readManifest(target);
      const same = JSON.stringify(existing.files.map((f) => [f.name, f.sha256])) === JSON.stringify(manifest.files.map((f) => [f.name, f.sha256]));
      if (!same) throw new ChainError(target, `${target}: a different snapshot with id ${id} is already in the store`);
      return { id, already: true };
    }
    for (const name of await fs.readdir(dir)) await sealFile(path.join(dir, name));
    await fs.chmod(dir, DIR_MODE);
    await fsyncDir(dir);
    await renameDurable(dir, target);
    await refreshLatest(store);
    return { id, already: false };
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
