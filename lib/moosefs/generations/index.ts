import type { Generation, GenerationName, ImageMagic } from './generation.js';
import { MFS_1_5 } from './mfs-1.5.js';
import { MFS_1_6, MFS_1_6_5 } from './mfs-1.6.js';
import { MFS_3_0 } from './mfs-3.0.js';
import { MFS_4 } from './mfs-4.js';

export type { Generation, GenerationName, ImageMagic } from './generation.js';

/** Oldest first. */
export const GENERATIONS: readonly Generation[] = [MFS_1_5, MFS_1_6, MFS_1_6_5, MFS_3_0, MFS_4];
export const GENERATION_NAMES = GENERATIONS.map((g) => g.name) as [GenerationName, ...GenerationName[]];

export function generationNamed(name: GenerationName): Generation {
  return GENERATIONS.find((g) => g.name === name)!;
}

/** The generation of a master that reports software version `x.y.z` (its own answer to CLTOMA_INFO). */
export function generationOfSoftware(version: string): Generation | undefined {
  // 1.4 and 1.5 masters do not send their version: the answer's size says only "1.5" (or "1.4").
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version);
  if (!m) return undefined;
  const [major, mid, minor] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (major === 1 && mid <= 5) return MFS_1_5;
  if (major === 1 && mid === 6) return minor < 5 ? MFS_1_6 : MFS_1_6_5;
  if (major <= 3) return MFS_3_0;
  return MFS_4;
}

/** Session files a restore of an image with this magic needs beside it (see Generation.sessionsFiles). */
export function sessionsFilesFor(magic: string): readonly string[] {
  return GENERATIONS.find((g) => g.imageMagic === magic)?.sessionsFiles ?? [];
}

/** Generations that write images of this magic (newest first: the likelier reader of an unknown one). */
export function generationsWriting(magic: ImageMagic): Generation[] {
  return GENERATIONS.filter((g) => g.imageMagic === magic).reverse();
}
