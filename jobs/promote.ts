import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { expectedFilesystem } from '../lib/failover/identity.js';
import { DirHandle } from '../lib/core/dirhandle.js';
import { closeSources, collectLastResort, collectSources } from '../lib/failover/collect.js';
import { settlePlan, sourceSpecs, Staging } from '../lib/failover/collect.js';
import type { LastResort, SettledPlan, SourceSpec } from '../lib/failover/collect.js';
import { identityFile, OTHER_FILESYSTEM_FLAG } from '../lib/store/identity.js';
import type { MasterHost, StandbyConfig } from '../lib/core/config.js';
import { jobOptionsSchema } from '../lib/core/config.js';
import { aliveMasters, describeFence, mastersToFence, probeMaster, type FenceAnswer } from '../lib/failover/fence.js';
import { listening } from '../lib/failover/clients-back.js';
import { describeClientsWatch, startClientsWatch, type ClientsWatchStarted } from '../lib/failover/clients-watch.js';
import { MasterWatch } from '../lib/failover/master-watch.js';
import { mirroredHosts, mirrorOf, StandbyMirror } from '../lib/failover/mirror.js';
import { defineJob, type JobContext, type JobResult, type Metric } from '../lib/core/job.js';
import { metric } from '../lib/core/metrics.js';
import { waitServing } from '../lib/moosefs/master.js';
import { mfsmasterErrorLine, readMfsConfig, stopMaster } from '../lib/moosefs/mfsmaster.js';
import { planDetails, planLines, sourceDetails, sourceLines, sourcesUsed, type Findings, type Timings } from '../lib/failover/report.js';
import { preparePlacements, restoreStandby } from '../lib/failover/restore.js';
import {
  checkStandby,
  localMaster,
  moveAside,
  placeFiles,
  requireStandby,
  stamp,
  standbyMasterPid,
  STAGING_PREFIX,
  type MovedAside,
  type Placement,
} from '../lib/failover/standby.js';
import { localAddresses, releaseVip, vipHeld } from '../lib/failover/vip.js';
import { SynHold } from '../lib/failover/syn-hold.js';
import { describeError } from '../lib/core/errors.js';
import { formatHole } from '../lib/moosefs/chain.js';
import { RESTORED_SESSIONS } from '../lib/moosefs/datapath.js';
import { GENERATIONS, type Generation } from '../lib/moosefs/generations/index.js';
import type { ChunkIdsRaised } from '../lib/moosefs/restore.js';

const options = jobOptionsSchema({
  /** A live master accepts TCP at once (the kernel answers); a dead machine never does. */
  fenceTimeoutSeconds: z.number().positive().default(2),
  /**
   * ARP beside the connect, for a master on this machine's own link: no reply to any of
   * `fenceArpProbes` requests within this many milliseconds means its host is down, without waiting
   * out fenceTimeoutSeconds. A live kernel answers in about a millisecond. 0 turns it off.
   */
  fenceArpMilliseconds: z.number().int().min(0).max(10_000).default(150),
  fenceArpProbes: z.number().int().min(1).max(10).default(3),
  /**
   * With `mfs-jobs daemon` running on this standby: probe the other masters this often, all the time,
   * so that a master already seen dead needs no probe when the hook fires (master-watch.ts). 0 turns it off.
   */
  fenceAheadMilliseconds: z.number().int().min(0).max(10_000).default(250),
  /**
   * Time to open and list one source; a source slower than this is left out (a dead host must not stall a
   * failover). An off-site copy (the store is gone) too: connected to and listed within it, then fetched.
   */
  sourceTimeoutSeconds: z.number().positive().default(5),
  /** mfsmaster -a and the first mfscli answer. */
  startTimeoutSeconds: z.number().positive().default(600),
  /** Restore only this filesystem (hex metaid as in the image header), whatever else sources hold. */
  metaid: z.string().regex(/^[0-9A-Fa-f]{1,16}$/, 'expected a hex metaid').optional(),
  /**
   * When fencing refuses because the old master still serves (a partition: this standby stopped hearing
   * its adverts), take standby.vip off this host again, so that clients keep reaching the live master.
   */
  releaseVipOnRefusal: z.boolean().default(true),
  /**
   * After the master serves, watch this long for the clients to come back (mounts reconnecting to the
   * sessions the master restored, chunkservers registering) and record when they did. Promote does not
   * wait for it (the daemon or a detached watcher does: lib/failover/clients-watch.ts). 0: do not watch.
   */
  clientsWaitSeconds: z.number().min(0).max(600).default(10),
});
type Options = z.infer<typeof options>;
type Ctx = JobContext<Options>;

