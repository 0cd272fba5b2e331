import type { JobResult, Metric } from '../core/job.js';
import type { ChunkIdsRaised } from '../moosefs/roll-forward.js';
import { metric } from '../core/metrics.js';
import { aliveMasters, describeFence, type FenceAnswer } from './fence.js';
import type { CollectedSource, SettledPlan } from './collect.js';
import type { ClientsWatchStarted } from './clients-watch.js';
import { describeClientsWatch } from './clients-watch.js';
import { describeStep, type RestorePlan } from './restore-plan.js';
import type { MovedAside } from './standby.js';
import { formatHole } from '../moosefs/chain.js';
import type { Generation } from '../moosefs/generations/index.js';
import type { MasterStatus } from '../moosefs/master.js';
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
  /** The job's start to fencing: its lock, and the checks before promoting (cfg, DATA_PATH, no master, VIP). */
  checkMs?: number;
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
  /** Of restoreMs, before 1.7: mfsmetarestore with the chunk-id raise; then the master's start until it answered. */
  metarestoreMs?: number;
  masterStartMs?: number;
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
      changelogs: plan.steps.map((s) => ({
        source: s.changelog.source,
        name: s.changelog.name,
        first: s.segment.first,
        last: s.segment.last,
      })),
      reached: plan.reached,
      newest: plan.newest,
      holes: plan.holes,
    },
    sourcesUsed: sourcesUsed(plan),
    otherFilesystems: settled.choice.others,
  };
}

/** Promote found this standby's mfsmaster already serving: fine alone, two masters if another answers too. */
export function alreadyServing(r: {
  pid: number;
  info: MasterStatus;
  answers: FenceAnswer[];
  vip?: string;
  vipHere: boolean;
}): JobResult {
  const alive = aliveMasters(r.answers);
  const version = r.info.metadataVersion;
  const details = { pid: r.pid, metadataVersion: version ?? null, fence: r.answers, changed: false };
  const metrics: Metric[] = version === undefined ? [] : [metric('metadata_version', version)];
  if (alive.length > 0) {
    const summary = `this standby already serves (pid ${r.pid}), and so does ${alive.map(describeFence).join('; ')}: two masters`;
    return { status: 'CRITICAL', summary, details, metrics };
  }
  const serves = version !== undefined ? `metadata version ${version}` : `(MooseFS ${r.info.softwareVersion})`;
  const summary = `mfsmaster (pid ${r.pid}) already serves ${serves}; nothing changed`;
  if (!r.vipHere)
    return { status: 'WARNING', summary: `${summary}, but virtual IP ${r.vip} is not held here`, details, metrics };
  return { status: 'OK', summary, details, metrics };
}

/** What the report of a promotion that serves is made of (promotion.ts: the steps' results, and the run's). */
export interface PromotedRun {
  findings: Findings;
  settled: SettledPlan;
  lines: string[];
  aside: MovedAside;
  start: { command: string; durationMs: number; binaries: { generation: Generation }; chunkIds?: ChunkIdsRaised };
  status: MasterStatus;
  served: number;
  servedAt: number;
  reachedTimestamp?: number;
  stagingBytes: number;
  mirroredBytes: number;
  clientsHeld: boolean;
  clients?: ClientsWatchStarted;
  clientsWaitSeconds: number;
  /** When the hook was called (ms since the epoch): the RTO counts from there. */
  triggeredAtMs: number;
  handedOff: boolean;
  triggeredBy: 'hook' | 'vip';
}

const seconds = (ms: number) => Math.round(ms) / 1000;

