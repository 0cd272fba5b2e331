import path from 'node:path';
import { scanChangelogStream, type ChangelogScan } from './changelog.js';
import { readChangelogEdges } from './changelog-edges.js';
import type { ChangelogScanPool } from './changelog-pool.js';
import { ChainError } from '../core/errors.js';
import { sessionsFilesFor } from './generations/index.js';
import {
  changelogIndex,
  checkImageEnding,
  endingBytes,
  HEADER_BYTES,
  isChangelogName,
  isImageName,
  isSessionsName,
  parseImageHeader,
  type ImageHeader,
} from './metadata.js';
import type { FileSource, RemoteEntry } from '../transport/remote.js';
import { CHANGELOG_GROWTH, type ReadBound } from '../transport/bounded.js';

/** What a master's or metalogger's DATA_PATH holds, as MooseFS names it. */
export interface DataPathListing {
  dataPath: string;
  /** metadata.mfs*, metadata_ml.mfs*, metadata_ml.tmp — newest mtime first. */
  images: RemoteEntry[];
  /** changelog*.N.mfs, lowest N (newest) first. */
  changelogs: RemoteEntry[];
  /** sessions.mfs, sessions_ml.mfs (MooseFS 1.x), in that order. */
  sessions: RemoteEntry[];
}

/** What a restored 1.x master reads its client sessions from. */
export const RESTORED_SESSIONS = 'sessions.mfs';

/** The sessions file a restore of an image with this magic needs from this DATA_PATH, if any (1.x only). */
export function sessionsFile(listing: DataPathListing, magic: string): RemoteEntry | undefined {
  const wanted = sessionsFilesFor(magic);
  return wanted.map((name) => listing.sessions.find((e) => e.name === name)).find((e) => e !== undefined);
}

export async function listDataPath(source: FileSource, dataPath: string): Promise<DataPathListing> {
  const entries = (await source.list(dataPath)).filter((e) => e.isFile);
  return {
    dataPath,
    images: entries.filter((e) => isImageName(e.name)).sort((a, b) => b.mtimeMs - a.mtimeMs),
    changelogs: entries
      .filter((e) => isChangelogName(e.name))
      .sort((a, b) => (changelogIndex(a.name) ?? 0) - (changelogIndex(b.name) ?? 0)),
    sessions: entries.filter((e) => isSessionsName(e.name)).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** Header of an image on a source, with the `[MFS EOF MARKER]` ending checked (not for MFSM NEW). */
export async function readSourceImageHeader(source: FileSource, file: string, size: number): Promise<ImageHeader> {
  const where = `${source.label}:${file}`;
  if (size < 8) throw new ChainError(where, `${where}: metadata image truncated (${size} bytes)`);
  const header = parseImageHeader(await source.readRange(file, 0, Math.min(size, HEADER_BYTES)), where);
  if (!header.empty) {
    const length = Math.min(endingBytes(header), size);
    checkImageEnding(header, await source.readRange(file, size - length, length), size, where);
  }
  return header;
}

/**
 * How much of a listed changelog may be read: its listed size, plus CHANGELOG_GROWTH for the live one
 * (N = 0, which MooseFS appends to) only. A rotated changelog never grows: more bytes than listed
 * mean a hostile server or a replaced file.
 */
export function changelogBound(name: string, size: number): ReadBound {
  return { size, growth: changelogIndex(name) === 0 ? CHANGELOG_GROWTH : 0 };
}

/**
 * Scan a changelog where it lies (one streaming pass, nothing copied), reading at most its listed
 * `size` plus the growth a live changelog is allowed.
 */
export async function scanSourceChangelog(
  source: FileSource,
  file: string,
  size: number,
  /** Scan in a worker thread when the source is on this machine's disk (changelog-pool.ts). */
  pool?: ChangelogScanPool,
): Promise<ChangelogScan> {
  const bound = changelogBound(path.basename(file), size);
  const label = `${source.label}:${path.basename(file)}`;
  if (pool && source.openLocal) return pool.scan(source, file, bound, label);
  return scanChangelogStream(await source.readStream(file, bound), label);
}

/**
 * A master's metadata version as its DATA_PATH shows it: the last whole line of changelog.0.mfs plus one
 * (1.x masters flush every line), else the version of its newest image. For masters that do not report
 * their version over the network (before 2.0).
 */
export async function versionInDataPath(source: FileSource, dataPath: string): Promise<number | undefined> {
  const listing = await listDataPath(source, dataPath);
  const current = listing.changelogs.find((e) => e.name === 'changelog.0.mfs');
  if (current && current.size > 0) {
    const { last } = await readChangelogEdges(source, path.posix.join(dataPath, current.name), current.size, {
      head: false,
      tail: true,
    });
    if (last) return last.version + 1;
  }
  const image = listing.images.find((e) => e.name === 'metadata.mfs.back');
  if (!image) return undefined;
  return (await readSourceImageHeader(source, path.posix.join(dataPath, image.name), image.size)).version;
}
