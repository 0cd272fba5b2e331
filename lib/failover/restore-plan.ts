import { rollForward, type Hole } from '../moosefs/chain.js';
import type { Segment } from '../moosefs/changelog.js';

/**
 * Pure choice of what a promotion restores from: which image, which changelogs, from which sources.
 * Versions follow lib/moosefs/chain.ts: an image of version V is rolled forward by changelog lines V, V+1, …;
 * after line L the metadata version is L+1.
 */

/**
 * `chunkserver`: a 1.x chunkserver's changelog_csback files (changelogs only, no image). `archive`: the
 * store's changelog archive (issue #26; changelogs only), which rolls a snapshot's image on past its own.
 */
export type SourceKind = 'metalogger' | 'master' | 'chunkserver' | 'snapshot' | 'archive';

export interface SourceRef {
  name: string;
  kind: SourceKind;
  /** Files on this machine's disk: copied (or cloned), never transferred. */
  local: boolean;
}

/**
 * Promote's view of a lib/moosefs ImageCandidate: one source's image whose header was read, flattened, with
 * the source it comes from (many sources are planned together).
 */
export interface PromoteImage {
  source: string;
  /** File name in the source's directory, and its full path there. */
  name: string;
  path: string;
  size: number;
  /** `restoreFrom(header)`: the header's version; an empty `MFSM NEW` image counts as 1. */
  version: number;
  /** Hex as in the image header; '' for an empty image. */
  metaid: string;
  empty: boolean;
  local: boolean;
}

/** Promote's view of a lib/moosefs ChangelogCandidate: runs of versions, refined by a scan once fetched. */
export interface PromoteChangelog {
  source: string;
  name: string;
  path: string;
  size: number;
  local: boolean;
  /** Runs of versions: one run from the first and last lines until the whole file was scanned. */
  segments: Segment[];
  scanned: boolean;
  /** Unix time of the newest complete line. */
  lastTimestamp?: number;
  /** Scanned, one run, no cut-off last line, no disorder: can be placed as it is. */
  clean: boolean;
  /** Scanned, and its last line was cut off (a writer died mid-line; a 1.x chunkserver's buffer). */
  cutLastLine?: boolean;
}

/** One source's PromoteImages and PromoteChangelogs (a lib/moosefs SourceInventory, read tolerantly: notes). */
export interface PromoteInventory {
  source: SourceRef;
  /** The filesystem id its files belong to (newest non-empty image, else a SETMETAID line). */
  metaid?: string;
  images: PromoteImage[];
  changelogs: PromoteChangelog[];
  /** Files that cannot be used, one line each. */
  notes: string[];
  /** Set when the source could not be read at all. */
  error?: string;
}

/** Sources whose files may be combined: one metaid, never two. */
export interface MetaidGroup {
  metaid: string | undefined;
  sources: string[];
  images: PromoteImage[];
  changelogs: PromoteChangelog[];
}

export interface ExcludedSource {
  source: string;
  reason: string;
}

/**
 * Sources by metaid. A source whose metaid is unknown (only an empty image and no SETMETAID line)
 * joins the one known group when there is exactly one, and is left out when several filesystems
 * are in play: mixing files of two filesystems makes a master that chunkservers refuse.
 */
export function groupByMetaid(inventories: readonly PromoteInventory[]): {
  groups: MetaidGroup[];
  excluded: ExcludedSource[];
} {
  const usable = inventories.filter((i) => !i.error && (i.images.length > 0 || i.changelogs.length > 0));
  const known = [...new Set(usable.map((i) => i.metaid).filter((m): m is string => m !== undefined))];
  const groups = new Map<string | undefined, MetaidGroup>();
  const excluded: ExcludedSource[] = [];
  for (const inv of usable) {
    let key = inv.metaid;
    if (key === undefined && known.length > 1) {
      excluded.push({
        source: inv.source.name,
        reason: `metaid unknown (no image with content, no SETMETAID line) while sources disagree (${known.join(', ')})`,
      });
      continue;
    }
    if (key === undefined) key = known[0];
    const group = groups.get(key) ?? { metaid: key, sources: [], images: [], changelogs: [] };
    group.sources.push(inv.source.name);
    group.images.push(...inv.images.filter((img) => img.empty || key === undefined || img.metaid === key));
    group.changelogs.push(...inv.changelogs);
    groups.set(key, group);
  }
  return { groups: [...groups.values()], excluded };
}

/** One changelog run the restore replays. */
export interface ChainStep {
  changelog: PromoteChangelog;
  segment: Segment;
}

/**
 * The gap-free run from `version`, greedily: at each missing version take the run that reaches
 * furthest (local before remote, then the smaller file) — the fewest files to fetch.
 */
