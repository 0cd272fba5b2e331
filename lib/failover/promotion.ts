// A promotion's steps, in the order jobs/promote.ts calls them: check → fence (beside it: collect and
// stage) → plan → place → start → report. Each step takes what the one before gave and changes nothing
// it does not name; a step that ends the promotion returns `{ stop: JobResult }`. Nothing in DATA_PATH
// changes before fencing (and the quorum) said go: collecting, which only reads, runs while the fence is out;
// staging into DATA_PATH waits for `proceed`.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MasterHost, StandbyConfig } from '../core/config.js';
import { DirHandle } from '../core/dirhandle.js';
import { describeError } from '../core/errors.js';
import type { JobContext, JobResult } from '../core/job.js';
import { RESTORED_SESSIONS } from '../moosefs/datapath.js';
import { waitServing, type MasterStatus } from '../moosefs/master.js';
import { MasterCfg } from '../moosefs/master-cfg.js';
import { mfsmasterErrorLine, stopMaster } from '../moosefs/mfsmaster.js';
import type { Generation } from '../moosefs/generations/index.js';
import type { RestoreResult } from '../moosefs/roll-forward.js';
import { probeAhead, type Binaries } from '../moosefs/generations/binaries.js';
import { identityFile } from '../store/identity.js';
import { startClientsWatch, type ClientsWatchStarted } from './clients-watch.js';
import { closeSources, collectLastResort, collectSources, settlePlan, sourceSpecs, Staging } from './collect.js';
import type { CollectedSource, SettledPlan, SourceSpec } from './collect.js';
import type { StandbyCompanion } from './companion.js';
import { announceVip } from './arp.js';
import { aliveMasters, describeFence, mastersToFence, probeMaster, type FenceAnswer } from './fence.js';
import { expectedFilesystem } from './identity.js';
import { holdFault, releaseFaultOnPromotion } from './keepalived-fault.js';
import { mirrorOf } from './mirror.js';
import {
  alreadyServing,
  describeChunkIds,
  planDetails,
  planLines,
  promotedResult,
  sourceDetails,
  sourceLines,
  sourcesUsed,
} from './report.js';
import type { Findings, Timings } from './report.js';
import { preparePlacements, restoreStandby } from './start-standby.js';
import { checkStandby, localMaster, moveAside, placeFiles, requireStandby, stamp, STAGING_PREFIX } from './standby.js';
import type { LocalMaster, MovedAside, Placement } from './standby.js';
import { localAddresses, releaseVip, vipHeld } from './vip.js';
import { lagCheck, quorumFence, type QuorumFence } from './quorum-gate.js';

/** The settings of jobs.promote the steps read (the job's options schema declares them). */
export interface PromoteSettings {
  fenceTimeoutSeconds: number;
  fenceArpMilliseconds: number;
  fenceArpProbes: number;
  fenceAheadMilliseconds: number;
  sourceTimeoutSeconds: number;
  startTimeoutSeconds: number;
  metaid?: string;
  releaseVipOnRefusal: boolean;
  clientsWaitSeconds: number;
  /** The lag gate (issue #25, lag-gate.ts): limits behind the newest version seen; --force overrides. */
  maximumLagVersions?: number;
  maximumLagSeconds?: number;
}

export interface PromoteArgs {
  force?: boolean;
  otherFilesystem?: boolean;
}

/** A promotion's context: the job's, with the daemon's companion when the daemon runs it. */
export type PromoteContext = JobContext<PromoteSettings, PromoteArgs, StandbyCompanion>;

/** A step that ends the promotion here, with this result. */
export interface Stop {
  stop: JobResult;
}

/** What the checks before promoting found: the standby, the masters to fence. */
export interface Standby {
  standby: StandbyConfig;
  others: MasterHost[];
  /** The standby's lock named a process that is no mfsmaster there (said among the lines). */
  lockNote?: string;
}

/**
 * Step 0, check: the standby is one (cfg, DATA_PATH), no mfsmaster serves here already, and the VIP is ours
 * (at boot CARP/VRRP can flap to MASTER for a moment and back).
 */