/**
 * The failover hook: ucarp's up-script or keepalived's notify_master calls `mfs-jobs run promote`.
 * Fence, collect, restore, report — the runbook of a MooseFS master failover, in that order.
 */
export default defineJob({
  name: 'promote',
  description: "Turn this standby into the running mfsmaster with the newest metadata (ucarp up-script, keepalived notify_master)",
  options,
  cliOptions: [
    { flags: '--force', description: 'act even when another master answers or the VIP is not held (you know the other master is dead)' },
    {
      flags: OTHER_FILESYSTEM_FLAG,
      description:
        "restore points of another filesystem than the cluster's may be chosen (jobs.promote.metaid still pins " +
        "one), and a copy's when the cluster's is not known",
    },
  ],
  lockName: 'failover',
  lockWaitSeconds: 900,
  async run(ctx) {
    const { config } = ctx;
    const standby = requireStandby(config);
    await checkStandby(config, standby);
    const force = Boolean(ctx.args.force);
    const addresses = await localAddresses(ctx.signal);
    const others = mastersToFence(config, { port: standby.cliPort, localAddresses: addresses, vip: standby.vip });

    const running = await localMaster(config, standby, { waitMs: ctx.options.startTimeoutSeconds * 1000, signal: ctx.signal });
    if (running.pid !== undefined) return alreadyRunning(ctx, standby, others, running);
    if (running.ignoredLock) ctx.log.warn(running.ignoredLock);

    // Before acting: the VIP is ours. At boot CARP/VRRP can flap to MASTER for a moment and back.
    if (standby.vip && !addresses.includes(standby.vip) && !force) {
      return { status: 'CRITICAL', summary: `virtual IP ${standby.vip} is not held here: not promoting (a CARP/VRRP flap?)`, details: { vip: standby.vip } };
    }
    return promote(ctx, standby, others, force, running.ignoredLock);
  },
  async alongsideDaemon({ config, options, log }) {
    const standby = config.standby;
    if (!standby) return undefined;
    // Promotions run in this process from now on: their clients-back watch stays here too.
    daemonSide.clientWatches = new Set();
    const parts: { close(): Promise<void> }[] = [{ close: async () => daemonSide.clientWatches?.forEach((c) => c.abort()) }];
    if (options.fenceAheadMilliseconds > 0) {
      const others = mastersToFence(config, { port: standby.cliPort, localAddresses: await localAddresses(), vip: standby.vip });
      if (others.length > 0) {
        const w = new MasterWatch(others, {
          intervalMs: options.fenceAheadMilliseconds,
          arp: { windowMs: options.fenceArpMilliseconds, probes: options.fenceArpProbes },
          idle: async () => (await standbyMasterPid(standby)) !== undefined,
          onChange: (m, state) => log.info(`watch: ${m.name} (${m.cliHost}:${m.cliPort}) ${state.kind}${'detail' in state ? `: ${state.detail}` : ''}`, { master: m.name, state: state.kind }),
        });
        daemonSide.watch = w;
        log.info('watching the other masters for fencing', { masters: others.map((m) => m.name), intervalMs: options.fenceAheadMilliseconds });
        parts.push({ close: async () => ((daemonSide.watch = undefined), await w.close()) });
      }
    }
    if (standby.vip && standby.holdClients) {
      const ports = await masterPorts(standby);
      // Serving = listening: a master loading its metadata (its process and lock already there) still holds.
      const cl = await clientPort(standby);
      const serving = () => listening([cl]);
      const hold = new SynHold({ vip: standby.vip, ports, serving, log });
      if (await hold.start()) {
        daemonSide.hold = hold;
        log.info('holding client SYNs to the virtual IP while no master serves here', { vip: standby.vip, ports });
        parts.push({ close: async () => ((daemonSide.hold = undefined), await hold.close()) });
      }
    }
    const hosts = mirroredHosts(config);
    if (standby.mirror && hosts.length > 0) {
      const store = mirrorOf(config, true)!;
      const m = new StandbyMirror(config, store, hosts, { intervalMs: standby.mirrorIntervalSeconds * 1000, log });
      daemonSide.mirror = m;
      log.info('mirroring the sources for a warm standby', { sources: hosts.map((h) => h.name), dir: store.dir });
      parts.push({ close: async () => ((daemonSide.mirror = undefined), await m.close()) });
    }
    return { close: async () => void (await Promise.all(parts.map((p) => p.close()))) };
  },
});

