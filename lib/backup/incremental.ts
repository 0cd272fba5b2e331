import { restoreFrom } from '../moosefs/metadata.js';
import { archiveChain, type SegmentManifest } from '../store/segments.js';

/**
 * Incremental restore points (issue #26), pgBackRest's full + WAL: with the changelog archive healthy, a new
 * image adds nothing a restore cannot get from the newest stored image rolled forward through the archive,
 * so backup stores one only when that roll-forward grows past a bound (age or changes). Pure: no clock, no disk.
 */

/** How far a restore may have to roll an image forward (`snapshotStore.imageInterval` / `imageChanges`). */
export interface ImageBounds {
  intervalMs: number;
  changes: number;
}

/**
 * A schedule's jitter: the run a day after the image may start a few seconds "early"; without this it would
 * wait another hour, and verify's snapshot age limit (25 h by default) is one hour past the default interval.
 */
export const INTERVAL_SLACK_MS = 10 * 60_000;

/** The newest stored image of the source, as the decision needs it. */
export interface StoredImage {
  id: string;
  image: { version: number; empty: boolean; metaid?: string };
  reachesVersion: number;
  startedAt: string;
}

/** The source's image backup would otherwise store, and how far its changelogs reach. */
export interface SourceImage {
  version: number;
  empty: boolean;
  metaid?: string;
  /** Newest version the source's changelogs offer (their last line + 1). */
  reaches: number;
}

export interface ArchiveView {
  segments: readonly Pick<SegmentManifest, 'id' | 'first' | 'last' | 'lastTime' | 'gap'>[];
  /** Segments whose manifest is refused or unreadable: the archive is not trusted to cover anything. */
  broken: number;
  /** The archive could not be listed at all. */
  error?: string;
}

export interface Covered {
  /** The stored image restore points roll forward from. */
  snapshot: string;
  imageVersion: number;
  /** The version a restore through the archive reaches now (its last line + 1), and that line's unix time. */
  archiveReaches: number;
  archiveTime?: number;
  /** Versions a restore to the archive's end replays from the image. */
  rollForward: number;
}

export type ImageDecision = { store: true; why: string } | { store: false; covered: Covered };

export function decideImage(
  newest: StoredImage | undefined,
  source: SourceImage,
  archive: ArchiveView,
  bounds: ImageBounds,
  now: number,
): ImageDecision {
  const store = (why: string): ImageDecision => ({ store: true, why });
  if (!newest) return store('no image of this source stored yet');
  if (newest.image.empty || source.empty) return store('an empty (bootstrap) image');
  if ((newest.image.metaid ?? '') !== (source.metaid ?? ''))
    return store(`the source's image is of another filesystem (metaid ${source.metaid ?? '-'})`);
  const from = restoreFrom(newest.image);
  if (restoreFrom(source) < from)
    return store(`the source's image (version ${source.version}) is older than ${newest.id}'s`);
  if (archive.error) return store(`the archive cannot be read (${archive.error})`);
  if (archive.broken) return store(`${archive.broken} archive segment(s) unusable`);
  // The archive must take over where the stored snapshot's own changelogs end, without a hole to its end.
  // (A segment ending right before the snapshot's end connects too: the archive is then exactly as far.)
  const chain = archiveChain(archive.segments.filter((s) => s.last >= newest.reachesVersion - 1));
  if (chain.first === undefined || chain.last === undefined)
    return store('the archive holds nothing after the newest image');
  if (chain.first > newest.reachesVersion)
    return store(`the archive starts at ${chain.first}, after ${newest.id} ends (${newest.reachesVersion})`);
  const hole = chain.holes[0];
  if (hole) return store(`the archive has a gap (versions ${hole.from}..${hole.to})`);
  if (chain.overlaps.length) return store(`the archive's segments overlap (${chain.overlaps[0]})`);
  // Behind the source's new image, the archive (or its follower) is lagging or stopped: the image is the only
  // copy of those changes in the store.
  const reaches = chain.last + 1;
  if (reaches < restoreFrom(source))
    return store(`the archive reaches ${reaches}, behind the source's image (version ${source.version})`);
  const age = now - Date.parse(newest.startedAt);
  if (!(age < bounds.intervalMs - INTERVAL_SLACK_MS))
    return store(`${newest.id} is ${Math.round(age / 3_600_000)} h old (imageInterval)`);
  const rollForward = Math.max(source.reaches, reaches) - from;
  if (rollForward >= bounds.changes)
    return store(`${rollForward} changes since ${newest.id}'s image (imageChanges ${bounds.changes})`);
  return {
    store: false,
    covered: {
      snapshot: newest.id,
      imageVersion: newest.image.version,
      archiveReaches: reaches,
      ...(chain.lastTime !== undefined ? { archiveTime: chain.lastTime } : {}),
      rollForward,
    },
  };
}

export interface Recoverable {
  /** The image a restore to that moment starts from. */
  snapshot: string;
  /** The newest version a restore reaches (image + its changelogs + the archive up to its first hole). */
  version: number;
  /** Unix time of the archive's line that far, when the archive carries it past the snapshot. */
  time?: number;
  /** Whether the archive carries it past the snapshot's own changelogs. */
  throughArchive: boolean;
}

/** The store's newest recoverable moment: the newest snapshot rolled on through the archive (snapshot list, status). */
export function newestRecoverable(
  snapshots: readonly { id: string; manifest: { reachesVersion: number } }[],
  archive: Pick<ArchiveView, 'segments'>,
): Recoverable | undefined {
  const newest = [...snapshots].sort((a, b) => b.manifest.reachesVersion - a.manifest.reachesVersion)[0];
  if (!newest) return undefined;
  const own = { snapshot: newest.id, version: newest.manifest.reachesVersion, throughArchive: false };
  const chain = archiveChain(archive.segments.filter((s) => s.last >= own.version - 1));
  if (chain.first === undefined || chain.last === undefined || chain.first > own.version) return own;
  const hole = chain.holes[0];
  if (hole) {
    // Only as far as the hole; the time of that line is not known without reading segments.
    return { ...own, version: Math.max(own.version, hole.from), throughArchive: hole.from > own.version };
  }
  if (chain.last + 1 <= own.version) return own;
  return { ...own, version: chain.last + 1, time: chain.lastTime, throughArchive: true };
}
