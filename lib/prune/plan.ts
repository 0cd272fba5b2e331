import { ChainError } from '../core/errors.js';
import { coverage, holesBetween, formatHole, type ChangelogPiece, type Hole } from '../moosefs/chain.js';
import type { Segment } from '../moosefs/changelog.js';
import { VersionCover } from '../moosefs/version-cover.js';

/**
 * What prune may delete, as a pure function of what a target holds.
 *
 * A restore point is an image; it needs every changelog version from its own version up to the
 * newest version (that is how `mfsmaster -a` rolls it forward). Retention rules decide which restore
 * points are retained; a changelog is needed while it holds a version some retained restore point
 * needs and no other kept file holds. Files are grouped in units (a snapshot directory in the store,
 * a single file in a DATA_PATH) that are deleted together or not at all.
 */

export interface PlanImage {
  /** Unique within the target: the file name in a DATA_PATH, `<snapshot>/<file>` in the store. */
  name: string;
  /** Files of one unit are deleted together or not at all. */
  unit: string;
  /** The next change to apply (header version; an empty `MFSM NEW` image counts as 1, as mfsmaster loads it). */
  version: number;
  size: number;
  /** When the restore point was taken (image mtime, or the snapshot's finish time). */
  mtimeMs: number;
  /** False in a DATA_PATH: MooseFS rotates its own images (BACK_META_KEEP_PREVIOUS). */
  deletable: boolean;
  /** Retained whatever the rules say (e.g. the snapshot `latest` points to). */
  pinned?: boolean;
}

export interface PlanChangelog {
  name: string;
  unit: string;
  /** Runs of versions from the streaming scanner (several = a hole inside the file). */
  segments: Segment[];
  size: number;
  mtimeMs: number;
  /** changelog.0.mfs / changelog_ml.0.mfs: MooseFS appends to it right now. */
  current: boolean;
  /** Held open by a running process (seen in /proc for local targets). */
  open: boolean;
  /** A rotated changelog (changelog.N.mfs, changelog_ml.N.mfs, N ≥ 1): counts for keepRotated. */
  rotated: boolean;
}

/** Anything else inside a unit (a snapshot's manifest.json): it goes when its unit goes. */
export interface PlanOtherFile {
  name: string;
  unit: string;
  size: number;
  mtimeMs: number;
}

export interface PruneRules {
  /** Restore points older than this are no longer retained (the newest keepRestorePoints always are). */
  maxAgeMs?: number;
  /** Release the oldest restore points until the kept files prune manages (not a DATA_PATH's images) fit in this many bytes. */
  maxTotalBytes?: number;
  /** The newest K restore points are retained whatever maxAge / maxTotalBytes say (at least 1). */
  keepRestorePoints: number;
  /** The K newest rotated changelogs are kept even when no retained restore point needs them. */
  keepRotated: number;
  /** Files modified more recently than this are never deleted (a remote daemon may be rotating them). */
  minAgeMs: number;
}

export interface PlanInput {
  images: PlanImage[];
  changelogs: PlanChangelog[];
  others?: PlanOtherFile[];
  rules: PruneRules;
  now: number;
}

export type FileKind = 'image' | 'changelog' | 'other';

export interface PlanEntry {
  name: string;
  unit: string;
  kind: FileKind;
  size: number;
  /** `1200..1389` (changelog; `a..b,c..d` with inner holes), `v1200` (image), `-` (no versions). */
  versions: string;
  reason: string;
}

export interface RestorePointVerdict {
  name: string;
  version: number;
  retained: boolean;
  reason: string;
  /** Metadata version this image rolls forward to with the files the plan keeps. */
  reaches: number;
}

export interface PrunePlan {
  /** Newest metadata version the target offers (last changelog line + 1, or the newest image). */
  newest: number;
  restorePoints: RestorePointVerdict[];
  delete: PlanEntry[];
  keep: PlanEntry[];
  bytesToFree: number;
  bytesKept: number;
  /** Holes that already exist between the oldest retained restore point and the newest version. */
  holes: Hole[];
  warnings: string[];
}

