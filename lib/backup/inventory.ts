import { ChainError } from '../core/errors.js';
import type { ChangelogCandidate, ImageCandidate } from '../moosefs/inventory.js';
import { restoreFrom, type ImageHeader } from '../moosefs/metadata.js';

/**
 * The pure rules that pick what to back up from a DATA_PATH's inventory (lib/moosefs/inventory.ts reads it).
 */

/** A `.tmp` image is a download/dump in progress: used only when nothing else exists. */
function isTempImage(name: string): boolean {
  return name.endsWith('.tmp');
}

/**
 * The image to back up: the valid one with the highest version. The newest file (by mtime) must be
 * valid: a damaged current image is a finding to report, not a reason to quietly back up an older one.
 */
export function chooseImage(
  images: readonly ImageCandidate[],
  where: string,
): { chosen: ImageCandidate & { header: ImageHeader }; notes: string[] } {
  const notes: string[] = [];
  const finished = images.filter((i) => !isTempImage(i.entry.name));
  const newest = [...finished].sort((a, b) => b.entry.mtimeMs - a.entry.mtimeMs)[0];
  if (newest?.error)
    throw new ChainError(newest.path, `${where}: newest metadata image ${newest.entry.name} rejected: ${newest.error}`);
  const valid = images
    .filter((i): i is ImageCandidate & { header: ImageHeader } => i.header !== undefined)
    .sort(
      (a, b) =>
        restoreFrom(b.header) - restoreFrom(a.header) ||
        Number(isTempImage(a.entry.name)) - Number(isTempImage(b.entry.name)) ||
        b.entry.mtimeMs - a.entry.mtimeMs,
    );
  const chosen = valid[0];
  if (!chosen) {
    const why = images.map((i) => `${i.entry.name}: ${i.error ?? 'unusable'}`).join('; ');
    throw new ChainError(where, `${where}: no usable metadata image${why ? ` (${why})` : ' (no metadata*.mfs* file)'}`);
  }
  for (const i of images)
    if (i.error && !isTempImage(i.entry.name)) notes.push(`ignored older damaged image ${i.entry.name}: ${i.error}`);
  return { chosen, notes };
}

/** Does an image starting at `start` need this changelog? Unknown edges: fetch it and decide on the copy. */
export function changelogNeeded(c: ChangelogCandidate, start: number): boolean {
  return c.entry.size > 0 && (c.last === undefined || c.last >= start);
}
