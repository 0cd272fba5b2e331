import type { Generation, GenerationName, ImageMagic, ListenKeys } from './generation.js';
import { EMPTY_IMAGE_MAGIC } from './image-formats.js';
import { MFS_1_5 } from './mfs-1.5.js';
import { MFS_1_6, MFS_1_6_5 } from './mfs-1.6.js';
import { MFS_3_0 } from './mfs-3.0.js';
import { MFS_4 } from './mfs-4.js';

export type { Generation, GenerationName, ImageMagic, ListenKeys } from './generation.js';

/** Oldest first. */
export const GENERATIONS: readonly Generation[] = [MFS_1_5, MFS_1_6, MFS_1_6_5, MFS_3_0, MFS_4];
export const GENERATION_NAMES = GENERATIONS.map((g) => g.name) as [GenerationName, ...GenerationName[]];

export function generationNamed(name: GenerationName): Generation {
  return GENERATIONS.find((g) => g.name === name)!;
}

/** The MooseFS whose mfsmaster runs here unless told otherwise (Debian's 3.0). */
export const DEFAULT_GENERATION: Generation = MFS_3_0;

/** The generation `moosefs.generation` pins, or undefined for `auto` (asked of the master, the image). */
export function pinnedGeneration(setting: GenerationName | 'auto' | undefined): Generation | undefined {
  return setting === undefined || setting === 'auto' ? undefined : generationNamed(setting);
}

export type ListenRole = keyof ListenKeys;

/**
 * The cfg keys that may set a master's listen port for `role` (or every role), whatever its generation:
 * newest first, so the first one set wins the way a newer master reads them (1.6.5 and later still read
 * 1.x's MATOCU_LISTEN_PORT when MATOCL_LISTEN_PORT is absent).
 */
export function listenPortKeys(role?: ListenRole): string[] {
  const roles: ListenRole[] = role ? [role] : ['ml', 'cs', 'cl'];
  const keys = [...GENERATIONS].reverse().flatMap((g) => roles.flatMap((r) => g.listenKeys[r]?.port ?? []));
  return [...new Set(keys)];
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

/**
 * Generations that may restore an image with this magic, newest first: its writers; for the bootstrap
 * image (`MFSM NEW`, no version of its own) every generation. An image whose header cannot be read
 * (`magic` undefined) is taken as the newest format, so the installed mfsmaster gets to say its own word.
 */
export function generationsReading(magic: string | undefined): Generation[] {
  if (magic === EMPTY_IMAGE_MAGIC) return [...GENERATIONS].reverse();
  return generationsWriting((magic ?? GENERATIONS[GENERATIONS.length - 1]!.imageMagic) as ImageMagic);
}
