import type { Readable } from 'node:stream';
import { plainNameProblem, shownName } from '../../core/names.js';
import { ID_PATTERN } from '../manifest.js';
import type { ReadBound } from '../../transport/bounded.js';
import type { Limit, ListingBudget } from '../../transport/listing-bounds.js';

/**
 * An off-site copy of the snapshot store: the same layout (`snapshots/<id>/<file>`, manifest.json
 * written last) on an SFTP server or in an S3 bucket. The files are opaque bytes named by the
 * manifest (name, size, sha256). Every name a repository returns has passed `plainNameProblem`;
 * every read is bounded in bytes and idle time.
 */
export interface RemoteFile {
  name: string;
  size: number;
}

export interface CopyRepository {
  readonly name: string;
  /** `offsite (s3 http://127.0.0.1:8080 bucket/prefix)`: what and where, never a secret. */
  readonly label: string;
  /** Each remote call gives up after this (the copy's timeoutSeconds, and its config key for messages). */
  readonly window: Limit;
  /**
   * Snapshot ids present (complete or not); `skipped`: entries that are not snapshot ids. Listings
   * count against `budget` as the answers arrive (listCopy, copyListingBudget).
   */
  listSnapshotIds(budget: ListingBudget): Promise<{ ids: string[]; skipped: string[] }>;
  listFiles(id: string, budget: ListingBudget): Promise<RemoteFile[]>;
  /**
   * Is `name` there with this size and sha256, without reading it? SFTP: a file at its final name
   * was read back and matched before it was renamed there, so size is the check; S3: the object's
   * recorded sha256 (x-amz-meta-sha256, set in the same PUT that Content-MD5 protects) and length.
   */
  hasFile(id: string, name: string, expect: { size: number; sha256: string }, listed?: RemoteFile): Promise<boolean>;
  /** Upload a local file so it appears under `name` complete or not at all. */
  put(id: string, name: string, localFile: string, expect: { size: number; sha256: string }): Promise<void>;
  read(id: string, name: string, bound: ReadBound): Promise<Readable>;
  remove(id: string, name: string): Promise<void>;
  /** After its files are gone: the snapshot's directory (SFTP; nothing for S3). */
  removeSnapshotDir(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Temp names an SFTP upload writes before the rename; never a manifest name, never listed as a file. */
export const PART_SUFFIX = '.mfs-jobs-part';

/**
 * Why an id or a file name handed to a repository must not become a path or a key (a snapshot id, a plain
 * file name), checked where it does: a name from a tampered manifest never leaves `<area>/<id>/`.
 */
export function copyNameProblem(id: string, name?: string): string | undefined {
  if (!ID_PATTERN.test(id)) return `${shownName(id)} is not a snapshot id`;
  const why = name === undefined ? undefined : plainNameProblem(name);
  return why && `file name ${shownName(name)}: ${why}`;
}
