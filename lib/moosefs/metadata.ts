import { promises as fs } from 'node:fs';
import { ChainError } from '../core/errors.js';
import { EMPTY_IMAGE_MAGIC, EOF_MARKER, IMAGE_FORMATS, IMAGE_MAGIC, imageFormat } from './generations/image-formats.js';
import { GENERATIONS } from './generations/index.js';

/** An image header of any generation (see generations/image-formats.ts for the layouts). */
export interface ImageHeader {
  /** `MFSM 1.5` (MooseFS 1.5/1.6), `MFSM 2.0` (1.7 and later), `MFSM NEW`. */
  magic: string;
  /** The next change to apply: changelog lines with version >= this roll the image forward. */
  version: number;
  /** Hex, as mfscli prints it; identical on every image and changelog of one filesystem. '' where the format has none (MFSM 1.5). */
  metaid: string;
  /** `MFSM NEW`: the 8-byte bootstrap file of a brand-new master (an empty filesystem). */
  empty: boolean;
}

export { EMPTY_IMAGE_MAGIC, EOF_MARKER, IMAGE_MAGIC };
/** Enough of the head of an image to read the header of any known format. */
export const HEADER_BYTES = Math.max(...IMAGE_FORMATS.map((f) => f.headerBytes));

/**
 * The one way output names an image's version: `version N`, or the bootstrap image `MFSM NEW` — what a
 * metalogger holds until its first image download (META_DOWNLOAD_FREQ hours after it starts) and what a
 * brand-new master starts from. It stands for version 1: the changelogs from line 1 on rebuild the metadata.
 */
export function describeImageVersion(image: { empty: boolean; version: number }, o: { short?: boolean } = {}): string {
  if (!image.empty) return o.short ? `v${image.version}` : `version ${image.version}`;
  if (o.short) return `${EMPTY_IMAGE_MAGIC} (bootstrap image)`;
  return (
    `${EMPTY_IMAGE_MAGIC} (the bootstrap image: no image downloaded or saved yet; changelogs from version 1 ` +
    'rebuild the metadata)'
  );
}

/**
 * The first changelog version that rolls this image forward: the header's version, or 1 for `MFSM NEW`
 * (version 0 in its header; line 1 of a new filesystem's history is its SETMETAID). Takes a header, a
 * manifest's image or any candidate that carries the two fields.
 */
export function restoreFrom(image: { empty: boolean; version: number }): number {
  return image.empty ? 1 : image.version;
}

/**
 * `metadata_ml.tmp` is a metalogger's download in progress (or its `MFSM NEW` placeholder before the first
 * download); `mfsmaster -a` ignores a `.tmp`, so as a restore point it is named as the metalogger's image.
 */
export function restoredImageName(name: string): string {
  return name === 'metadata_ml.tmp' ? 'metadata_ml.mfs.back' : name;
}

/** Parse the first bytes of an image; throws ChainError naming `file` for a magic no generation writes. */
export function parseImageHeader(head: Buffer, file: string): ImageHeader {
  const magic = head.subarray(0, 8).toString('latin1');
  if (magic === EMPTY_IMAGE_MAGIC) return { magic, version: 0, metaid: '', empty: true };
  const format = imageFormat(magic);
  if (!format) {
    const shown = /^[\x20-\x7e]{8}$/.test(magic) ? `"${magic}"` : `bytes ${head.subarray(0, 8).toString('hex')}`;
    const known = IMAGE_FORMATS.map((f) => `"${f.magic}"`).join(' or ');
    throw new ChainError(file, `${file}: not a MooseFS metadata image (header ${shown}, expected ${known})`);
  }
  if (head.length < format.headerBytes)
    throw new ChainError(file, `${file}: image header truncated (${head.length} of ${format.headerBytes} bytes)`);
  const version = format.version(head);
  if (version > BigInt(Number.MAX_SAFE_INTEGER))
    throw new ChainError(file, `${file}: implausible metadata version ${version}`);
  return { magic, version: Number(version), metaid: format.metaid(head), empty: false };
}

/** Throw unless `tail` (the last bytes of an image of `size` bytes) is the ending its format promises. */
export function checkImageEnding(header: ImageHeader, tail: Buffer, size: number, file: string): void {
  const format = imageFormat(header.magic);
  if (!format) return;
  if (size < format.headerBytes + format.endingBytes || !format.endingOk(tail)) {
    throw new ChainError(
      file,
      `${file}: metadata image has no ${format.endingName} ending (truncated or still being written)`,
    );
  }
}

/** Bytes at the end of an image of this header's format that `checkImageEnding` needs. */
export function endingBytes(header: ImageHeader): number {
  return imageFormat(header.magic)?.endingBytes ?? 0;
}

/** Read and check an image's header and its ending (a cut-off copy has none). */
export async function readImageHeader(file: string, options: { checkEnding?: boolean } = {}): Promise<ImageHeader> {
  let handle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    throw new ChainError(
      file,
      `${file}: cannot open metadata image (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    await handle.read(head, 0, head.length, 0);
    if (size < 8) throw new ChainError(file, `${file}: metadata image truncated (${size} bytes)`);
    const header = parseImageHeader(head, file);
    if (!header.empty && (options.checkEnding ?? true)) {
      const tail = Buffer.alloc(Math.min(endingBytes(header), size));
      await handle.read(tail, 0, tail.length, Math.max(0, size - tail.length));
      checkImageEnding(header, tail, size, file);
    }
    return header;
  } finally {
    await handle.close();
  }
}

/** Is this DATA_PATH name a metadata image MooseFS itself would consider (master or metalogger)? */
export function isImageName(name: string): boolean {
  return /^metadata(_ml)?\.mfs(\.back(\.\d+)?)?$/.test(name) || name === 'metadata_ml.tmp';
}

/**
 * Changelog files: a master's changelog.N.mfs, a metalogger's changelog_ml.N.mfs and
 * changelog_ml_back.N.mfs, and a 1.x chunkserver's changelog_csback.N.mfs (the only copy before 1.6.5).
 */
export function isChangelogName(name: string): boolean {
  return /^changelog(_ml|_ml_back|_csback)?\.\d+\.mfs$/.test(name);
}

/** A 1.x master's or metalogger's client sessions file (see Generation.sessionsFiles). */
export function isSessionsName(name: string): boolean {
  return GENERATIONS.some((g) => g.sessionsFiles.includes(name));
}

/** The N of changelog*.N.mfs (0 = the file being written now). */
export function changelogIndex(name: string): number | undefined {
  const m = /^changelog(?:_ml|_ml_back|_csback)?\.(\d+)\.mfs$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Changelog names in the order their changes were written: the highest N (rotated longest ago) first;
 * for one N, a metalogger's `_back` file (the tail it fetched when it connected) before its live one.
 */
export function oldestFirst(names: readonly string[]): string[] {
  const rank = (n: string) => (n.includes('_back.') ? 0 : 1);
  return [...names].sort(
    (a, b) => (changelogIndex(b) ?? 0) - (changelogIndex(a) ?? 0) || rank(a) - rank(b) || a.localeCompare(b),
  );
}