export async function checkBeforePromoting(ctx: PromoteContext): Promise<Standby | Stop> {
  const { config } = ctx;
  const standby = requireStandby(config);
  // `ip addr` (a child process) while the cfg and DATA_PATH are read.
  const asking = localAddresses(ctx.signal);
  asking.catch(() => undefined);
  await checkStandby(config, standby);
  const addresses = await asking;
  const others = mastersToFence(config, { port: standby.cliPort, localAddresses: addresses, vip: standby.vip });
  const waitMs = ctx.options.startTimeoutSeconds * 1000;
  const running = await localMaster(config, standby, { waitMs, signal: ctx.signal });
  if (running.pid !== undefined) return { stop: await alreadyRunning(ctx, standby, others, running) };
  if (running.ignoredLock) ctx.log.warn(running.ignoredLock);
  if (standby.vip && !addresses.includes(standby.vip) && !ctx.args.force) {
    const summary = `virtual IP ${standby.vip} is not held here: not promoting (a CARP/VRRP flap?)`;
    return { stop: { status: 'CRITICAL', summary, details: { vip: standby.vip } } };
  }
  return { standby, others, lockNote: running.ignoredLock };
}

async function alreadyRunning(
  ctx: PromoteContext,
  standby: StandbyConfig,
  others: MasterHost[],
  running: LocalMaster,
): Promise<JobResult> {
  if (!running.info) {
    const summary = `mfsmaster (pid ${running.pid}) holds ${standby.dataPath} but does not serve: ${running.problem}; not touching it`;
    return { status: 'CRITICAL', summary };
  }
  const answers = await startFence(ctx, others).answers;
  const vipHere = standby.vip ? await vipHeld(standby.vip, ctx.signal) : true;
  return alreadyServing({ pid: running.pid!, info: running.info, answers, vip: standby.vip, vipHere });
}

/**
 * While a promotion runs, the daemon's mirror holds still (a pass must not rewrite a file while it is
 * staged from), and its SYN hold is the promotion's to end (once this promotion's mfsmaster has started).
 */
export async function withDaemonHeld<T>(ctx: PromoteContext, promote: () => Promise<T>): Promise<T> {
  const { mirror, hold } = ctx.companion ?? {};
  mirror?.pause();
  hold?.claim();
  try {
    return await promote();
  } finally {
    mirror?.resume();
    hold?.unclaim();
  }
}

/** Step 1 under way: every other master asked at once. */
export interface Fencing {
  answers: Promise<FenceAnswer[]>;
  /** Aborted once fencing found this master's machine dead: collecting need not wait for its SSH too. */
  hostDown(name: string): AbortSignal | undefined;
  /** Settles once this master's fence answer is in (undefined: not fenced by address, see startFence). */
  answered(name: string): Promise<unknown> | undefined;
}

/** How old the watch's last probe may be for the fence to take its word: two rounds of TCP connect and ARP. */
function watchFreshMs(o: PromoteSettings): number {
  return 2 * (o.fenceAheadMilliseconds + o.fenceArpMilliseconds) + 100;
}

/** Step 1, fence: ask every other master whether it lives (the daemon's watch answers for one seen dead). */
export function startFence(ctx: PromoteContext, others: readonly MasterHost[]): Fencing {
  const down = new Map(others.map((m) => [m.name, new AbortController()]));
  const { fenceTimeoutSeconds, fenceArpMilliseconds, fenceArpProbes } = ctx.options;
  const arp = fenceArpMilliseconds > 0 ? { windowMs: fenceArpMilliseconds, probes: fenceArpProbes } : undefined;
  const ask = async (m: MasterHost): Promise<FenceAnswer> => {
    const early = ctx.companion?.watch?.deadAnswer(m, watchFreshMs(ctx.options));
    if (early) return early;
    const { config, signal } = ctx;
    const o = {
      timeoutMs: fenceTimeoutSeconds * 1000,
      mfscliBin: config.mfscliBin,
      generation: config.moosefs.generation,
      signal,
      arp,
    };
    return probeMaster(m, o);
  };
  const asked = others.map(async (m) => {
    const a = await ask(m);
    if (a.reachability === 'unreachable' && m.host === m.cliHost)
      down.get(m.name)?.abort(new Error(`${m.name}: host unreachable (${a.detail})`));
    return a;
  });
  const each = new Map(others.map((m, i) => [m.name, asked[i]!]));
  const answers = Promise.all(asked);
  // Only where the fence's address is the SSH host: its answer says whether that machine is up at all.
  const sameHost = new Set(others.filter((m) => m.host === m.cliHost).map((m) => m.name));
  return {
    answers,
    hostDown: (name) => down.get(name)?.signal,
    answered: (name) => (sameHost.has(name) ? each.get(name)?.catch(() => undefined) : undefined),
  };
}