interface FileRef {
  name: string;
  unit: string;
  kind: FileKind;
  size: number;
  mtimeMs: number;
  versions: string;
  segments: Segment[];
  /** Highest version the file concerns (image version, last changelog line; -1 for none). */
  top: number;
  /** Prune may delete files of this kind here (false for a DATA_PATH's images). */
  managed: boolean;
}

/** A changelog piece that knows its unit. */
interface UnitPiece extends ChangelogPiece {
  unit: string;
}

export function formatVersions(segments: readonly Segment[]): string {
  return segments.length
    ? segments.map((s) => (s.first === s.last ? `${s.first}` : `${s.first}..${s.last}`)).join(',')
    : '-';
}

function formatAge(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.floor(hours / 24)} d`;
}

/** Newest first: by version, then by time. */
function byNewest(a: PlanImage, b: PlanImage): number {
  return b.version - a.version || b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name);
}

function checkInput(input: PlanInput): void {
  const names = new Set<string>();
  for (const f of [...input.images, ...input.changelogs, ...(input.others ?? [])]) {
    if (names.has(f.name)) throw new ChainError(f.name, `prune plan: file ${f.name} listed twice`);
    names.add(f.name);
  }
}

/** Which restore points are retained, and why (or why not). */
function retainRestorePoints(
  images: readonly PlanImage[],
  rules: PruneRules,
  now: number,
  released: ReadonlyMap<string, string>,
): Map<string, { retained: boolean; reason: string }> {
  const keepNewest = Math.max(1, rules.keepRestorePoints);
  const out = new Map<string, { retained: boolean; reason: string }>();
  [...images].sort(byNewest).forEach((img, i) => {
    const age = now - img.mtimeMs;
    if (i < keepNewest)
      out.set(img.name, {
        retained: true,
        reason: i === 0 ? 'newest restore point' : `one of the ${keepNewest} newest restore points (keepRestorePoints)`,
      });
    else if (img.pinned) out.set(img.name, { retained: true, reason: 'pinned (target of latest, or snapshot pin)' });
    else if (rules.maxAgeMs !== undefined && age > rules.maxAgeMs)
      out.set(img.name, { retained: false, reason: `older than maxAge (${formatAge(age)})` });
    else if (released.has(img.name)) out.set(img.name, { retained: false, reason: released.get(img.name)! });
    else out.set(img.name, { retained: true, reason: 'within retention rules' });
  });
  return out;
}

function intersect(a: Segment, b: Segment): Segment | undefined {
  const first = Math.max(a.first, b.first);
  const last = Math.min(a.last, b.last);
  return first <= last ? { first, last } : undefined;
}

/** Safety keeps that no rule overrides, per file. */
function safetyKeeps(input: PlanInput): Map<string, string> {
  const { rules, now } = input;
  const keep = new Map<string, string>();
  for (const c of input.changelogs) {
    if (c.current) keep.set(c.name, 'current changelog (MooseFS appends to it)');
    else if (c.open) keep.set(c.name, 'held open by a running process');
  }
  const rotated = input.changelogs.filter((c) => c.rotated && !c.current && c.segments.length > 0);
  rotated.sort((a, b) => Math.max(...b.segments.map((s) => s.last)) - Math.max(...a.segments.map((s) => s.last)));
  for (const c of rotated.slice(0, rules.keepRotated))
    if (!keep.has(c.name)) keep.set(c.name, `one of the ${rules.keepRotated} newest rotated changelogs (keepRotated)`);
  for (const img of input.images)
    if (!img.deletable) keep.set(img.name, 'image in a DATA_PATH (MooseFS rotates its own images)');
  for (const f of [...input.images, ...input.changelogs, ...(input.others ?? [])]) {
    const age = now - f.mtimeMs;
    if (!keep.has(f.name) && age < rules.minAgeMs)
      keep.set(f.name, `modified ${formatAge(Math.max(0, age))} ago (minAge)`);
  }
  return keep;
}

interface Decision {
  deletedUnits: Set<string>;
  unitReasons: Map<string, string>;
  keptPieces: UnitPiece[];
  /** Bytes kept that prune could ever delete (a DATA_PATH's images are MooseFS's): what maxTotalBytes caps. */
  managedBytesKept: number;
}

/** Given the retained restore points, delete every unit whose versions the rest still hold. */
function decideUnits(
  files: readonly FileRef[],
  pieces: readonly UnitPiece[],
  retained: readonly PlanImage[],
  newest: number,
  safety: ReadonlyMap<string, string>,
): Decision {
  const unitReasons = new Map<string, string>();
  for (const img of retained)
    if (!unitReasons.has(img.unit)) unitReasons.set(img.unit, `holds retained restore point ${img.name}`);
  for (const f of files)
    if (safety.has(f.name) && !unitReasons.has(f.unit))
      unitReasons.set(f.unit, `holds ${f.name}: ${safety.get(f.name)}`);

  const oldest = retained.reduce((min, img) => Math.min(min, img.version), Infinity);
  const required =
    oldest < newest ? coverage(pieces).flatMap((s) => intersect(s, { first: oldest, last: newest - 1 }) ?? []) : [];
  const needers = [...retained].sort((a, b) => b.version - a.version);
  const whoNeeds = (v: number) => needers.find((img) => img.version <= v);

  // Oldest units first: where versions are duplicated, the newer copy is the one kept.
  const unitTop = new Map<string, number>();
  for (const f of files) unitTop.set(f.unit, Math.max(unitTop.get(f.unit) ?? -1, f.top));
  const candidates = [...unitTop.keys()]
    .filter((u) => !unitReasons.has(u))
    .sort((a, b) => unitTop.get(a)! - unitTop.get(b)! || a.localeCompare(b));

  const byUnit = new Map<string, UnitPiece[]>();
  for (const p of pieces) {
    const list = byUnit.get(p.unit);
    if (list) list.push(p);
    else byUnit.set(p.unit, [p]);
  }
  const cover = new VersionCover([...pieces, ...required]);
  for (const p of pieces) cover.add(p, 1);
  const deletedUnits = new Set<string>();
  for (const unit of candidates) {
    const own = byUnit.get(unit) ?? [];
    for (const p of own) cover.add(p, -1);
    const lost = coverage(
      own
        .flatMap((p) => required.flatMap((r) => intersect(p, r) ?? []))
        .flatMap((s) => cover.uncovered(s))
        .map((h) => ({ first: h.from, last: h.to })),
    );
    if (lost.length === 0) {
      deletedUnits.add(unit);
      continue;
    }
    for (const p of own) cover.add(p, 1);
    const needer = whoNeeds(lost[0]!.first);
    unitReasons.set(
      unit,
      `needed: only copy of versions ${lost.map((l) => formatHole({ from: l.first, to: l.last })).join(',')}${needer ? `, which restore point ${needer.name} (v${needer.version}) needs to reach ${newest}` : ''}`,
    );
  }
  const managedBytesKept = files
    .filter((f) => !deletedUnits.has(f.unit) && f.managed)
    .reduce((sum, f) => sum + f.size, 0);
  return { deletedUnits, unitReasons, keptPieces: pieces.filter((p) => !deletedUnits.has(p.unit)), managedBytesKept };
}

/** The exact plan for one target: what goes, what stays and why, and how far each restore point reaches. */
export function planPrune(input: PlanInput): PrunePlan {
  checkInput(input);
  const { images, changelogs, rules, now } = input;
  const others = input.others ?? [];
  const pieces: UnitPiece[] = changelogs.flatMap((c) =>
    c.segments.map((s) => ({ file: c.name, unit: c.unit, first: s.first, last: s.last })),
  );
  const newest = Math.max(0, ...images.map((i) => i.version), ...pieces.map((p) => p.last + 1));
  const files: FileRef[] = [
    ...images.map((i) => ({
      name: i.name,
      unit: i.unit,
      kind: 'image' as const,
      size: i.size,
      mtimeMs: i.mtimeMs,
      versions: `v${i.version}`,
      segments: [],
      top: i.version,
      managed: i.deletable,
    })),
    ...changelogs.map((c) => ({
      name: c.name,
      unit: c.unit,
      kind: 'changelog' as const,
      size: c.size,
      mtimeMs: c.mtimeMs,
      versions: formatVersions(c.segments),
      segments: c.segments,
      top: Math.max(-1, ...c.segments.map((x) => x.last)),
      managed: true,
    })),
    ...others.map((o) => ({
      name: o.name,
      unit: o.unit,
      kind: 'other' as const,
      size: o.size,
      mtimeMs: o.mtimeMs,
      versions: '-',
      segments: [],
      top: -1,
      managed: true,
    })),
  ];
  const safety = safetyKeeps(input);
  const warnings: string[] = [];

  // Release restore points, oldest first, until what prune manages fits maxTotalBytes (fewest releases
  // that fit, by bisection: a plan is safe whichever count is chosen), or release all that may go.
  const decide = (released: ReadonlyMap<string, string>) => {
    const verdicts = retainRestorePoints(images, rules, now, released);
    return {
      verdicts,
      decision: decideUnits(
        files,
        pieces,
        images.filter((i) => verdicts.get(i.name)!.retained),
        newest,
        safety,
      ),
    };
  };
  let { verdicts, decision } = decide(new Map());
  const cap = rules.maxTotalBytes;
  if (cap !== undefined && images.length > 0 && decision.managedBytesKept > cap) {
    const releasable = [...images]
      .sort(byNewest)
      .slice(Math.max(1, rules.keepRestorePoints))
      .filter((i) => !i.pinned && verdicts.get(i.name)!.retained)
      .reverse();
    const releasing = (k: number) =>
      new Map(releasable.slice(0, k).map((i) => [i.name, 'released to fit maxTotalSize']));
    let fits: number | undefined;
    for (let lo = 1, hi = releasable.length; lo <= hi;) {
      const mid = (lo + hi) >> 1;
      if (decide(releasing(mid)).decision.managedBytesKept <= cap) {
        fits = mid;
        hi = mid - 1;
      } else lo = mid + 1;
    }
    ({ verdicts, decision } = decide(releasing(fits ?? releasable.length)));
    if (fits === undefined)
      warnings.push(
        `keeping ${formatBytes(decision.managedBytesKept)}, more than maxTotalSize (${formatBytes(cap)}): the protected restore points and the files safety keeps need that much`,
      );
  }
  const retainedImages = () => images.filter((i) => verdicts.get(i.name)!.retained);

  const retained = retainedImages();
  const oldestRetained = retained.reduce((min, img) => Math.min(min, img.version), Infinity);
  const allCoverage = coverage(pieces);
  const keptCoverage = coverage(decision.keptPieces);
  const holes = oldestRetained < newest ? holesBetween(oldestRetained, newest - 1, allCoverage) : [];
  if (images.length === 0)
    warnings.push('no restore point (image) found: nothing can be known to be unneeded, nothing is deleted');

  const restorePoints = [...images].sort(byNewest).map((img) => {
    const v = verdicts.get(img.name)!;
    const before = reachFrom(allCoverage, img.version);
    const reaches = reachFrom(keptCoverage, img.version);
    // A bug in the plan, never an input: refuse the whole plan rather than delete what a restore point needs.
    const shortened = `prune plan would shorten restore point ${img.name} from ${before} to ${reaches} (bug: refusing)`;
    if (v.retained && reaches !== before) throw new Error(shortened);
    if (v.retained && reaches < newest)
      warnings.push(
        `restore point ${img.name} (v${img.version}) reaches only ${reaches} of ${newest}: hole ${formatHole(holesBetween(reaches, newest - 1, keptCoverage)[0]!)} was there before prune`,
      );
    return { name: img.name, version: img.version, retained: v.retained, reason: v.reason, reaches };
  });

  const deleteUnits = images.length === 0 ? new Set<string>() : decision.deletedUnits;
  const keep: PlanEntry[] = [];
  const del: PlanEntry[] = [];
  for (const f of files) {
    const entry = { name: f.name, unit: f.unit, kind: f.kind, size: f.size, versions: f.versions };
    if (deleteUnits.has(f.unit))
      del.push({ ...entry, reason: deleteReason(f, verdicts, keptCoverage, oldestRetained) });
    else keep.push({ ...entry, reason: keepReason(f, safety, verdicts, decision.unitReasons, images.length === 0) });
  }
  const order = (a: PlanEntry, b: PlanEntry) => a.unit.localeCompare(b.unit) || a.name.localeCompare(b.name);
  del.sort(order);
  keep.sort(order);
  return {
    newest,
    restorePoints,
    delete: del,
    keep,
    bytesToFree: del.reduce((s, e) => s + e.size, 0),
    bytesKept: keep.reduce((s, e) => s + e.size, 0),
    holes,
    warnings,
  };
}

/**
 * How far an image rolls forward over merged coverage: to the end of the run holding its version.
 * The same answer as chain.ts's rollForward (which the tests use to check this), in O(log n) per image.
 */
function reachFrom(merged: readonly Segment[], version: number): number {
  let lo = 0;
  let hi = merged.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const seg = merged[mid]!;
    if (seg.last < version) lo = mid + 1;
    else if (seg.first > version) hi = mid - 1;
    else return seg.last + 1;
  }
  return version;
}

function keepReason(
  f: FileRef,
  safety: ReadonlyMap<string, string>,
  verdicts: ReadonlyMap<string, { retained: boolean; reason: string }>,
  unitReasons: ReadonlyMap<string, string>,
  noImages: boolean,
): string {
  if (noImages) return 'no restore point to decide by';
  const v = verdicts.get(f.name);
  if (v?.retained) return `retained restore point: ${v.reason}`;
  const own = safety.get(f.name);
  if (own) return v ? `${own}; not a retained restore point: ${v.reason}` : own;
  const unit = unitReasons.get(f.unit) ?? 'kept';
  return f.unit === f.name ? unit : `with ${f.unit}: ${unit}`;
}

function deleteReason(
  f: FileRef,
  verdicts: ReadonlyMap<string, { retained: boolean; reason: string }>,
  keptCoverage: readonly Segment[],
  oldestRetained: number,
): string {
  if (f.kind === 'image') return `restore point not retained: ${verdicts.get(f.name)?.reason ?? 'released'}`;
  if (f.kind === 'other') return `goes with ${f.unit}`;
  const segs = f.segments;
  if (segs.length === 0) return 'holds no versions';
  if (segs.every((s) => s.last < oldestRetained))
    return `older than every retained restore point (oldest v${oldestRetained})`;
  if (segs.every((s) => holesBetween(s.first, s.last, keptCoverage).length === 0))
    return 'every version it holds is also in a kept file';
  return 'no retained restore point needs its versions';
}

/** One line per planned file, for --dry-run: `delete changelog_ml.3.mfs versions 120..189 (4.0 KiB): reason`. */
export function planLine(e: PlanEntry, verb: string): string {
  return `${verb} ${describeFile(e)}: ${e.reason}`;
}

/** `changelog_ml.3.mfs versions 120..189 (4.0 KiB)`: how the plan and the deletion log name a file. */
export function describeFile(e: PlanEntry): string {
  const what = e.kind === 'changelog' ? ` versions ${e.versions}` : e.kind === 'image' ? ` image ${e.versions}` : '';
  return `${e.name}${what} (${formatBytes(e.size)})`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
