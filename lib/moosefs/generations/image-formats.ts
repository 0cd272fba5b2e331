import type { ImageMagic } from './generation.js';

/** How an image of one magic is laid out: where its version (and metaid) sit, how a complete one ends. */
export interface ImageFormat {
  magic: ImageMagic;
  /** Bytes of header needed to read version and metaid. */
  headerBytes: number;
  version(head: Buffer): bigint;
  /** Hex metaid, or '' where the format has none. */
  metaid(head: Buffer): string;
  /** Whether images of this format carry a metaid at all. */
  carriesMetaid: boolean;
  /** Bytes at the end that say the image is complete, and whether they do. */
  endingBytes: number;
  endingOk(tail: Buffer): boolean;
  /** For messages: what a complete image ends with. */
  endingName: string;
}

export const EOF_MARKER = '[MFS EOF MARKER]';

/** The image 1.7 and later write (see MFSM_2_0 below). */
export const IMAGE_MAGIC: ImageMagic = 'MFSM 2.0';
/** The 8-byte bootstrap file of a brand-new master (an empty filesystem): no version, no metaid. */
export const EMPTY_IMAGE_MAGIC = 'MFSM NEW';

/**
 * `MFSM 1.5` (1.5.x, 1.6.x): maxnodeid u32, version u64, nextsessionid u32 (big-endian); no metaid.
 * The chunk section ends with an all-zero 16-byte record, which is also the end of the file.
 */
const MFSM_1_5: ImageFormat = {
  magic: 'MFSM 1.5',
  headerBytes: 24,
  version: (head) => head.readBigUInt64BE(12),
  metaid: () => '',
  carriesMetaid: false,
  endingBytes: 16,
  endingOk: (tail) => tail.length === 16 && tail.every((b) => b === 0),
  endingName: 'all-zero chunk record',
};

/** `MFSM 2.0` (1.7 and later): version u64, metaid u64; ends in `[MFS EOF MARKER]`. */
const MFSM_2_0: ImageFormat = {
  magic: 'MFSM 2.0',
  headerBytes: 24,
  version: (head) => head.readBigUInt64BE(8),
  metaid: (head) => head.readBigUInt64BE(16).toString(16).toUpperCase().padStart(16, '0'),
  carriesMetaid: true,
  endingBytes: EOF_MARKER.length,
  endingOk: (tail) => tail.toString('latin1') === EOF_MARKER,
  endingName: `"${EOF_MARKER}"`,
};

export const IMAGE_FORMATS: readonly ImageFormat[] = [MFSM_1_5, MFSM_2_0];

export function imageFormat(magic: string): ImageFormat | undefined {
  return IMAGE_FORMATS.find((f) => f.magic === magic);
}
