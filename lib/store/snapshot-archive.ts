import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  createTempExclusive,
  DIR_MODE,
  FILE_MODE,
  fillAndSync,
  fsyncDir,
  pathExists,
  placeTemp,
  renameDurable,
  sealFile,
} from '../core/atomic.js';
import { ChainError, StoreError, UsageError } from '../core/errors.js';
import { plainNameProblem, printable, shownName } from '../core/names.js';
import {
  ID_PATTERN,
  idTime,
  listSnapshots,
  MANIFEST,
  readManifest,
  snapshotsDir,
  type Manifest,
  type StoredSnapshot,
} from './manifest.js';
import { isChangelogName, isImageName, isSessionsName } from '../moosefs/metadata.js';
import { foreignMetaidMessage, type ClusterIdentity } from './identity.js';
import type { StoreKeys } from './stored-file.js';
import {
  ensureStoreSpace,
  makeStageDir,
  prepareStore,
  readLatest,
  refreshLatest,
  verifySnapshot,
} from './snapshot-store.js';

/**
 * A snapshot as one portable `tar.gz` (to carry off-site) and back. The archive holds
 * `<id>/manifest.json` and the snapshot's files; both directions verify every checksum, so an archive
 * that rotted on tape is refused on import instead of becoming a restore point.
 */

/** Clock skew an imported snapshot's time may be ahead of ours: more, and it would hide stopped backups as `latest`. */
export const MAX_FUTURE_MS = 10 * 60_000;

/** A snapshot by id, or the one `latest` points to. */
export async function findSnapshot(store: string, id: string, keys: StoreKeys): Promise<StoredSnapshot> {
  const wanted = id === 'latest' ? await readLatest(store) : id;
  if (!wanted || !ID_PATTERN.test(wanted))
    throw new UsageError(
      id,
      `no snapshot "${id}" in ${store} (ids look like 20261125T221500Z-v1234; see mfs-jobs snapshot list)`,
    );
  const dir = path.join(snapshotsDir(store), wanted);
  if (!(await pathExists(dir)))
    throw new UsageError(id, `no snapshot "${wanted}" in ${store} (see mfs-jobs snapshot list)`);
  return { id: wanted, dir, manifest: await readManifest(dir, keys) };
}

/** The stored files go into the archive as they are (compressed, sealed): verified first, never re-encoded. */
export async function exportSnapshot(
  store: string,
  id: string,
  file: string,
  keys: StoreKeys,
): Promise<{ id: string; file: string; bytes: number }> {
  const snap = await findSnapshot(store, id, keys);
  const problems = await verifySnapshot(snap.dir, snap.manifest, keys);
  if (problems.length)
    throw new ChainError(snap.dir, `snapshot ${snap.id} does not verify, not exported: ${problems.join('; ')}`);
  const target = path.resolve(file);
  // Created here, exclusively and private, and written through our own handle: tar never opens a path.
  const { tmp, handle } = await createTempExclusive(target);
  const members = [MANIFEST, ...snap.manifest.files.map((f) => f.stored?.name ?? f.name)].map((n) => `${snap.id}/${n}`);
  await fillAndSync(handle, tmp, async (out) => {
    // Loaded here, not at start-up: every mfs-jobs command would otherwise pay for it (npm run bench, case 5).
    const tar = await import('tar');
    for await (const chunk of tar.c({ gzip: true, cwd: snapshotsDir(store), portable: true }, members))
      await out.write(chunk);
  });
  await placeTemp(tmp, target);
  return { id: snap.id, file: target, bytes: (await fs.stat(target)).size };
}

/** Only `<id>/` and the names a snapshot holds: nothing else may come out of an archive. */
function archiveMember(p: string, type: string): { id: string; name?: string } | undefined {
  const parts = p.replace(/\/+$/, '').split('/');
  const [id, name, ...rest] = parts;
  if (!id || !ID_PATTERN.test(id) || rest.length) return undefined;
  if (name === undefined) return type === 'Directory' ? { id } : undefined;
  if (type !== 'File' && type !== 'OldFile') return undefined;
  if (plainNameProblem(name)) return undefined;
  // A stored form's suffixes (.zst, .enc) on a MooseFS name; the manifest then says which file is which.
  const base = name.replace(/(\.zst)?(\.enc)?$/, '');
  return name === MANIFEST || isImageName(base) || isChangelogName(base) || isSessionsName(base)
    ? { id, name }
    : undefined;
}

/** The bytes an archive would write, from its headers, read before anything is extracted. */
async function archiveBytes(file: string): Promise<number> {
  const tar = await import('tar');
  let bytes = 0;
  try {
    // Not strict: a truncated archive still tells what it would write; extraction (strict) refuses it later.
    await tar.t({ file, onReadEntry: (entry) => (bytes += entry.size ?? 0) });
  } catch (err) {
    throw new ChainError(file, `${file}: not a readable snapshot archive (${(err as Error).message})`);
  }
  return bytes;
}

