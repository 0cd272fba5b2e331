import { promises as fs } from 'node:fs';
import { ChainError } from '../core/errors.js';

/** `MFSM 2.0` image header (big-endian): magic, metadata version (u64), metaid (u64). */
export interface ImageHeader {
  magic: string;
  /** The next change to apply: changelog lines with version >= this roll the image forward. */
  version: number;
  /** Hex, as mfscli prints it; identical on every image and changelog of one filesystem. */
  metaid: string;
  /** `MFSM NEW`: the 8-byte bootstrap file of a brand-new master (an empty filesystem). */
  empty: boolean;
}

export const IMAGE_MAGIC = 'MFSM 2.0';
export const EMPTY_IMAGE_MAGIC = 'MFSM NEW';
export const EOF_MARKER = '[MFS EOF MARKER]';
export const HEADER_BYTES = 24;

/** Parse the first bytes of an image; throws ChainError naming `file` for anything but MFSM 2.0 / NEW. */
export function parseImageHeader(head: Buffer, file: string): ImageHeader {
  const magic = head.subarray(0, 8).toString('latin1');
  if (magic === EMPTY_IMAGE_MAGIC) return { magic, version: 0, metaid: '', empty: true };
  if (magic !== IMAGE_MAGIC) {
    const shown = /^[\x20-\x7e]{8}$/.test(magic) ? `"${magic}"` : `bytes ${head.subarray(0, 8).toString('hex')}`;
    throw new ChainError(file, `${file}: not a MooseFS metadata image (header ${shown}, expected "${IMAGE_MAGIC}")`);
  }
  if (head.length < HEADER_BYTES) throw new ChainError(file, `${file}: image header truncated (${head.length} of ${HEADER_BYTES} bytes)`);
  const version = head.readBigUInt64BE(8);
  if (version > BigInt(Number.MAX_SAFE_INTEGER)) throw new ChainError(file, `${file}: implausible metadata version ${version}`);
  return { magic, version: Number(version), metaid: head.readBigUInt64BE(16).toString(16).toUpperCase().padStart(16, '0'), empty: false };
}

/** Read and check an image's header and its `[MFS EOF MARKER]` ending (a cut-off copy has none). */
export async function readImageHeader(file: string, options: { checkEnding?: boolean } = {}): Promise<ImageHeader> {
  let handle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    throw new ChainError(file, `${file}: cannot open metadata image (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    await handle.read(head, 0, head.length, 0);
    if (size < 8) throw new ChainError(file, `${file}: metadata image truncated (${size} bytes)`);
    const header = parseImageHeader(head, file);
    if (!header.empty && (options.checkEnding ?? true)) {
      const tail = Buffer.alloc(EOF_MARKER.length);
      await handle.read(tail, 0, tail.length, Math.max(0, size - tail.length));
      if (size < HEADER_BYTES + tail.length || tail.toString('latin1') !== EOF_MARKER) {
        throw new ChainError(file, `${file}: metadata image has no "${EOF_MARKER}" ending (truncated or still being written)`);
      }
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

/** Changelog files of a master or metalogger: changelog.N.mfs, changelog_ml.N.mfs, changelog_ml_back.N.mfs. */
export function isChangelogName(name: string): boolean {
  return /^changelog(_ml|_ml_back)?\.\d+\.mfs$/.test(name);
}

/** The N of changelog*.N.mfs (0 = the file being written now). */
export function changelogIndex(name: string): number | undefined {
  const m = /^changelog(?:_ml|_ml_back)?\.(\d+)\.mfs$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