/** What promote keeps running inside `mfs-jobs daemon` (alongsideDaemon): the watch of the other masters, the mirror. */
const daemonSide: { watch?: MasterWatch; mirror?: StandbyMirror; hold?: SynHold; clientWatches?: Set<AbortController> } = {};

/** How old the watch's last probe may be for the fence to take its word: two rounds of TCP connect and ARP. */
function watchFreshMs(o: Options): number {
  return 2 * (o.fenceAheadMilliseconds + o.fenceArpMilliseconds) + 100;
}

async function alreadyRunning(ctx: Ctx, standby: StandbyConfig, others: MasterHost[], running: Awaited<ReturnType<typeof localMaster>>): Promise<JobResult> {
  if (!running.info) {
    return { status: 'CRITICAL', summary: `mfsmaster (pid ${running.pid}) holds ${standby.dataPath} but does not serve: ${running.problem}; not touching it` };
  }
  const answers = await fence(ctx, others);
  const alive = aliveMasters(answers);
  const version = running.info.metadataVersion;
  const details = { pid: running.pid, metadataVersion: version ?? null, fence: answers, changed: false };
  const metrics: Metric[] = version === undefined ? [] : [metric('metadata_version', version)];
  if (alive.length > 0) {
    return { status: 'CRITICAL', summary: `this standby already serves (pid ${running.pid}), and so does ${alive.map(describeFence).join('; ')}: two masters`, details, metrics };
  }
  const summary = `mfsmaster (pid ${running.pid}) already serves ${version !== undefined ? `metadata version ${version}` : `(MooseFS ${running.info.softwareVersion})`}; nothing changed`;
  if (standby.vip && !(await vipHeld(standby.vip, ctx.signal))) return { status: 'WARNING', summary: `${summary}, but virtual IP ${standby.vip} is not held here`, details, metrics };
  return { status: 'OK', summary, details, metrics };
}

function fence(ctx: Ctx, others: readonly MasterHost[], onAnswer?: (m: MasterHost, a: FenceAnswer) => void): Promise<FenceAnswer[]> {
  return Promise.all(
    others.map(async (m) => {
      const early = daemonSide.watch?.deadAnswer(m, watchFreshMs(ctx.options));
      if (early) {
        onAnswer?.(m, early);
        return early;
      }
      const { fenceTimeoutSeconds, fenceArpMilliseconds, fenceArpProbes } = ctx.options;
      const arp = fenceArpMilliseconds > 0 ? { windowMs: fenceArpMilliseconds, probes: fenceArpProbes } : undefined;
      const answer = await probeMaster(m, { timeoutMs: fenceTimeoutSeconds * 1000, mfscliBin: ctx.config.mfscliBin, generation: ctx.config.moosefs.generation, signal: ctx.signal, arp });
      onAnswer?.(m, answer);
      return answer;
    }),
  );
}

/** After a refusal: the VIP off this host again (releaseVipOnRefusal), and a note for the summary. */
async function giveVipBack(ctx: Ctx, standby: StandbyConfig): Promise<{ released: string[]; note: string }> {
  if (!standby.vip || !ctx.options.releaseVipOnRefusal || ctx.dryRun) return { released: [], note: '' };
  try {
    const released = await releaseVip(standby.vip);
    return { released, note: released.length ? `; virtual IP ${standby.vip} released here (${released.join(', ')}) so clients keep reaching the live master` : '' };
  } catch (err) {
    return { released: [], note: `; could not release virtual IP ${standby.vip}: ${describeError(err)}` };
  }
}

/** What collecting and fetching produced while the fence was still out: everything short of acting. */
interface Prepared {
  collected: Awaited<ReturnType<typeof collectSources>>;
  stagingDir: string;
  staging: Staging;
  /** The standby's DATA_PATH, held open: every change in it goes through this (unset in a dry run). */
  data?: DirHandle;
  settled: Awaited<ReturnType<typeof settlePlan>>;
  fetchMs: number;
  inventoryMs: number;
}