/** What fencing said: go, or refuse (another master lives and --force was not given). */
export interface FenceVerdict {
  answers: FenceAnswer[];
  alive: FenceAnswer[];
  go: boolean;
  /** Went on past a live master (--force). */
  forced: boolean;
}

export async function fenceVerdict(
  ctx: PromoteContext,
  fencing: Fencing,
  timings: Timings,
  began: number,
): Promise<FenceVerdict> {
  const answers = await fencing.answers;
  timings.fenceMs = Date.now() - began;
  const alive = aliveMasters(answers);
  const force = ctx.args.force === true;
  return { answers, alive, go: alive.length === 0 || force, forced: alive.length > 0 };
}

/** What collecting and fetching produced while the fence was still out: everything short of acting. */
export interface Prepared {
  collected: CollectedSource[];
  stagingDir: string;
  staging: Staging;
  /** The standby's DATA_PATH, held open: every change in it goes through this (unset in a dry run). */
  data?: DirHandle;
  settled: Awaited<ReturnType<typeof settlePlan>>;
  fetchMs: number;
  inventoryMs: number;
}

/** Step 2 under way: sources collected and the chosen restore point staged, beside the fence. */
export interface Collecting {
  preparing: Promise<Prepared>;
  /** Notes on the sources (a host that is none, a broken snapshot), first in the report. */
  notes: string[];
  /** Fencing (and the quorum, when configured) said go: staging into DATA_PATH may begin. */
  proceed(): void;
  /** Stop collecting (fencing refused). */
  stop(reason: Error): void;
  /** Give back what the sources hold (a copy's fetched snapshot): after the promotion, whatever its end. */
  releaseSources(): Promise<void>;
}

/**
 * Step 2, collect: open and list every source while the fence is still out (a dead host's SSH no longer
 * waits for it, nor it for them) — reading only; then, once `proceed` says fencing found no other master,
 * fetch the chosen restore point into a staging directory in DATA_PATH (issue #24: the standby's DATA_PATH
 * is not written before that proof, not even a staging directory made and removed again on a refusal).
 */
export async function startCollecting(
  ctx: PromoteContext,
  s: Standby,
  fencing: Fencing,
  began: number,
): Promise<Collecting> {
  const { config, options } = ctx;
  const stopping = new AbortController();
  let proceed!: () => void;
  const cleared = new Promise<void>((resolve) => (proceed = resolve));
  // An off-site copy (the last resort) is a source like the others: connected to and listed in time.
  const copyWithin = { seconds: options.sourceTimeoutSeconds, setting: 'jobs.promote.sourceTimeoutSeconds' };
  const { specs: own, notes, lastResort } = await sourceSpecs(config, s.others, ctx.signal, copyWithin);
  if (s.lockNote) notes.unshift(s.lockNote);
  const fetched: SourceSpec[] = [];
  const mirror = ctx.companion?.mirror;
  const specs = own.map((spec) => {
    const gated = afterFenceAnswer(spec, fencing);
    return mirror ? borrowing(mirror, gated) : gated;
  });
  const signal = AbortSignal.any([ctx.signal, stopping.signal]);
  const timeoutMs = options.sourceTimeoutSeconds * 1000;
  const collecting = collectSources(specs, { timeoutMs, signal, abortFor: (name) => fencing.hostDown(name) });
  const preparing = prepare(ctx, s.standby, collecting, { lastResort, fetched }, { cleared, signal }, began);
  probeAhead(config, s.standby.mfsmasterBin);
  // Settled either way, so that a refusal never leaves it unhandled.
  preparing.catch(() => undefined);
  return {
    preparing,
    notes,
    proceed: () => proceed(),
    stop: (reason) => stopping.abort(reason),
    // A copy's snapshot fetched for this promotion (the store was gone): the placed files are the restore's now.
    releaseSources: async () =>
      void (await Promise.all([...own, ...fetched].map((x) => x.release?.().catch(() => undefined)))),
  };
}

