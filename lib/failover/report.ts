import type { FenceAnswer } from './fence.js';
import type { CollectedSource, SettledPlan } from './collect.js';
import { describeStep, type RestorePlan } from './restore-plan.js';
import { formatHole } from '../moosefs/chain.js';
import { describeImageVersion } from '../moosefs/metadata.js';

/** What a promotion found and did, as lines for the operator and as details for --json. */

export interface Findings {
  answers: FenceAnswer[];
  forced: boolean;
  collected: CollectedSource[];
  notes: string[];
  timings: Timings;
}

/** Where a promotion's time went, milliseconds (details.timings): what the benchmark compares. */
export interface Timings {
  /** Process start (the hook's call) to the job's start: Node and mfs-jobs loading. */
  startupMs: number;
  fenceMs?: number;
  /** Power-fence hook and leader key (issue #25), after fencing. */
  quorumMs?: number;
  /** Every source opened and listed (in parallel with fencing). */
  inventoryMs?: number;
  /** Chosen files fetched, scanned, the plan settled. */
  fetchMs?: number;
  /** Moved aside and placed. */
  placeMs?: number;
  /** mfsmaster -a until it answered. */
  restoreMs?: number;
}

export function sourcesUsed(plan: RestorePlan): string[] {
  return [...new Set([plan.image.source, ...plan.steps.map((s) => s.changelog.source)])];
}

export function sourceLines(f: Findings): string[] {
  return [
    ...f.notes,
    ...f.collected.map(({ inventory: i }) =>
      i.error
        ? `source ${i.source.name} (${i.source.kind}): not used: ${i.error}`
        : `source ${i.source.name} (${i.source.kind}): ${i.images.length} image(s), ${i.changelogs.length} changelog(s), metaid ${i.metaid ?? 'unknown'}${i.notes.length ? `; ${i.notes.join('; ')}` : ''}`,
    ),
  ];
}

export function sourceDetails(f: Findings) {
  return f.collected.map(({ inventory: i }) => ({
    name: i.source.name,
    kind: i.source.kind,
    error: i.error ?? null,
    metaid: i.metaid ?? null,
    images: i.images.map((img) => ({ name: img.name, version: img.version })),
    changelogs: i.changelogs.map((c) => ({ name: c.name, segments: c.segments })),
    notes: i.notes,
  }));
}

export function planLines(plan: RestorePlan): string[] {
  return [
    `image: ${plan.image.source}:${plan.image.name} ${describeImageVersion(plan.image)} metaid ${plan.metaid ?? 'unknown'}`,
    ...plan.steps.map((s) => `changelog: ${describeStep(s)}`),
    `reaches metadata version ${plan.reached}; newest seen ${plan.newest}${plan.holes.length ? `; holes ${plan.holes.map(formatHole).join(', ')}` : ''}`,
  ];
}

export function planDetails(f: Findings, settled: SettledPlan) {
  const { plan } = settled.choice;
  return {
    fence: f.answers,
    forced: f.forced,
    sources: sourceDetails(f),
    excluded: settled.excluded,
    dropped: settled.dropped,
    plan: {
      metaid: plan.metaid ?? null,
      image: { source: plan.image.source, name: plan.image.name, version: plan.image.version, empty: plan.image.empty },
      changelogs: plan.steps.map((s) => ({ source: s.changelog.source, name: s.changelog.name, first: s.segment.first, last: s.segment.last })),
      reached: plan.reached,
      newest: plan.newest,
      holes: plan.holes,
    },
    sourcesUsed: sourcesUsed(plan),
    otherFilesystems: settled.choice.others,
  };
}
