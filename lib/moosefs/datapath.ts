import path from 'node:path';
import { scanChangelogStream, type ChangelogScan } from './changelog.js';
import { ChainError } from '../core/errors.js';
import { changelogIndex, EOF_MARKER, HEADER_BYTES, isChangelogName, isImageName, parseImageHeader, type ImageHeader } from './metadata.js';
import type { FileSource, RemoteEntry } from '../transport/remote.js';

/** What a master's or metalogger's DATA_PATH holds, as MooseFS names it. */
export interface DataPathListing {
  dataPath: string;
  /** metadata.mfs*, metadata_ml.mfs*, metadata_ml.tmp — newest mtime first. */
  images: RemoteEntry[];
  /** changelog*.N.mfs, lowest N (newest) first. */
  changelogs: RemoteEntry[];
}

export async function listDataPath(source: FileSource, dataPath: string): Promise<DataPathListing> {
  const entries = (await source.list(dataPath)).filter((e) => e.isFile);
  return {
    dataPath,
    images: entries.filter((e) => isImageName(e.name)).sort((a, b) => b.mtimeMs - a.mtimeMs),
    changelogs: entries.filter((e) => isChangelogName(e.name)).sort((a, b) => (changelogIndex(a.name) ?? 0) - (changelogIndex(b.name) ?? 0)),
  };
}

/** Header of an image on a source, with the `[MFS EOF MARKER]` ending checked (not for MFSM NEW). */
export async function readSourceImageHeader(source: FileSource, file: string, size: number): Promise<ImageHeader> {
  const where = `${source.label}:${file}`;
  if (size < 8) throw new ChainError(where, `${where}: metadata image truncated (${size} bytes)`);
  const header = parseImageHeader(await source.readRange(file, 0, Math.min(size, HEADER_BYTES)), where);
  if (!header.empty) {
    const tail = await source.readRange(file, Math.max(0, size - EOF_MARKER.length), EOF_MARKER.length);
    if (size < HEADER_BYTES + EOF_MARKER.length || tail.toString('latin1') !== EOF_MARKER) {
      throw new ChainError(where, `${where}: metadata image has no "${EOF_MARKER}" ending (truncated or still being written)`);
    }
  }
  return header;
}

/** Scan a changelog where it lies (one streaming pass, nothing copied). */
export async function scanSourceChangelog(source: FileSource, file: string): Promise<ChangelogScan> {
  return scanChangelogStream(await source.readStream(file), `${source.label}:${path.basename(file)}`);
}