/**
 * Collect every source and fetch the chosen restore point into a staging directory — the part of a
 * promotion that changes nothing, so it runs while the fence is still out (a dead host's SSH, a slow
 * image copy no longer wait for it, nor it for them).
 */
async function prepare(
  ctx: Ctx,
  standby: StandbyConfig,
  collecting: Promise<Prepared['collected']>,
  copies: { lastResort?: LastResort; fetched: SourceSpec[] },
  at: Date,
  signal: AbortSignal,
  began: number,
): Promise<Prepared> {
  const { config, options } = ctx;
  const otherFilesystem = ctx.args.otherFilesystem === true;
  const expectedOf = (c: Prepared['collected']) =>
    expectedFilesystem(config, options.metaid, c.map((x) => x.inventory), otherFilesystem);
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
    stagingDir = ctx.dryRun ? await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-promote-')) : path.join(standby.dataPath, `${STAGING_PREFIX}${stamp(at)}`);
    // In DATA_PATH, which the MooseFS user owns: made exclusively, and used only through its held descriptor.
    if (!ctx.dryRun) {
      data = await DirHandle.open(standby.dataPath, 'standby.dataPath');
      privateDir = await data.makePrivateDir(path.basename(stagingDir), 'staging directory');
    }
    const staging = new Staging(privateDir?.at ?? stagingDir, new Map(collected.flatMap((c) => (c.files ? [[c.spec.ref.name, c.files] as const] : []))), daemonSide.mirror?.store ?? mirrorOf(ctx.config), privateDir);
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

async function release(p: Prepared | undefined): Promise<void> {
  if (!p) return;
  await p.staging.remove();
  await p.data?.close();
  await closeSources(p.collected);
}

/**
 * Promote with the daemon's mirror holding still (a pass must not rewrite a file while it is staged from),
 * and its SYN hold kept until this promotion's mfsmaster has started.
 */
async function promote(
  ctx: Ctx,
  standby: StandbyConfig,
  others: MasterHost[],
  force: boolean,
  lockNote?: string,
): Promise<JobResult> {
  const { mirror, hold } = daemonSide;
  mirror?.pause();
  hold?.claim();
  try {
    return await promoteNow(ctx, standby, others, force, lockNote);
  } finally {
    mirror?.resume();
    hold?.unclaim();
  }
}

/** `lockNote`: the standby's lock named a process that is no mfsmaster there (said among the lines). */
async function promoteNow(
  ctx: Ctx,
  standby: StandbyConfig,
  others: MasterHost[],
  force: boolean,
  lockNote?: string,
): Promise<JobResult> {
  const { config } = ctx;
  const timings: Timings = { startupMs: Math.round(ctx.startedAt.getTime() - triggeredAt(ctx)) };
  const began = Date.now();
  // 1. Fence, and 2. collect and fetch, side by side; nothing is changed before fencing says go.
  const stopCollecting = new AbortController();
  const deadHosts = new Map(others.map((m) => [m.name, new AbortController()]));
  const fencing = fence(ctx, others, (m, a) => {
    // Fencing found the old master's machine dead: do not wait for SSH to it as well.
    if (a.reachability === 'unreachable' && m.host === m.cliHost) deadHosts.get(m.name)?.abort(new Error(`${m.name}: host unreachable (${a.detail})`));
  });
  // An off-site copy (the last resort) is a source like the others: connected to and listed in time.
  const copyWithin = { seconds: ctx.options.sourceTimeoutSeconds, setting: 'jobs.promote.sourceTimeoutSeconds' };
  const { specs: ownSpecs, notes, lastResort } = await sourceSpecs(config, others, ctx.signal, copyWithin);
  if (lockNote) notes.unshift(lockNote);
  const fetched: SourceSpec[] = [];
  try {
    const specs = ownSpecs.map((s) => (daemonSide.mirror ? { ...s, open: async (signal: AbortSignal) => (await daemonSide.mirror?.borrow(s.ref.name, s.dir)) ?? s.open(signal) } : s));
    const signal = AbortSignal.any([ctx.signal, stopCollecting.signal]);
    const collecting = collectSources(specs, { timeoutMs: ctx.options.sourceTimeoutSeconds * 1000, signal, abortFor: (name) => deadHosts.get(name)?.signal });
    const preparing = prepare(ctx, standby, collecting, { lastResort, fetched }, new Date(), signal, began);
    // Settled either way, so that a refusal never leaves it unhandled.
    preparing.catch(() => undefined);
    const answers = await fencing;
    timings.fenceMs = Date.now() - began;
    const alive = aliveMasters(answers);
    if (alive.length > 0 && !force) {
      stopCollecting.abort(new Error('fencing refused'));
      await release(await preparing.catch(() => undefined));
      const vip = await giveVipBack(ctx, standby);
      return {
        status: 'CRITICAL',
        summary: `refusing to promote: ${alive.map(describeFence).join('; ')} (split brain; --force overrides)${vip.note}`,
        details: { fence: answers, changed: false, vipReleased: vip.released },
        lines: answers.map(describeFence),
      };
    }
    const prepared = await preparing;
    timings.inventoryMs = prepared.inventoryMs;
    timings.fetchMs = prepared.fetchMs;
    try {
      return await restore(ctx, standby, { answers, forced: alive.length > 0, collected: prepared.collected, notes, timings }, prepared);
    } finally {
      await release(prepared);
    }
  } finally {
    // A copy's snapshot fetched for this promotion (the store was gone): the placed files are the restore's now.
    await Promise.all([...ownSpecs, ...fetched].map((s) => s.release?.().catch(() => undefined)));
  }
}

async function restore(ctx: Ctx, standby: StandbyConfig, f: Findings, prepared: Prepared): Promise<JobResult> {
  const { staging, settled, stagingDir } = prepared;
  const at = new Date();
  const lines = [...f.answers.map((a) => `fence: ${describeFence(a)}`), ...sourceLines(f), ...settled.dropped];
  if ('failure' in settled) {
    // The first reason in the one line a pager shows: "no usable image" alone hides a dead link or a refused sshd.
    const why = [...f.collected.flatMap((c) => (c.inventory.error ? [`${c.inventory.source.name}: ${c.inventory.error}`] : [])), ...settled.dropped][0];
    return { status: 'CRITICAL', summary: `${settled.failure}${why ? ` (${why})` : ''}; nothing changed`, details: { fence: f.answers, sources: sourceDetails(f), changed: false }, lines };
  }
  const { plan } = settled.choice;
  if (plan.image.empty && plan.steps.length === 0) {
    return { status: 'CRITICAL', summary: `the only restore point is an empty filesystem (${plan.image.source}:${plan.image.name}, no changelogs): not promoting`, lines };
  }
  lines.push(...planLines(plan));
  if (ctx.dryRun) return { status: 'OK', summary: `dry run: would restore metadata version ${plan.reached} from ${sourcesUsed(plan).join(', ')}`, details: planDetails(f, settled), lines };
  // 3. Restore. Check the VIP once more right before acting: the boot flap may have taken it.
  if (standby.vip && !ctx.args.force && !(await vipHeld(standby.vip, ctx.signal))) {
    return { status: 'CRITICAL', summary: `virtual IP ${standby.vip} was lost while collecting: not promoting; nothing changed`, lines };
  }
  const mark = Date.now();
  const placements = await preparePlacements(plan, settled, staging, ctx.signal);
  const aside = await moveAside(prepared.data!, at, [path.basename(stagingDir)]);
  await placeFiles(prepared.data!, placements.files);
  f.timings.placeMs = Date.now() - mark;
  if (staging.reused > 0) lines.push(`warm standby: ${staging.reused} bytes taken from the mirror, ${staging.bytes} fetched`);
  return await startAndReport(ctx, standby, f, settled, { aside, placements, stagingBytes: staging.bytes, mirroredBytes: staging.reused, lines });
}

interface Acted {
  aside: MovedAside;
  placements: { files: Placement[]; reachedTimestamp?: number };
  stagingBytes: number;
  mirroredBytes: number;
  lines: string[];
}

async function startAndReport(ctx: Ctx, standby: StandbyConfig, f: Findings, settled: SettledPlan, acted: Acted): Promise<JobResult> {
  const { plan } = settled.choice;
  const timeoutMs = ctx.options.startTimeoutSeconds * 1000;
  const details = { ...planDetails(f, settled), aside: acted.aside };
  const lines = [...acted.lines, acted.aside.dir ? `previous DATA_PATH content moved to ${acted.aside.dir}` : 'DATA_PATH was empty'];
  if (acted.placements.files.some((p) => p.name === RESTORED_SESSIONS)) lines.push(`${RESTORED_SESSIONS} restored beside the image: clients from before the failover keep their sessions`);
  const restoreBegan = Date.now();
  // No abort signal: once the restore runs it runs to its end (a killed start would leave a half-started master).
  const start = await restoreStandby(ctx.config, standby, acted.placements.files, { timeoutMs });
  const { command } = start;
  if (start.code !== 0) return { status: 'CRITICAL', summary: `${command} failed: ${mfsmasterErrorLine(start.output)}`, details, lines };
  if (start.chunkIds) lines.push(describeChunkIds(start.chunkIds));
  // It listens: the clients held at the VIP get through on their next SYN.
  const clientsHeld = daemonSide.hold?.holding ?? false;
  await daemonSide.hold?.release();
  const status = await waitServing({ host: standby.cliHost, port: standby.cliPort, bin: ctx.config.mfscliBin, generation: ctx.config.moosefs.generation, timeoutMs });
  const servedAt = Date.now();
  f.timings.restoreMs = servedAt - restoreBegan;
  // A 1.x master does not report its version: what mfsmetarestore wrote is what it serves.
  const served = status.metadataVersion ?? start.restoredVersion ?? 0;
  const stop = () => stopMaster({ configFile: standby.masterConfig, bin: start.binaries.mfsmaster, generation: start.binaries.generation });
  if (served < plan.reached) {
    await stop();
    return { status: 'CRITICAL', summary: `mfsmaster came up at metadata version ${served}, expected ${plan.reached}: stopped it again`, details, lines };
  }
  // After acting: still ours? A master without the VIP is a second master nobody should reach.
  if (standby.vip && !ctx.args.force && !(await vipHeld(standby.vip))) {
    await stop();
    return { status: 'CRITICAL', summary: `virtual IP ${standby.vip} was lost during the promotion: mfsmaster stopped again`, details, lines };
  }
  const seconds = (ms: number) => Math.round(ms) / 1000;
  // Not waited for: a synchronous up-script's ucarp announces the VIP only once promote has returned.
  const clients = ctx.options.clientsWaitSeconds > 0 ? await clientsBack(ctx, standby, start.binaries.generation, served) : undefined;
  if (clients) lines.push(describeClientsWatch(clients, ctx.options.clientsWaitSeconds));
  const rtoSeconds = seconds(servedAt - triggeredAt(ctx));
  const restoreSeconds = seconds(start.durationMs);
  const rpoVersions = Math.max(0, plan.newest - plan.reached);
  const newestTimestamp = Math.max(0, ...settled.choice.group.changelogs.map((c) => c.lastTimestamp ?? 0));
  const rpoSeconds = acted.placements.reachedTimestamp !== undefined && newestTimestamp > 0 ? Math.max(0, newestTimestamp - acted.placements.reachedTimestamp) : undefined;
  const metrics: Metric[] = [
    metric('rto_seconds', rtoSeconds),
    metric('restore_seconds', restoreSeconds),
    metric('overhead_seconds', Math.max(0, seconds(servedAt - triggeredAt(ctx) - start.durationMs))),
    metric('rpo_versions', rpoVersions),
    ...(rpoSeconds !== undefined ? [metric('rpo_seconds', rpoSeconds)] : []),
    metric('metadata_version', served),
    metric('fetched_bytes', acted.stagingBytes),
    metric('mirrored_bytes', acted.mirroredBytes),
  ];
  const warnings = [
    ...(rpoVersions > 0 ? [`${rpoVersions} versions lost (holes ${plan.holes.map(formatHole).join(', ') || '-'})`] : []),
    ...cutTails(settled, start.binaries.generation, !!start.chunkIds && !('error' in start.chunkIds)),
    ...(f.forced ? ['forced past fencing'] : []),
    ...(settled.choice.others.length > 0 ? [`other filesystems seen and not used: ${settled.choice.others.map((o) => `metaid ${o.metaid ?? '?'} on ${o.sources.join(', ')}`).join('; ')}`] : []),
  ];
  const summary = `promoted: serving metadata version ${served} in ${rtoSeconds.toFixed(2)} s from ${sourcesUsed(plan).join(' + ')}; RPO ${rpoVersions} versions${warnings.length ? `; ${warnings.join('; ')}` : ''}`;
  return {
    status: warnings.length ? 'WARNING' : 'OK',
    summary,
    details: { ...details, handedOff: typeof ctx.args.triggeredAtMs === 'number', triggeredBy: ctx.args.trigger === 'vip' ? 'vip' : 'hook', metadataVersion: served, moosefs: status.softwareVersion, restoreCommand: command, chunkIds: start.chunkIds ?? null, rtoSeconds, restoreSeconds, rpo: { versions: rpoVersions, seconds: rpoSeconds ?? null }, timings: f.timings, fetchedBytes: acted.stagingBytes, mirroredBytes: acted.mirroredBytes, clients: clients ?? null, clientsHeld, changed: true },
    metrics,
    lines: [...lines, `timings (ms): ${Object.entries(f.timings).map(([k, v]) => `${k.replace(/Ms$/, '')} ${v}`).join(', ')}`],
  };
}

/** The watch for the clients coming back (clients-watch.ts), on the ports this master listens on, started and left running. */
async function clientsBack(ctx: Ctx, standby: StandbyConfig, generation: Generation, served: number): Promise<ClientsWatchStarted> {
  const port = await configPort(standby);
  const ignore = ctx.config.masters.flatMap((m) => [m.host, m.cliHost]);
  const request = {
    clientPort: port(generation.listenKeys.cl.port, standby.cliPort),
    chunkserverPort: port(generation.listenKeys.cs.port, 9420),
    ignore,
    since: triggeredAt(ctx),
    timeoutMs: ctx.options.clientsWaitSeconds * 1000,
    stateDir: ctx.config.stateDir,
    textfileDir: ctx.config.prometheus.textfileDir,
    promotedAt: ctx.startedAt.toISOString(),
    metadataVersion: served,
  };
  const { clientWatches } = daemonSide;
  return startClientsWatch(request, clientWatches ? { log: ctx.log, watches: clientWatches } : undefined);
}

/** A port the standby's mfsmaster.cfg sets (or the default when it does not). */
async function configPort(standby: StandbyConfig): Promise<(key: string, fallback: number) => number> {
  const cfg = await readMfsConfig(standby.masterConfig).catch(() => ({}) as Record<string, string>);
  return (key, fallback) => Number.parseInt(cfg[key] ?? '', 10) || fallback;
}

/** The port the standby's master serves clients on (MATOCL_LISTEN_PORT; MATOCU_ before 1.6.5). */
async function clientPort(standby: StandbyConfig): Promise<number> {
  const port = await configPort(standby);
  return port('MATOCL_LISTEN_PORT', port('MATOCU_LISTEN_PORT', standby.cliPort));
}

/** Every port the standby's master will listen on, whatever its generation calls the keys (for the SYN hold). */
async function masterPorts(standby: StandbyConfig): Promise<number[]> {
  const port = await configPort(standby);
  const defaults = { ml: 9419, cs: 9420, cl: standby.cliPort } as const;
  const ports = GENERATIONS.flatMap((g) => (['ml', 'cs', 'cl'] as const).flatMap((k) => (g.listenKeys[k] ? [port(g.listenKeys[k]!.port, defaults[k])] : [])));
  return [...new Set(ports)].sort((a, b) => a - b);
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
  return [`${last.source}:${last.name} ended mid-line: changes after version ${settled.choice.plan.reached - 1} were still in its writer's buffer and are lost${chunkIds}`];
}

/** What the restore did to the image's next chunk id (lib/moosefs/restore.ts raiseNextChunkId), for the log. */
function describeChunkIds(c: ChunkIdsRaised): string {
  if ('error' in c) return c.error;
  const until = new Date(c.lockedUntil * 1000).toISOString();
  const locked = c.locked > 0 ? `; ${c.locked} chunks written just before the failure stay locked until ${until}` : '';
  const why = 'past any the lost changes used (the master reuses them otherwise)';
  return `next chunk id raised from ${c.from} to ${c.to}, ${why}${locked}`;
}

/**
 * When the hook fired: the start of this process when ucarp/keepalived started it for this run
 * (Node's own start-up counts against the RTO too), else the job's start.
 */
/** When the hook was called: this process's start, or (handed off to the daemon) the hook process's. */
function triggeredAt(ctx: Ctx): number {
  const jobStart = ctx.startedAt.getTime();
  const handedOff = ctx.args.triggeredAtMs;
  const processStart = typeof handedOff === 'number' ? handedOff : performance.timeOrigin;
  return jobStart - processStart < 30_000 && processStart <= jobStart ? processStart : jobStart;
}