function borrowing(mirror: NonNullable<StandbyCompanion['mirror']>, spec: SourceSpec): SourceSpec {
  return {
    ...spec,
    open: async (signal: AbortSignal) => (await mirror.borrow(spec.ref.name, spec.dir)) ?? spec.open(signal),
  };
}

/**
 * An old master's DATA_PATH over SSH is opened once its fence has answered: a refused connect (the host is
 * up) comes back within a round trip, while a dead host's answer aborts the source anyway. Opening it at
 * once would load the SSH stack and parse the key — ≈ 0.25 s of CPU on one thread — while the fence's
 * ARP window runs on that thread too, so a dead host was proven dead that much later (issue #24).
 */
export function afterFenceAnswer(spec: SourceSpec, fencing: Pick<Fencing, 'answered'>): SourceSpec {
  if (spec.ref.kind !== 'master' || spec.ref.local) return spec;
  const answered = fencing.answered(spec.ref.name);
  if (!answered) return spec;
  return {
    ...spec,
    open: async (signal: AbortSignal) => {
      await answered;
      signal.throwIfAborted();
      return spec.open(signal);
    },
  };
}

async function prepare(
  ctx: PromoteContext,
  standby: StandbyConfig,
  collecting: Promise<CollectedSource[]>,
  copies: { lastResort?: (signal: AbortSignal) => Promise<SourceSpec[]>; fetched: SourceSpec[] },
  gate: { cleared: Promise<void>; signal: AbortSignal },
  began: number,
): Promise<Prepared> {
  const { signal } = gate;
  const { config, options } = ctx;
  const at = new Date();
  const otherFilesystem = ctx.args.otherFilesystem === true;
  const expectedOf = (c: CollectedSource[]) =>
    expectedFilesystem(
      config,
      options.metaid,
      c.map((x) => x.inventory),
      otherFilesystem,
    );
  // A copy only when nothing read within sourceTimeoutSeconds can restore: it never outvotes a reachable source.
  const recorded = identityFile(config.stateDir);
  const unknownBecause = `no cluster.metaid in ${config.file}, none recorded in ${recorded}, no live source holds one`;
  const live = await collecting;
  const timeoutMs = options.sourceTimeoutSeconds * 1000;
  const { fetched } = copies;
  const o = { otherFilesystem, unknownBecause, timeoutMs, signal, fetched, expected: await expectedOf(live) };
  const collected = await collectLastResort(live, copies.lastResort, o).catch(async (err: unknown) => {
    await closeSources(live);
    throw err;
  });
  const inventoryMs = Date.now() - began;
  let stagingDir: string | undefined;
  let data: DirHandle | undefined;
  let privateDir: DirHandle | undefined;
  try {
    await untilCleared(gate.cleared, signal);
    stagingDir = ctx.dryRun
      ? await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-promote-'))
      : path.join(standby.dataPath, `${STAGING_PREFIX}${stamp(at)}`);
    // In DATA_PATH, which the MooseFS user owns: made exclusively, and used only through its held descriptor.
    if (!ctx.dryRun) {
      data = await DirHandle.open(standby.dataPath, 'standby.dataPath');
      privateDir = await data.makePrivateDir(path.basename(stagingDir), 'staging directory');
    }
    const files = new Map(collected.flatMap((c) => (c.files ? [[c.spec.ref.name, c.files] as const] : [])));
    const mirror = ctx.companion?.mirror?.store ?? mirrorOf(config);
    const staging = new Staging(privateDir?.at ?? stagingDir, files, mirror, privateDir);
    const mark = Date.now();
    const expected = await expectedOf(collected);
    const inventories = collected.map((c) => c.inventory);
    const settled = await settlePlan(inventories, staging, { fetchImage: !ctx.dryRun, expected, signal });
    return { collected, stagingDir, staging, data, settled, fetchMs: Date.now() - mark, inventoryMs };
  } catch (err) {
    if (privateDir) await privateDir.discard();
    else if (ctx.dryRun && stagingDir) await fs.rm(stagingDir, { recursive: true, force: true });
    await data?.close();
    await closeSources(collected);
    throw err;
  }
}

