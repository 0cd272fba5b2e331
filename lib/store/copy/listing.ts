import { ChainError, describeError, TransferError } from '../../core/errors.js';
import { shownName } from '../../core/names.js';
import { ListingBudget, type Limit } from '../../transport/listing-bounds.js';
import { MANIFEST, parseManifest, type Manifest } from '../manifest.js';
import type { StoreKeys } from '../sealed.js';
import type { CopyRepository, RemoteFile } from './repository.js';

/** A manifest is a few KiB; more than this from a copy is refused, never read on. */
export const MAX_MANIFEST_BYTES = 4 * 2 ** 20;

export interface RemoteSnapshot {
  id: string;
  manifest: Manifest;
  files: RemoteFile[];
}

export interface CopyListing {
  /** Snapshots with a readable manifest (so every data file was sent before it), oldest first. */
  complete: RemoteSnapshot[];
  /** Snapshot directories without a manifest: an upload that was interrupted (or a removal). */
  incomplete: string[];
  /** A manifest that is there but unusable (not JSON, another id, hostile names; with a key: unsigned or forged). */
  broken: { id: string; error: string }[];
  /** Entries that are not snapshot ids (shown, never touched). */
  skipped: string[];
}

/** A copy's manifest, checked like the store's (parseManifest): with a key, only one it signed is ever used. */
export async function readRemoteManifest(
  repo: CopyRepository,
  id: string,
  size: number,
  keys: StoreKeys,
): Promise<Manifest> {
  const parts: Buffer[] = [];
  for await (const chunk of await repo.read(id, MANIFEST, { size: Math.min(size, MAX_MANIFEST_BYTES) }))
    parts.push(chunk as Buffer);
  const where = `copy ${repo.name}: snapshots/${id}/${MANIFEST}`;
  const manifest = parseManifest(Buffer.concat(parts).toString('utf8'), where, keys);
  if (manifest.id !== id)
    throw new ChainError(where, `${where}: manifest says id ${shownName(manifest.id)}, not ${id}`);
  return manifest;
}

export interface CopyListingOptions {
  /** The whole listing within this, not LISTING_WINDOWS × timeoutSeconds (promote: sourceTimeoutSeconds). */
  deadline?: Limit;
  signal?: AbortSignal;
}

/** The budget of one listing of `repo` (transport/listing-bounds.ts): each answer within the copy's timeoutSeconds. */
export function copyListingBudget(repo: CopyRepository, o: CopyListingOptions = {}): ListingBudget {
  return new ListingBudget({ subject: repo.name, what: `copy ${repo.label}`, window: repo.window, ...o });
}

/** One snapshot's files on the copy, in a listing of its own. */
export async function listSnapshotFiles(repo: CopyRepository, id: string, signal?: AbortSignal): Promise<RemoteFile[]> {
  const budget = copyListingBudget(repo, { signal });
  try {
    return await repo.listFiles(id, budget);
  } finally {
    budget.end();
  }
}

/** Ids, each snapshot's files and manifests, all under one budget: a copy that never stops answering is refused. */
export async function listCopy(
  repo: CopyRepository,
  keys: StoreKeys,
  o: CopyListingOptions = {},
): Promise<CopyListing> {
  const budget = copyListingBudget(repo, o);
  try {
    const { ids, skipped } = await repo.listSnapshotIds(budget);
    const listing: CopyListing = { complete: [], incomplete: [], broken: [], skipped };
    for (const id of ids) {
      const files = await repo.listFiles(id, budget);
      const manifestFile = files.find((f) => f.name === MANIFEST);
      if (!manifestFile) {
        listing.incomplete.push(id);
        continue;
      }
      try {
        if (manifestFile.size > MAX_MANIFEST_BYTES) {
          throw new ChainError(
            `snapshots/${id}/${MANIFEST}`,
            `${MANIFEST} is ${manifestFile.size} bytes, more than a manifest can be`,
          );
        }
        budget.hold(`snapshots/${id}/${MANIFEST}`, manifestFile.size);
        listing.complete.push({ id, manifest: await readRemoteManifest(repo, id, manifestFile.size, keys), files });
      } catch (err) {
        if (err instanceof TransferError) throw err;
        listing.broken.push({ id, error: describeError(err) });
      }
    }
    return listing;
  } finally {
    budget.end();
  }
}
