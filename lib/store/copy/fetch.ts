import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, CopyConfig } from '../../core/config.js';
import { ChainError, StoreError, TransferError, UsageError } from '../../core/errors.js';
import { formatBytes } from '../../core/progress.js';
import { DIR_MODE, ensureDir, openExclusive, writeNewFile } from '../../core/atomic.js';
import { MANIFEST, onDisk, readManifest, type StoredSnapshot } from '../manifest.js';
import type { StoreKeys } from '../sealed.js';
import { listCopy } from './listing.js';
import { openCopy } from './open.js';
import type { CopyRepository } from './repository.js';
import type { Limit } from '../../transport/listing-bounds.js';

/**
 * Bring one snapshot of an off-site copy home, for drill, restore and promote when the local store is
 * gone: into a private directory `<stateDir>/copy-fetch/fetch-<pid>-*` (0700; removed by `cleanup`,
 * or by the next fetch once its process is gone). Only names the manifest lists are read (plain
 * names, checked by readManifest), each at most its manifest size, each hashed while written and
 * compared with the manifest before anything uses it; with a key, only a manifest it signed (listCopy,
 * and again from disk). The result is a StoredSnapshot like the store's.
 */
export const FETCH_DIR = 'copy-fetch';
const PREFIX = 'fetch-';

export interface FetchedSnapshot {
  snapshot: StoredSnapshot;
  copy: string;
  bytes: number;
  cleanup(): Promise<void>;
}

export function findCopy(config: Config, name: string, key: string): CopyConfig {
  const copies = config.snapshotStore?.copies ?? [];
  const copy = copies.find((c) => c.name === name);
  if (!copy)
    throw new UsageError(
      key,
      `${key} copy:${name}: no copy of that name in snapshotStore.copies of ${config.file} (known: ${copies.map((c) => c.name).join(', ') || 'none'})`,
    );
  return copy;
}

/** Fetch directories whose process is gone: a drill or restore killed while it downloaded. */
async function removeStale(root: string): Promise<void> {
  for (const name of await fs.readdir(root).catch(() => [] as string[])) {
    const pid = Number(/^fetch-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH')
        await fs.rm(path.join(root, name), { recursive: true, force: true });
    }
  }
}

/** Refuse a download that cannot fit (the sizes are the manifest's: a lying copy fails at its bound, not the disk). */
/** Room for `sizes` (each file rounded up to whole blocks, plus a block for the directory) or a one-line refusal. */
export async function ensureRoom(dir: string, sizes: readonly number[], what: string): Promise<void> {
  const st = await fs.statfs(dir);
  const free = st.bavail * st.bsize;
  const bytes = sizes.reduce((sum, n) => sum + Math.ceil(n / st.bsize) * st.bsize, st.bsize);
  if (free < bytes)
    throw new StoreError(
      dir,
      `${dir}: not enough free space to fetch ${what}: it needs ${formatBytes(bytes)}, ${formatBytes(free)} are free`,
    );
}