async function unpack(file: string, stage: string, limit: number): Promise<string> {
  const ids = new Set<string>();
  const refused: string[] = [];
  let bytes = 0;
  try {
    const tar = await import('tar');
    await tar.x({
      file,
      cwd: stage,
      strict: true,
      // Ours, private, whatever the archive says (as root node-tar would otherwise chown to its uid/gid).
      preserveOwner: false,
      dmode: DIR_MODE,
      fmode: FILE_MODE,
      filter: (p, entry) => {
        const type = 'type' in entry ? String(entry.type) : 'File';
        const member = archiveMember(p, type);
        if (!member) refused.push(`${shownName(p)} (${type})`);
        else ids.add(member.id);
        if ('mode' in entry) entry.mode = member?.name === undefined ? DIR_MODE : FILE_MODE;
        // The file may have changed since it was measured: never write more than was allowed for.
        bytes += 'size' in entry ? Number(entry.size ?? 0) : 0;
        if (bytes > limit) refused.push(`${shownName(p)} (beyond the ${limit} bytes measured)`);
        return member !== undefined && bytes <= limit;
      },
    });
  } catch (err) {
    throw new ChainError(file, `${file}: not a readable snapshot archive (${(err as Error).message})`);
  }
  if (refused.length)
    throw new ChainError(file, `${file}: unexpected entries in a snapshot archive: ${refused.slice(0, 3).join(', ')}`);
  if (ids.size !== 1) throw new ChainError(file, `${file}: expected one snapshot directory, found ${ids.size}`);
  return [...ids][0]!;
}

export interface ImportOptions {
  /** Accept a snapshot of another filesystem (metaid) than the store's snapshots: a deliberate move. */
  otherFilesystem?: boolean;
  /** The cluster's filesystem (config or learnt): a snapshot of another is refused like one the store does not hold. */
  identity?: ClusterIdentity;
  /** "Now", for the future check (tests). */
  now?: Date;
  /**
   * The store's keys: an encrypted snapshot is verified (decrypted) before it is imported, and with a key
   * the archive's manifest must be signed by it (an archive is outside input like a copy).
   */
  keys: StoreKeys;
}

/** A snapshot from the future would become `latest` and hide, for as long, that backups stopped. */
function futureProblem(file: string, id: string, m: Manifest, now: Date): string | undefined {
  const limit = now.getTime() + MAX_FUTURE_MS;
  const times: [string, number | undefined][] = [
    ['id', idTime(id)?.getTime()],
    ['startedAt', Date.parse(m.startedAt)],
    ['finishedAt', Date.parse(m.finishedAt)],
  ];
  for (const [what, at] of times) {
    if (at === undefined || Number.isNaN(at)) return `${file}: snapshot ${id}: ${what} is not a time`;
    if (at > limit)
      return `${file}: snapshot ${id} is from the future (${what} ${new Date(at).toISOString()}, now ${now.toISOString()}, more than ${MAX_FUTURE_MS / 60_000} min ahead); not imported: it would become latest`;
  }
  return undefined;
}

const metaidShown = (m: string) => printable(m).slice(0, 40);

/** The filesystem (metaid) the store's snapshots are of; an empty store, or only MFSM NEW images, has none. */
async function storeMetaids(store: string, keys: StoreKeys): Promise<Set<string>> {
  const { snapshots } = await listSnapshots(store, keys);
  return new Set(
    snapshots.filter((s) => !s.manifest.image.empty && s.manifest.image.metaid).map((s) => s.manifest.image.metaid),
  );
}

export async function importSnapshot(
  store: string,
  file: string,
  options: ImportOptions,
): Promise<{ id: string; already: boolean }> {
  const keys = options.keys;
  if (!(await pathExists(file))) throw new UsageError(file, `${file}: no such file`);
  await prepareStore(store);
  const bytes = await archiveBytes(path.resolve(file));
  try {
    await ensureStoreSpace(store, bytes, `archive ${file}`);
  } catch (err) {
    if (err instanceof StoreError) throw new StoreError(file, `${file}: refused before extracting: ${err.message}`);
    throw err;
  }
  const stage = await makeStageDir(store, 'import');
  try {
    const id = await unpack(path.resolve(file), stage, bytes);
    const dir = path.join(stage, id);
    const manifest = await readManifest(dir, keys);
    if (manifest.id !== id)
      throw new ChainError(file, `${file}: manifest id ${manifest.id} does not match its directory ${id}`);
    const future = futureProblem(file, id, manifest, options.now ?? new Date());
    if (future) throw new ChainError(file, future);
    const theirs = manifest.image.empty ? '' : manifest.image.metaid;
    if (theirs && options.identity && theirs !== options.identity.metaid && !options.otherFilesystem) {
      throw new ChainError(
        file,
        `${foreignMetaidMessage(`${file}: snapshot ${id}`, theirs, options.identity)}; not imported (--other-filesystem to import it anyway; promote and prune would not use it)`,
      );
    }
    const ours = [...(await storeMetaids(store, keys))];
    if (theirs && ours.length && !options.otherFilesystem && (ours.length > 1 || ours[0] !== theirs)) {
      throw new ChainError(
        file,
        `${file}: snapshot ${id} is of filesystem metaid ${metaidShown(theirs)}, the store ${store} holds metaid ${ours.map(metaidShown).join(', ')}; not imported (--other-filesystem to import it anyway)`,
      );
    }
    const problems = await verifySnapshot(dir, manifest, keys);
    if (problems.length)
      throw new ChainError(file, `${file}: snapshot ${id} does not verify, not imported: ${problems.join('; ')}`);
    const target = path.join(snapshotsDir(store), id);
    if (await pathExists(target)) {
      const existing = await readManifest(target, keys);
      const same =
        JSON.stringify(existing.files.map((f) => [f.name, f.sha256, f.hmac, f.stored?.sha256])) ===
        JSON.stringify(manifest.files.map((f) => [f.name, f.sha256, f.hmac, f.stored?.sha256]));
      if (!same) throw new ChainError(target, `${target}: a different snapshot with id ${id} is already in the store`);
      return { id, already: true };
    }
    for (const name of await fs.readdir(dir)) await sealFile(path.join(dir, name));
    await fs.chmod(dir, DIR_MODE);
    await fsyncDir(dir);
    await renameDurable(dir, target);
    await refreshLatest(store, keys);
    return { id, already: false };
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
