import path from 'node:path';
import { ChainError } from '../core/errors.js';
import type { FileSource, RemoteEntry } from '../transport/remote.js';
import { readChangelogEdges } from './changelog-edges.js';
import { listDataPath, readSourceImageHeader, type DataPathListing } from './datapath.js';
import type { ImageHeader } from './metadata.js';

/**
 * What a master's or metalogger's DATA_PATH offers, read cheaply (headers and the edges of changelogs,
 * never whole files): the one model of a candidate image and changelog. Who chooses among them (backup,
 * a drill's or restore's placing, promote's plan) keeps its own rules and, where it needs more, its own
 * clearly named type built from these.
 */
export interface ImageCandidate {
  entry: RemoteEntry;
  /** Full path on the source. */
  path: string;
  /** Unset when the header or ending is unusable (`error` says why). */
  header?: ImageHeader;
  error?: string;
}

export interface ChangelogCandidate {
  entry: RemoteEntry;
  path: string;
  /** Versions of the first and last complete line, when the edges could be read. */
  first?: number;
  last?: number;
}

export interface SourceInventory {
  images: ImageCandidate[];
  changelogs: ChangelogCandidate[];
  /** The DATA_PATH's listing (for the files beside image and changelogs, e.g. a 1.x sessions.mfs). */
  listing: DataPathListing;
}

/**
 * An image's header (and ending) as a candidate. A ChainError (garbage, cut, unknown format) becomes its
 * `error`, without the `source:file: ` prefix; anything else (the source went away) is thrown.
 */
export async function readImageCandidate(source: FileSource, dir: string, entry: RemoteEntry): Promise<ImageCandidate> {
  const file = path.posix.join(dir, entry.name);
  try {
    return { entry, path: file, header: await readSourceImageHeader(source, file, entry.size) };
  } catch (err) {
    if (!(err instanceof ChainError)) throw err;
    return { entry, path: file, error: err.message.replace(`${source.label}:${file}: `, '') };
  }
}

/** List DATA_PATH, read every image's header (and ending) and every changelog's edges (`edges`: which). */
export async function takeInventory(
  source: FileSource,
  dataPath: string,
  edges: { head: boolean; tail: boolean } = { head: false, tail: true },
): Promise<SourceInventory> {
  const listing = await listDataPath(source, dataPath);
  const images: ImageCandidate[] = [];
  for (const entry of listing.images) images.push(await readImageCandidate(source, dataPath, entry));
  const changelogs: ChangelogCandidate[] = [];
  for (const entry of listing.changelogs) {
    const file = path.posix.join(dataPath, entry.name);
    const { first, last } = await readChangelogEdges(source, file, entry.size, edges);
    changelogs.push({ entry, path: file, first: first?.version, last: last?.version });
  }
  return { images, changelogs, listing };
}