export async function download(
  repo: CopyRepository,
  id: string,
  name: string,
  size: number,
  target: string,
): Promise<string> {
  const hash = createHash('sha256');
  const out = await openExclusive(target);
  try {
    for await (const chunk of await repo.read(id, name, { size })) {
      hash.update(chunk as Buffer);
      await out.write(chunk as Buffer);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  return hash.digest('hex');
}

/**
 * Open the copy within `within` (promote: its sourceTimeoutSeconds, as for every other source) and
 * give what is left of it to the listing; the download after that is bounded per file (size, idle
 * time), not by it.
 */
export async function openWithin(
  config: Config,
  copy: CopyConfig,
  signal: AbortSignal,
  within?: Limit,
  prefix?: string,
): Promise<{ repo: CopyRepository; deadline: () => Limit | undefined }> {
  if (!within) return { repo: await openCopy(config, copy, signal, prefix), deadline: () => undefined };
  const started = Date.now();
  const connecting = AbortSignal.any([signal, AbortSignal.timeout(within.seconds * 1000)]);
  const left = (): Limit => ({
    seconds: Math.max(0.001, within.seconds - (Date.now() - started) / 1000),
    setting: `what connecting left of ${within.setting} = ${within.seconds} s`,
  });
  try {
    return { repo: await openCopy(config, copy, connecting, prefix), deadline: left };
  } catch (err) {
    if (signal.aborted || !connecting.aborted) throw err;
    const why = `not connected within ${within.seconds} s (${within.setting}): abandoned`;
    throw new TransferError(copy.name, `copy ${copy.name}: ${why}`, { cause: err });
  }
}

/** `listWithin`: connecting and listing the copy within this (promote's sourceTimeoutSeconds). */
export async function fetchFromCopy(
  config: Config,
  copy: CopyConfig,
  id: string | 'latest',
  keys: StoreKeys,
  signal: AbortSignal,
  o: { listWithin?: Limit } = {},
): Promise<FetchedSnapshot> {
  const root = path.join(config.stateDir, FETCH_DIR);
  await ensureDir(config.stateDir);
  await ensureDir(root);
  await removeStale(root);
  const { repo, deadline } = await openWithin(config, copy, signal, o.listWithin);
  const dir = await fs.mkdtemp(path.join(root, `${PREFIX}${process.pid}-`));
  const cleanup = () => fs.rm(dir, { recursive: true, force: true });
  try {
    await fs.chmod(dir, DIR_MODE);
    const listing = await listCopy(repo, keys, { signal, deadline: deadline() });
    const chosen =
      id === 'latest' ? listing.complete[listing.complete.length - 1] : listing.complete.find((s) => s.id === id);
    if (!chosen) {
      const bad = listing.broken.find((b) => b.id === id);
      if (bad) throw new ChainError(id, `copy ${copy.name}: snapshot ${id} is broken: ${bad.error}`);
      const known = listing.complete
        .slice(-3)
        .map((s) => s.id)
        .join(', ');
      // Nothing usable at all: say why the newest there is not (a wrong key, a forged manifest).
      const newestBad = id === 'latest' && !known ? listing.broken.at(-1) : undefined;
      const why = newestBad ? ` (${listing.broken.length} unusable; newest ${newestBad.id}: ${newestBad.error})` : '';
      const what = `copy ${repo.label} holds no complete snapshot${id === 'latest' ? '' : ` "${id}"`}`;
      throw new (id === 'latest' ? ChainError : UsageError)(copy.name, `${what}${known ? ` (newest: ${known})` : why}`);
    }
    const manifestText = JSON.stringify(chosen.manifest, null, 2) + '\n';
    await ensureRoom(
      root,
      [Buffer.byteLength(manifestText), ...chosen.manifest.files.map((f) => onDisk(f).size)],
      `snapshot ${chosen.id} of copy ${copy.name}`,
    );
    // The manifest as the copy has it, re-checked from disk like any manifest (names, sizes, sha256 form).
    await writeNewFile(path.join(dir, MANIFEST), (out) => out.writeFile(manifestText));
    const manifest = await readManifest(dir, keys);
    let bytes = 0;
    // The stored bytes, as the local store keeps them (decompressed and decrypted only when read).
    for (const f of manifest.files.map(onDisk)) {
      signal.throwIfAborted();
      const sha = await download(repo, chosen.id, f.name, f.size, path.join(dir, f.name));
      const { size } = await fs.stat(path.join(dir, f.name));
      if (size !== f.size || sha !== f.sha256.toLowerCase()) {
        throw new ChainError(
          f.name,
          `copy ${copy.name}: snapshot ${chosen.id}: ${f.name} does not match its manifest (size ${size}, expected ${f.size}; sha256 ${sha.slice(0, 12)}…, expected ${f.sha256.slice(0, 12)}…): not used`,
        );
      }
      bytes += size;
    }
    return { snapshot: { id: chosen.id, dir, manifest }, copy: copy.name, bytes, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    await repo.close().catch(() => undefined);
  }
}
