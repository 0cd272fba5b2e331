import path from 'node:path';
import { readSourceImageHeader, listDataPath, type DataPathListing } from '../moosefs/datapath.js';
import { ChainError } from '../core/errors.js';
import type { ImageHeader } from '../moosefs/metadata.js';
import type { FileSource, RemoteEntry } from '../transport/remote.js';

/**
 * What a master's or metalogger's DATA_PATH offers for a backup, read cheaply (headers and the
 * edges of changelogs, never whole files), and the pure rules that pick from it.
 */
export interface ImageCandidate {
  entry: RemoteEntry;
  path: string;
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

/** Changelog lines an image needs start here: its header version, or 1 for the empty `MFSM NEW`. */
export function startVersion(header: ImageHeader): number {
  return header.empty ? 1 : header.version;
}

/** A `.tmp` image is a download/dump in progress: used only when nothing else exists. */
function isTempImage(name: string): boolean {
  return name.endsWith('.tmp');
}

/** Name to store an image under: what mfsmaster -a looks for (a `.tmp` would be ignored). */
export function storedImageName(name: string): string {
  return name === 'metadata_ml.tmp' ? 'metadata_ml.mfs.back' : name;
}

/**
 * The image to back up: the valid one with the highest version. The newest file (by mtime) must be
 * valid: a damaged current image is a finding to report, not a reason to quietly back up an older one.
 */
export function chooseImage(images: readonly ImageCandidate[], where: string): { chosen: ImageCandidate & { header: ImageHeader }; notes: string[] } {
  const notes: string[] = [];
  const finished = images.filter((i) => !isTempImage(i.entry.name));
  const newest = [...finished].sort((a, b) => b.entry.mtimeMs - a.entry.mtimeMs)[0];
  if (newest?.error) throw new ChainError(newest.path, `${where}: newest metadata image ${newest.entry.name} rejected: ${newest.error}`);
  const valid = images
    .filter((i): i is ImageCandidate & { header: ImageHeader } => i.header !== undefined)
    .sort(
      (a, b) =>
        startVersion(b.header) - startVersion(a.header) ||
        Number(isTempImage(a.entry.name)) - Number(isTempImage(b.entry.name)) ||
        b.entry.mtimeMs - a.entry.mtimeMs,
    );
  const chosen = valid[0];
  if (!chosen) {
    const why = images.map((i) => `${i.entry.name}: ${i.error ?? 'unusable'}`).join('; ');
    throw new ChainError(where, `${where}: no usable metadata image${why ? ` (${why})` : ' (no metadata*.mfs* file)'}`);
  }
  for (const i of images) if (i.error && !isTempImage(i.entry.name)) notes.push(`ignored older damaged image ${i.entry.name}: ${i.error}`);
  return { chosen, notes };
}

/** Version of the first complete line in the first bytes of a changelog. */
export function firstVersionIn(head: Buffer): number | undefined {
  const nl = head.indexOf(0x0a);
  if (nl === -1) return undefined;
  const m = /^(\d+): /.exec(head.subarray(0, nl).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** Version of the last complete line in the last bytes of a changelog (`fromStart`: the buffer is the whole file). */
export function lastVersionIn(tail: Buffer, fromStart: boolean): number | undefined {
  const end = tail.lastIndexOf(0x0a);
  if (end === -1) return undefined;
  const prev = tail.lastIndexOf(0x0a, end - 1);
  if (prev === -1 && !fromStart) return undefined;
  const m = /^(\d+): /.exec(tail.subarray(prev + 1, end).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** Does an image starting at `start` need this changelog? Unknown edges: fetch it and decide on the copy. */
export function changelogNeeded(c: ChangelogCandidate, start: number): boolean {
  return c.entry.size > 0 && (c.last === undefined || c.last >= start);
}

const HEAD_BYTES = 4096;
const TAIL_BYTES = 65536;

export async function readChangelogEdges(source: FileSource, file: string, size: number, which: { head: boolean; tail: boolean }): Promise<{ first?: number; last?: number }> {
  if (size === 0) return {};
  const out: { first?: number; last?: number } = {};
  if (which.head) out.first = firstVersionIn(await source.readRange(file, 0, Math.min(size, HEAD_BYTES)));
  if (which.tail) {
    const start = Math.max(0, size - TAIL_BYTES);
    out.last = lastVersionIn(await source.readRange(file, start, size - start), start === 0);
  }
  return out;
}

/** List DATA_PATH, read every image's header (and ending) and every changelog's last version. */
export async function takeInventory(source: FileSource, dataPath: string): Promise<SourceInventory> {
  const listing = await listDataPath(source, dataPath);
  const images: ImageCandidate[] = [];
  for (const entry of listing.images) {
    const file = path.posix.join(dataPath, entry.name);
    try {
      images.push({ entry, path: file, header: await readSourceImageHeader(source, file, entry.size) });
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      images.push({ entry, path: file, error: err.message.replace(`${source.label}:${file}: `, '') });
    }
  }
  const changelogs: ChangelogCandidate[] = [];
  for (const entry of listing.changelogs) {
    const file = path.posix.join(dataPath, entry.name);
    changelogs.push({ entry, path: file, ...(await readChangelogEdges(source, file, entry.size, { head: false, tail: true })) });
  }
  return { images, changelogs, listing };
}
