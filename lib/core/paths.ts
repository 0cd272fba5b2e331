import path from 'node:path';

/**
 * Is `inner` the same path as `outer` or inside it? By name only: for paths from settings, never for a
 * path another user can change.
 */
export function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(path.resolve(outer), path.resolve(inner));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