export function chainFrom(
  version: number,
  changelogs: readonly PromoteChangelog[],
): { steps: ChainStep[]; reached: number } {
  const steps: ChainStep[] = [];
  let next = version;
  for (;;) {
    let best: ChainStep | undefined;
    for (const c of changelogs) {
      for (const s of c.segments) {
        if (s.first > next || s.last < next) continue;
        if (!best || s.last > best.segment.last || (s.last === best.segment.last && preferFile(c, best.changelog)))
          best = { changelog: c, segment: s };
      }
    }
    if (!best) return { steps, reached: next };
    steps.push(best);
    next = best.segment.last + 1;
  }
}

function preferFile(a: PromoteChangelog, b: PromoteChangelog): boolean {
  if (a.local !== b.local) return a.local;
  return a.size < b.size;
}

export interface RestorePlan {
  metaid: string | undefined;
  image: PromoteImage;
  steps: ChainStep[];
  /** Metadata version the restored master will serve. */
  reached: number;
  /** Highest version any source of this filesystem had (newest line + 1, or newest image). */
  newest: number;
  /** Missing versions between `reached` and `newest`: why a restore cannot go further. */
  holes: Hole[];
}

/** Newest version a group's files offer, reachable or not. */
export function newestVersion(group: Pick<MetaidGroup, 'images' | 'changelogs'>): number {
  let newest = 0;
  for (const img of group.images) newest = Math.max(newest, img.version);
  for (const c of group.changelogs) for (const s of c.segments) newest = Math.max(newest, s.last + 1);
  return newest;
}

/** The image that rolls forward furthest; ties: a local image (no transfer), then the newer one. */
export function bestPlan(group: MetaidGroup): RestorePlan | undefined {
  let best: RestorePlan | undefined;
  const pieces = group.changelogs.flatMap((c, i) => c.segments.map((s) => ({ ...s, file: String(i) })));
  for (const image of group.images) {
    // lib/moosefs/chain.ts says how far the image rolls forward and where the holes are; chainFrom picks the files.
    const { reached, holes } = rollForward(image.version, pieces);
    const { steps } = chainFrom(image.version, group.changelogs);
    const plan: RestorePlan = { metaid: group.metaid, image, steps, reached, newest: newestVersion(group), holes };
    if (!best || better(plan, best)) best = plan;
  }
  return best;
}

function better(a: RestorePlan, b: RestorePlan): boolean {
  if (a.reached !== b.reached) return a.reached > b.reached;
  if (a.image.local !== b.image.local) return a.image.local;
  return a.image.version > b.image.version;
}

export interface PlanChoice {
  plan: RestorePlan;
  /** The filesystem's sources and files the plan was chosen from. */
  group: MetaidGroup;
  /** Other filesystems seen, and how far they would have reached (for the report, never used). */
  others: { metaid: string | undefined; sources: string[]; reached: number }[];
}

/** Across filesystems: the pinned metaid (or one of the pinned ones) when given, else the one that reaches furthest. */
export function choosePlan(
  groups: readonly MetaidGroup[],
  pinnedMetaid?: string | readonly string[],
): PlanChoice | undefined {
  const plans = groups
    .map((g) => ({ group: g, plan: bestPlan(g) }))
    .filter((p): p is { group: MetaidGroup; plan: RestorePlan } => p.plan !== undefined);
  const pinned =
    pinnedMetaid === undefined
      ? undefined
      : (typeof pinnedMetaid === 'string' ? [pinnedMetaid] : pinnedMetaid).map((m) => m.toUpperCase());
  const eligible = pinned
    ? plans.filter((p) => p.group.metaid !== undefined && pinned.includes(p.group.metaid))
    : plans;
  const chosen = eligible.reduce<(typeof plans)[number] | undefined>(
    (acc, p) => (!acc || better(p.plan, acc.plan) ? p : acc),
    undefined,
  );
  if (!chosen) return undefined;
  return {
    plan: chosen.plan,
    group: chosen.group,
    others: plans
      .filter((p) => p !== chosen)
      .map((p) => ({ metaid: p.group.metaid, sources: p.group.sources, reached: p.plan.reached })),
  };
}

/**
 * Can these sources restore the filesystem (one of `metaids`, when known) on their own: a plan that is
 * more than an empty image? Promote asks before it considers a copy, which must never outvote them.
 */
export function restorable(inventories: readonly PromoteInventory[], metaids?: readonly string[]): boolean {
  const choice = choosePlan(groupByMetaid(inventories).groups, metaids);
  return choice !== undefined && !(choice.plan.image.empty && choice.plan.steps.length === 0);
}

/** `ml1:changelog_ml.0.mfs 120..155` — one line per file of a plan. */
export function describeStep(step: ChainStep): string {
  return `${step.changelog.source}:${step.changelog.name} ${step.segment.first}..${step.segment.last}`;
}
