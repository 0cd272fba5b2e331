import type { Segment } from './changelog.js';

/**
 * Pure chain logic: which versions the changelogs cover, where the holes are, how far an image rolls
 * forward. Versions follow MooseFS: an image of version V needs changelog lines V, V+1, …; after
 * applying line L the master's metadata version (what `mfscli -SIM` shows) is L+1.
 */

/** A run of versions held by one file (a file with an inner hole gives several pieces). */
export interface ChangelogPiece extends Segment {
  file: string;
}

/** Missing versions, inclusive, as mfsmaster reports "entries from X to Y are missing". */
export interface Hole {
  from: number;
  to: number;
}

export function formatHole(h: Hole): string {
  return `${h.from}..${h.to}`;
}

/** Union of segments, sorted, with touching runs merged (duplicates across files are fine). */
export function coverage(pieces: readonly Segment[]): Segment[] {
  const sorted = [...pieces].sort((a, b) => a.first - b.first || a.last - b.last);
  const merged: Segment[] = [];
  for (const p of sorted) {
    const top = merged[merged.length - 1];
    if (top && p.first <= top.last + 1) top.last = Math.max(top.last, p.last);
    else merged.push({ first: p.first, last: p.last });
  }
  return merged;
}

/** Versions in [from, to] that no piece covers. */
export function holesBetween(from: number, to: number, pieces: readonly Segment[]): Hole[] {
  const holes: Hole[] = [];
  let next = from;
  for (const seg of coverage(pieces)) {
    if (seg.last < next) continue;
    if (seg.first > to) break;
    if (seg.first > next) holes.push({ from: next, to: Math.min(seg.first - 1, to) });
    next = Math.max(next, seg.last + 1);
    if (next > to) break;
  }
  if (next <= to) holes.push({ from: next, to });
  return holes;
}

export interface RollForward {
  imageVersion: number;
  /** Metadata version after replaying the gap-free run from the image (imageVersion if nothing applies). */
  reached: number;
  /** Newest metadata version any piece offers (lastLine + 1), whether reachable or not. */
  newest: number;
  /** Holes between the image and the newest line: mfsmaster -a refuses while there is one. */
  holes: Hole[];
  /** Files holding at least one line the roll-forward applies (image version .. reached-1). */
  filesUsed: string[];
}

/** How far `imageVersion` rolls forward with these changelogs, the way `mfsmaster -a` replays them. */
export function rollForward(imageVersion: number, pieces: readonly ChangelogPiece[]): RollForward {
  let reached = imageVersion;
  for (const seg of coverage(pieces)) {
    if (seg.last < reached) continue;
    if (seg.first > reached) break;
    reached = seg.last + 1;
  }
  const newest = pieces.reduce((max, p) => Math.max(max, p.last + 1), imageVersion);
  const holes = newest > reached ? holesBetween(reached, newest - 1, pieces) : [];
  const filesUsed = [...new Set(pieces.filter((p) => p.last >= imageVersion && p.first < reached).map((p) => p.file))];
  return { imageVersion, reached, newest, holes, filesUsed };
}

/** Files with any version in [fromVersion, toVersion): what a restore point at fromVersion needs. */
export function filesNeeded(fromVersion: number, toVersion: number, pieces: readonly ChangelogPiece[]): Set<string> {
  return new Set(pieces.filter((p) => p.last >= fromVersion && p.first < toVersion).map((p) => p.file));
}