/** The fence's go, or the signal's reason when collecting was stopped first (a refusal). */
function untilCleared(cleared: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    void cleared.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/** Step 2 done: what was collected and staged (release it with `releasePrepared`). */
export async function collected(c: Collecting, timings: Timings): Promise<Prepared> {
  const prepared = await c.preparing;
  timings.inventoryMs = prepared.inventoryMs;
  timings.fetchMs = prepared.fetchMs;
  return prepared;
}

export async function releasePrepared(p: Prepared | undefined): Promise<void> {
  if (!p) return;
  await p.staging.remove();
  await p.data?.close();
  await closeSources(p.collected);
}

/**
 * Fencing refused: stop collecting, and (releaseVipOnRefusal) take the VIP off this host again, so that
 * clients keep reaching the live master (a partition: this standby stopped hearing its adverts).
 */
export async function refuse(
  ctx: PromoteContext,
  standby: StandbyConfig,
  c: Collecting,
  v: FenceVerdict,
): Promise<JobResult> {
  c.stop(new Error('fencing refused'));
  await releasePrepared(await c.preparing.catch(() => undefined));
  // keepalived's FAULT first (issue #24): keepalived then drops the VIP itself and does not take it back.
  const timeoutMs = ctx.options.fenceTimeoutSeconds * 1000;
  const fault = ctx.dryRun ? { note: '' } : await holdFault(ctx.config, standby, v.alive, { timeoutMs });
  const vip = await giveVipBack(ctx, standby);
  const keepalivedFault = fault.record ? { ...fault.record, watcher: fault.watcher ?? null } : undefined;
  return {
    status: 'CRITICAL',
    summary:
      `refusing to promote: ${v.alive.map(describeFence).join('; ')} (split brain; --force overrides)` +
      `${vip.note}${fault.note}`,
    details: { fence: v.answers, changed: false, vipReleased: vip.released, keepalivedFault },
    lines: v.answers.map(describeFence),
  };
}

async function giveVipBack(ctx: PromoteContext, standby: StandbyConfig): Promise<{ released: string[]; note: string }> {
  if (!standby.vip || !ctx.options.releaseVipOnRefusal || ctx.dryRun) return { released: [], note: '' };
  try {
    const released = await releaseVip(standby.vip);
    const note = `; virtual IP ${standby.vip} released here (${released.join(', ')}) so clients keep reaching the live master`;
    return { released, note: released.length ? note : '' };
  } catch (err) {
    return { released: [], note: `; could not release virtual IP ${standby.vip}: ${describeError(err)}` };
  }
}

/**
 * Step 2b (issue #25), after fencing said go: the power-fence hook for masters of unknown state, then the
 * leader key in etcd (quorum-gate.ts). Refused: nothing changed, the collection stopped, the VIP given back.
 */
export async function takeQuorum(
  ctx: PromoteContext,
  standby: StandbyConfig,
  c: Collecting,
  v: FenceVerdict,
  timings: Timings,
  began: number,
): Promise<QuorumFence | Stop> {
  const gate = await quorumFence(ctx.config, v.answers, { signal: ctx.signal, dryRun: ctx.dryRun });
  if (gate.details.key || gate.details.powerFence.length)
    timings.quorumMs = Date.now() - began - (timings.fenceMs ?? 0);
  if (gate.refused === undefined) return gate;
  c.stop(new Error('quorum refused'));
  await releasePrepared(await c.preparing.catch(() => undefined));
  const vip = await giveVipBack(ctx, standby);
  return {
    stop: {
      status: 'CRITICAL',
      summary: `refusing to promote: ${gate.refused}${vip.note}`,
      details: { fence: v.answers, quorum: gate.details, changed: false, vipReleased: vip.released },
      lines: [...v.answers.map((a) => `fence: ${describeFence(a)}`), ...gate.lines],
    },
  };
}

/** The quorum's part of the result (only when a quorum or a power fence is configured: reports as before). */
export function withQuorum(ctx: PromoteContext, result: JobResult, gate: QuorumFence): JobResult {
  if (!ctx.config.quorum && !ctx.config.fence) return result;
  return {
    ...result,
    details: { ...result.details, quorum: gate.details },
    lines: [...gate.lines, ...(result.lines ?? [])],
  };
}

/** Serving: the lease stays for this host's daemon to adopt; not promoted: it ends now. */
export async function settleLease(gate: QuorumFence, result: JobResult | undefined): Promise<void> {
  if (result?.details?.changed === true) await gate.lease?.stop();
  else await gate.lease?.release();
}

/** Step 3 done: the restore point chosen, and the lines that say why. */
export interface Planned {
  findings: Findings;
  settled: SettledPlan;
  lines: string[];
}

/** Step 3, plan: the settled choice, or why there is none (nothing changed); a dry run ends here. */
export async function plan(
  ctx: PromoteContext,
  v: FenceVerdict,
  c: Collecting,
  prepared: Prepared,
  timings: Timings,
): Promise<Planned | Stop> {
  const { settled } = prepared;
  const findings: Findings = {
    answers: v.answers,
    forced: v.forced,
    collected: prepared.collected,
    notes: c.notes,
    timings,
  };
  const lines = [...v.answers.map((a) => `fence: ${describeFence(a)}`), ...sourceLines(findings), ...settled.dropped];
  if ('failure' in settled) {
    // The first reason in the one line a pager shows: "no usable image" alone hides a dead link or a refused sshd.
    const errors = prepared.collected.flatMap((x) =>
      x.inventory.error ? [`${x.inventory.source.name}: ${x.inventory.error}`] : [],
    );
    const why = [...errors, ...settled.dropped][0];
    const details = { fence: v.answers, sources: sourceDetails(findings), changed: false };
    return {
      stop: {
        status: 'CRITICAL',
        summary: `${settled.failure}${why ? ` (${why})` : ''}; nothing changed`,
        details,
        lines,
      },
    };
  }
  const { plan } = settled.choice;
  if (plan.image.empty && plan.steps.length === 0) {
    const summary = `the only restore point is an empty filesystem (${plan.image.source}:${plan.image.name}, no changelogs): not promoting`;
    return { stop: { status: 'CRITICAL', summary, lines } };
  }
  lines.push(...planLines(plan));
  // The lag gate (issue #25): a restore point too far behind what was last seen is refused unless --force.
  const lag = await lagCheck(ctx.config, settled, ctx.options);
  if (lag.line) lines.push(lag.line);
  if (!lag.ok && !ctx.args.force) {
    const summary = `refusing to promote: lag gate: ${lag.why}; nothing changed (--force overrides)`;
    return {
      stop: { status: 'CRITICAL', summary, details: { ...planDetails(findings, settled), lag, changed: false }, lines },
    };
  }
  if (ctx.dryRun) {
    const summary = `dry run: would restore metadata version ${plan.reached} from ${sourcesUsed(plan).join(', ')}`;
    return { stop: { status: 'OK', summary, details: planDetails(findings, settled), lines } };
  }
  return { findings, settled, lines };
}

/** Step 4 done: DATA_PATH's old content aside, the restore point placed under master names. */
export interface Placed extends Planned {
  aside: MovedAside;
  files: Placement[];
  /** When the last change placed was made (unix seconds), for the RPO in seconds. */
  reachedTimestamp?: number;
  stagingBytes: number;
  mirroredBytes: number;
}

/**
 * Step 4, place: the first change to DATA_PATH. The VIP is checked once more right before: the boot flap
 * may have taken it.
 */
export async function place(
  ctx: PromoteContext,
  standby: StandbyConfig,
  prepared: Prepared,
  p: Planned,
): Promise<Placed | Stop> {
  const { staging, stagingDir } = prepared;
  const lines = [...p.lines];
  const mark = Date.now();
  // Asked (`ip addr`, a child process) while the placements are staged; answered before DATA_PATH changes.
  const asking = standby.vip && !ctx.args.force ? vipHeld(standby.vip, ctx.signal) : Promise.resolve(true);
  asking.catch(() => undefined);
  const placements = await preparePlacements(p.settled.choice.plan, p.settled, staging, ctx.signal);
  if (!(await asking)) {
    return {
      stop: {
        status: 'CRITICAL',
        summary: `virtual IP ${standby.vip} was lost while collecting: not promoting; nothing changed`,
        lines,
      },
    };
  }
  const aside = await moveAside(prepared.data!, new Date(), [path.basename(stagingDir)]);
  await placeFiles(prepared.data!, placements.files);
  p.findings.timings.placeMs = Date.now() - mark;
  if (staging.reused > 0)
    lines.push(`warm standby: ${staging.reused} bytes taken from the mirror, ${staging.bytes} fetched`);
  const { files, reachedTimestamp } = placements;
  return { ...p, lines, aside, files, reachedTimestamp, stagingBytes: staging.bytes, mirroredBytes: staging.reused };
}

/** Step 5 done: the promoted master serves. */
export interface Started extends Placed {
  start: RestoreResult & { binaries: Binaries };
  status: MasterStatus;
  /** The metadata version it serves. */
  served: number;
  servedAt: number;
  /** Clients were held at the VIP until it listened (the daemon's SYN hold). */
  clientsHeld: boolean;
}

/**
 * Step 5, start: restore and start the master, release the clients held at the VIP once it listens, wait
 * until it serves the planned version; stop it again when it serves less, or the VIP went elsewhere meanwhile.
 */
export async function start(ctx: PromoteContext, standby: StandbyConfig, p: Placed): Promise<Started | Stop> {
  const { plan } = p.settled.choice;
  const timeoutMs = ctx.options.startTimeoutSeconds * 1000;
  const details = { ...planDetails(p.findings, p.settled), aside: p.aside };
  const lines = [
    ...p.lines,
    p.aside.dir ? `previous DATA_PATH content moved to ${p.aside.dir}` : 'DATA_PATH was empty',
  ];
  if (p.files.some((f) => f.name === RESTORED_SESSIONS)) {
    lines.push(`${RESTORED_SESSIONS} restored beside the image: clients from before the failover keep their sessions`);
  }
  const restoreBegan = Date.now();
  // No abort signal: once the restore runs it runs to its end (a killed start would leave a half-started master).
  const start = await restoreStandby(ctx.config, standby, p.files, { timeoutMs });
  if (start.code !== 0)
    return {
      stop: {
        status: 'CRITICAL',
        summary: `${start.command} failed: ${mfsmasterErrorLine(start.output)}`,
        details,
        lines,
      },
    };
  if (start.chunkIds) lines.push(describeChunkIds(start.chunkIds));
  if (start.metarestoreMs !== undefined) p.findings.timings.metarestoreMs = start.metarestoreMs;
  p.findings.timings.masterStartMs = start.durationMs - (start.metarestoreMs ?? 0);
  // It listens: the clients held at the VIP get through on their next SYN.
  const hold = ctx.companion?.hold;
  const clientsHeld = hold?.holding ?? false;
  await hold?.release();
  const target = {
    host: standby.cliHost,
    port: standby.cliPort,
    bin: ctx.config.mfscliBin,
    generation: ctx.config.moosefs.generation,
  };
  const status = await waitServing({ ...target, timeoutMs });
  const servedAt = Date.now();
  p.findings.timings.restoreMs = servedAt - restoreBegan;
  // A 1.x master does not report its version: what mfsmetarestore wrote is what it serves.
  const served = status.metadataVersion ?? start.restoredVersion ?? 0;
  const stop = () =>
    stopMaster({
      configFile: standby.masterConfig,
      bin: start.binaries.mfsmaster,
      generation: start.binaries.generation,
    });
  if (served < plan.reached) {
    await stop();
    return {
      stop: {
        status: 'CRITICAL',
        summary: `mfsmaster came up at metadata version ${served}, expected ${plan.reached}: stopped it again`,
        details,
        lines,
      },
    };
  }
  // After acting: still ours? A master without the VIP is a second master nobody should reach.
  if (standby.vip && !ctx.args.force && !(await vipHeld(standby.vip))) {
    await stop();
    return {
      stop: {
        status: 'CRITICAL',
        summary: `virtual IP ${standby.vip} was lost during the promotion: mfsmaster stopped again`,
        details,
        lines,
      },
    };
  }
  // Announced now, not when the up-script returns (ucarp's): the clients' next SYN reaches this master.
  if (standby.vip) {
    const announced = await announceVip(standby.vip);
    lines.push(
      'dev' in announced
        ? `virtual IP ${standby.vip} announced on ${announced.dev} (gratuitous ARP)`
        : `virtual IP ${standby.vip} not announced: ${announced.why}`,
    );
  }
  return { ...p, lines, start, status, served, servedAt, clientsHeld };
}

/**
 * Step 6, report: the watch for the clients coming back started (not waited for: a synchronous up-script's
 * ucarp announces the VIP only once promote has returned), RTO, RPO and what was lost, as one result.
 */
export async function report(ctx: PromoteContext, standby: StandbyConfig, s: Started): Promise<JobResult> {
  await releaseFaultOnPromotion(ctx.config.stateDir).catch((err: unknown) =>
    ctx.log.warn(`could not release keepalived's FAULT record: ${describeError(err)}`),
  );
  const clients =
    ctx.options.clientsWaitSeconds > 0
      ? await clientsBack(ctx, standby, s.start.binaries.generation, s.served)
      : undefined;
  return promotedResult({
    ...s,
    clients,
    triggeredAtMs: triggeredAt(ctx),
    handedOff: ctx.trigger !== undefined,
    triggeredBy: ctx.trigger?.by ?? 'hook',
    clientsWaitSeconds: ctx.options.clientsWaitSeconds,
  });
}

/** The watch for the clients coming back (clients-watch.ts), on the ports this master listens on, left running. */
async function clientsBack(
  ctx: PromoteContext,
  standby: StandbyConfig,
  generation: Generation,
  served: number,
): Promise<ClientsWatchStarted> {
  const cfg = await MasterCfg.readOrEmpty(standby.masterConfig);
  const request = {
    clientPort: cfg.listenPort(generation, 'cl', standby.cliPort)!.port,
    chunkserverPort: cfg.listenPort(generation, 'cs')!.port,
    ignore: ctx.config.masters.flatMap((m) => [m.host, m.cliHost]),
    since: triggeredAt(ctx),
    timeoutMs: ctx.options.clientsWaitSeconds * 1000,
    stateDir: ctx.config.stateDir,
    textfileDir: ctx.config.prometheus.textfileDir,
    promotedAt: ctx.startedAt.toISOString(),
    metadataVersion: served,
  };
  const watches = ctx.companion?.clientWatches;
  return startClientsWatch(request, watches ? { log: ctx.log, watches } : undefined);
}

/**
 * When the hook was called: this process's start when ucarp/keepalived started it for this run (Node's own
 * start-up counts against the RTO too), or the hook process's (handed off to the daemon), else the job's start.
 */
export function triggeredAt(ctx: Pick<PromoteContext, 'startedAt' | 'trigger'>): number {
  const jobStart = ctx.startedAt.getTime();
  const processStart = ctx.trigger?.atMs ?? performance.timeOrigin;
  return jobStart - processStart < 30_000 && processStart <= jobStart ? processStart : jobStart;
}