/** The result of a promotion whose master serves: RTO, RPO, what was lost, where the time went. */
export function promotedResult(r: PromotedRun): JobResult {
  const { settled, findings: f, start, served } = r;
  const { plan } = settled.choice;
  const lines = [...r.lines, ...(r.clients ? [describeClientsWatch(r.clients, r.clientsWaitSeconds)] : [])];
  const rtoSeconds = seconds(r.servedAt - r.triggeredAtMs);
  const restoreSeconds = seconds(start.durationMs);
  const rpoVersions = Math.max(0, plan.newest - plan.reached);
  const newestTimestamp = Math.max(0, ...settled.choice.group.changelogs.map((c) => c.lastTimestamp ?? 0));
  const rpoSeconds =
    r.reachedTimestamp !== undefined && newestTimestamp > 0
      ? Math.max(0, newestTimestamp - r.reachedTimestamp)
      : undefined;
  const metrics: Metric[] = [
    metric('rto_seconds', rtoSeconds),
    metric('restore_seconds', restoreSeconds),
    metric('overhead_seconds', Math.max(0, seconds(r.servedAt - r.triggeredAtMs - start.durationMs))),
    metric('rpo_versions', rpoVersions),
    ...(rpoSeconds !== undefined ? [metric('rpo_seconds', rpoSeconds)] : []),
    metric('metadata_version', served),
    metric('fetched_bytes', r.stagingBytes),
    metric('mirrored_bytes', r.mirroredBytes),
  ];
  const others = settled.choice.others.map((o) => `metaid ${o.metaid ?? '?'} on ${o.sources.join(', ')}`);
  const warnings = [
    ...(rpoVersions > 0
      ? [`${rpoVersions} versions lost (holes ${plan.holes.map(formatHole).join(', ') || '-'})`]
      : []),
    ...cutTails(settled, start.binaries.generation, !!start.chunkIds && !('error' in start.chunkIds)),
    ...(f.forced ? ['forced past fencing'] : []),
    ...(others.length > 0 ? [`other filesystems seen and not used: ${others.join('; ')}`] : []),
  ];
  const summary =
    `promoted: serving metadata version ${served} in ${rtoSeconds.toFixed(2)} s from ${sourcesUsed(plan).join(' + ')}; ` +
    `RPO ${rpoVersions} versions${warnings.length ? `; ${warnings.join('; ')}` : ''}`;
  const timings = Object.entries(f.timings)
    .map(([k, v]) => `${k.replace(/Ms$/, '')} ${v}`)
    .join(', ');
  return {
    status: warnings.length ? 'WARNING' : 'OK',
    summary,
    details: {
      ...planDetails(f, settled),
      aside: r.aside,
      handedOff: r.handedOff,
      triggeredBy: r.triggeredBy,
      metadataVersion: served,
      moosefs: r.status.softwareVersion,
      restoreCommand: start.command,
      chunkIds: start.chunkIds ?? null,
      rtoSeconds,
      restoreSeconds,
      rpo: { versions: rpoVersions, seconds: rpoSeconds ?? null },
      timings: f.timings,
      fetchedBytes: r.stagingBytes,
      mirroredBytes: r.mirroredBytes,
      clients: r.clients ?? null,
      clientsHeld: r.clientsHeld,
      changed: true,
    },
    metrics,
    lines: [...lines, `timings (ms): ${timings}`],
  };
}

/**
 * A chain that ends in a cut line lost whatever the writer still held: a 1.x chunkserver writes
 * changelog_csback through a 4 KiB buffer, so the changes after it are gone although no source shows a hole.
 */
function cutTails(settled: SettledPlan, generation: Generation, idsRaised: boolean): string[] {
  const last = settled.choice.plan.steps.at(-1)?.changelog;
  if (!last?.cutLastLine) return [];
  const reused =
    "; the lost files' chunks are still on the chunkservers and the master may hand their ids out again " +
    '(new writes fail with EIO until its chunk loop deletes them)';
  const raised =
    "; the lost files' chunks are still on the chunkservers, deleted by the master's chunk loop " +
    '(new chunk ids start past them)';
  const chunkIds = generation.reusesLostChunkIds ? (idsRaised ? raised : reused) : '';
  const lost = `changes after version ${settled.choice.plan.reached - 1} were still in its writer's buffer and are lost`;
  return [`${last.source}:${last.name} ended mid-line: ${lost}${chunkIds}`];
}

/** What the restore did to the image's next chunk id (lib/moosefs/roll-forward.ts raiseNextChunkId), for the log. */
export function describeChunkIds(c: ChunkIdsRaised): string {
  if ('error' in c) return c.error;
  const until = new Date(c.lockedUntil * 1000).toISOString();
  const locked = c.locked > 0 ? `; ${c.locked} chunks written just before the failure stay locked until ${until}` : '';
  const why = 'past any the lost changes used (the master reuses them otherwise)';
  return `next chunk id raised from ${c.from} to ${c.to}, ${why}${locked}`;
}
