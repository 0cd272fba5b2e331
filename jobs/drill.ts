// The restore drill, as the runbook does it: copy a restore point into a scratch DATA_PATH, run
// `mfsmaster -a` on loopback, prove it serves the version its chain promises, measure RTO and RPO
// against the live master, stop it, clean up. A failed restore keeps its scratch for inspection.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { formatHole, type RollForward } from '../lib/moosefs/chain.js';
import { jobOptionsSchema } from '../lib/core/config.js';
import { describeError, MfsJobsError, ProcessError } from '../lib/core/errors.js';
import { defineJob, type JobContext, type JobResult } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { describeImageVersion, restoreFrom, type ImageHeader } from '../lib/moosefs/metadata.js';
import { generalInfo } from '../lib/moosefs/mfscli.js';
import {
  dataPathOf,
  masterStatus,
  masterVersion,
  targetOf,
  waitServing,
  type MasterStatus,
  type MasterTarget,
} from '../lib/moosefs/master.js';
import { probeAhead, restoringBinaries } from '../lib/moosefs/generations/binaries.js';
import { restoreAndStart } from '../lib/moosefs/roll-forward.js';
import { selfChangesSince } from '../lib/moosefs/self-changes.js';
import { mfsmasterErrorLine } from '../lib/moosefs/mfsmaster.js';
import { ScratchGuard } from '../lib/moosefs/scratch-guard.js';
import { cutChain, type CutResult } from '../lib/restore/cut-files.js';
import { RestorePointRefused } from '../lib/store/identity.js';
import { describeTarget, parseTarget, TARGET_ARGS, type RestoreTarget } from '../lib/restore/target.js';
import type { PlacedRestorePoint } from '../lib/restore/restorepoint.js';
import { chooseSource, describeSource, identityGate, place, type RestoreSource } from '../lib/restore/source.js';
import {
  countsFromInfo,
  drillVerdict,
  formatCounts,
  metricsOf,
  restorePointTime,
  seconds,
  type Counts,
  type LiveMaster,
  type Timings,
} from '../lib/drill/verdict.js';
import {
  checkScratchRoot,
  createScratch,
  killScratchMaster,
  pickPorts,
  productionPorts,
  SCRATCH_HOST,
  clearLeftovers,
  keepScratch,
  stopScratchMaster,
  writeScratchConfig,
  type Leftover,
  type Scratch,
  type ScratchPorts,
} from '../lib/moosefs/scratchmaster.js';

/** Scratch run directories are `<scratchDir>/drill-XXXXXX`. */
const SCRATCH_PREFIX = 'drill';

const port = z.union([z.literal('auto'), z.number().int().min(1).max(65535)]).default('auto');
const drillOptions = jobOptionsSchema({
  /** Parent of the scratch DATA_PATHs (default `<stateDir>/drill`); never inside a production DATA_PATH. */
  scratchDir: z
    .string()
    .refine((p) => path.isAbsolute(p), 'expected an absolute path')
    .optional(),
  /** Metalogger (or master) to drill from when no flag says otherwise; default: the newest snapshot. */
  from: z.string().min(1).optional(),
  /** The scratch master's MATOML/MATOCS/MATOCL_LISTEN_PORT on 127.0.0.1. */
  ports: z
    .strictObject({ matoml: port, matocs: port, matocl: port })
    .default({ matoml: 'auto', matocs: 'auto', matocl: 'auto' }),
  mfsmasterBin: z.string().min(1).optional(),
  restoreTimeoutSeconds: z.number().positive().default(3600),
  servingTimeoutSeconds: z.number().positive().default(120),
  liveTimeoutSeconds: z.number().positive().default(10),
  warnRpoVersions: z.number().int().min(0).optional(),
  warnRpoSeconds: z.number().min(0).default(86_400),
  warnRtoSeconds: z.number().positive().optional(),
  /**
   * Drill even where the scratch master cannot be guarded (no nftables, not root): any local user can
   * then download the restored metadata while it runs. The drill reports WARNING and says so.
   */
  allowUnguarded: z.boolean().default(false),
});
type DrillOptions = z.infer<typeof drillOptions>;
/** The command line (flags and help: its card in lib/core/job-cards.ts). */
const drillArgs = z.strictObject({
  snapshot: z.string().optional(),
  from: z.string().optional(),
  latest: z.boolean().optional(),
  keep: z.boolean().optional(),
  otherFilesystem: z.boolean().optional(),
  ...TARGET_ARGS,
});
type Ctx = JobContext<DrillOptions, z.infer<typeof drillArgs>>;

/** The live master with the highest version among those that answer with one; undefined when none does. */
async function liveMaster(ctx: Ctx): Promise<LiveMaster | undefined> {
  const answers = await Promise.all(
    ctx.config.masters.map(async (m) => {
      const target = targetOf(ctx.config, m, { timeoutMs: ctx.options.liveTimeoutSeconds * 1000, signal: ctx.signal });
      try {
        const status = await masterVersion(target, dataPathOf(ctx.config, m, ctx.signal));
        return { name: m.name, version: status.metadataVersion, counts: await countsOf(status, target) };
      } catch (err) {
        ctx.log.info(`live master ${m.name} not reachable for comparison`, { error: describeError(err) });
        return undefined;
      }
    }),
  );
  return answers.filter((a): a is LiveMaster => a !== undefined).sort((a, b) => b.version - a.version)[0];
}

/** Counts as the master reported them; a master asked through mfscli (3.0) is asked once more (-SIG). */
async function countsOf(status: MasterStatus, target: MasterTarget): Promise<Counts> {
  if (status.fsObjects !== undefined)
    return { fsObjects: status.fsObjects, directories: status.directories, files: status.files };
  return countsFromInfo(await generalInfo(target));
}

/** The scratch master would not restore or serve; `subject` is the command that ran. */
class RestoreFailed extends ProcessError {}

interface Restored {
  /** The scratch master's MooseFS, e.g. "MooseFS 1.6.4". */
  generation: string;
  placed: PlacedRestorePoint;
  chain: RollForward;
  header: ImageHeader;
  version: number;
  /** What the scratch master changed by itself between the restore and the version it served (4.x: IDLE). */
  selfChanges: string[];
  counts: Counts;
  timings: Timings;
  copyStartedMs: number;
  /** `--to-version` / `--to-time`: the chain was cut there (lib/restore). */
  cut?: { target: RestoreTarget; result: CutResult };
}

/** The scratch master's guard (lib/moosefs/scratch-guard.ts), and the line that says what kept others out. */
interface Guarded {
  guard?: ScratchGuard;
  line: string;
}

/** The guard being put up while the files are copied: the guard, the drill's refusal, or what failed. */
type Guarding = Promise<Guarded | JobResult | Error>;

/** The guard could not be put up and the drill refuses (its result says why): no scratch master started. */
class GuardRefused extends MfsJobsError {
  constructor(readonly result: JobResult) {
    super('scratch guard', result.summary);
  }
}

/** The guard once it is up; GuardRefused (or what failed) when it is not. */
async function guardUp(guarding: Guarding): Promise<Guarded> {
  const g = await guarding;
  if (g instanceof Error) throw g;
  if ('status' in g) throw new GuardRefused(g);
  return g;
}

/**
 * Only the user running the drill may reach its scratch master, on every generation: its metalogger port
 * gives the restored image to anyone who asks. Without the guard (no nft, not allowed to change the
 * ruleset) the drill refuses before it copies anything, unless jobs.drill.allowUnguarded says to go on.
 */
async function guardScratch(ctx: Ctx, ports: ScratchPorts): Promise<Guarded | JobResult> {
  const uid = process.getuid?.() ?? 0;
  const g = await ScratchGuard.install(Object.values(ports), uid);
  if (g instanceof ScratchGuard) {
    const only = `its ports on loopback take connections from uid ${uid} only`;
    return { guard: g, line: `scratch master: ${only} (nftables table ${g.table})` };
  }
  const exposed =
    `nft failed (${g.failed}): any local user could download the restored metadata ` +
    "from the scratch master's metalogger port while the drill runs";
  if (!ctx.options.allowUnguarded) {
    const fix = 'install nftables and run it as root, or set jobs.drill.allowUnguarded: true';
    const summary = `drill refused: ${exposed}; ${fix}`;
    return { status: 'UNKNOWN', summary, details: { ports, scratchGuard: null } };
  }
  const line = `scratch master unguarded (jobs.drill.allowUnguarded): ${exposed}`;
  ctx.log.warn(line);
  return { line };
}

/** Copy, restore the way the image's generation does, wait until it serves, read its counts. The caller stops the master. */
async function restore(
  ctx: Ctx,
  source: RestoreSource,
  scratch: Scratch,
  ports: ScratchPorts,
  guarding: Guarding,
): Promise<Restored> {
  const { options, config } = ctx;
  const copyStartedMs = Date.now();
  const cutTarget = parseTarget(ctx.args, config.timezone);
  const otherFilesystem = ctx.args.otherFilesystem === true;
  const timeoutMs = options.liveTimeoutSeconds * 1000;
  const gate = await identityGate(config, otherFilesystem, { timeoutMs, signal: ctx.signal });
  const passTime = cutTarget.kind === 'time' ? cutTarget.time : undefined;
  const copied = await place(config, source, scratch.dataPath, ctx.signal, { gate, who: 'the drill', passTime });
  // `--to-version` / `--to-time`: the same cut `mfs-jobs restore` makes, in the scratch DATA_PATH.
  let placed = copied;
  let cut: Restored['cut'];
  if (cutTarget.kind !== 'newest' && copied.header && copied.chain) {
    const imageVersion = restoreFrom(copied.header);
    const result = await cutChain({
      dir: scratch.dataPath,
      changelogs: copied.changelogs,
      imageName: copied.image,
      imageVersion,
      target: cutTarget,
      where: describeSource(source),
      signal: ctx.signal,
      scanned: copied.scans,
    });
    const version = result.outcome.targetVersion;
    // Damage after the target is never applied; damage before it was refused.
    placed = {
      ...copied,
      changelogs: result.changelog ? [result.changelog] : [],
      chain: { ...copied.chain, reached: version, newest: version, holes: [] },
      damage: [],
    };
    cut = { target: cutTarget, result };
  }
  const copyMs = Date.now() - copyStartedMs;
  ctx.log.info('restore point copied', {
    source: describeSource(source),
    image: placed.image,
    imageVersion: placed.header?.version,
    changelogs: placed.changelogs.length,
    bytes: placed.bytes,
    expectedVersion: placed.chain?.newest,
  });
  // An image mfs-jobs cannot read goes to the installed mfsmaster, which gets to say its own word.
  const binaries = await restoringBinaries(config, placed.header?.magic, placed.image, options.mfsmasterBin);
  // The guard goes up beside the copy; the scratch master starts only behind it.
  await guardUp(guarding);
  await writeScratchConfig(scratch, ports, binaries.generation);
  const target: MasterTarget = {
    host: SCRATCH_HOST,
    port: ports.matocl,
    bin: config.mfscliBin,
    generation: config.moosefs.generation,
  };
  const answers = () =>
    masterStatus({ ...target, timeoutMs: 1_000 }).then(
      () => true,
      () => false,
    );
  const files = { dataPath: scratch.dataPath, image: placed.image, changelogs: placed.changelogs };
  const start = await restoreAndStart(binaries, scratch.configFile, files, {
    timeoutMs: options.restoreTimeoutSeconds * 1000,
    signal: ctx.signal,
    ready: answers,
  });
  await fs.writeFile(path.join(scratch.dir, 'mfsmaster-restore.log'), start.output, { mode: 0o600 });
  if (start.code !== 0) {
    const holes = placed.chain?.holes.length
      ? ` (chain check: missing versions ${placed.chain.holes.map(formatHole).join(', ')})`
      : '';
    const image = placed.imageProblem ? ` (image check: ${placed.imageProblem})` : '';
    throw new RestoreFailed(
      start.command,
      `${start.command} failed: ${mfsmasterErrorLine(start.output)}${holes}${image}`,
    );
  }
  const { chain, header } = placed;
  if (!chain || !header)
    throw new RestoreFailed(
      start.command,
      `${start.command} accepted ${placed.image}, but mfs-jobs cannot read it: ${placed.imageProblem}`,
    );
  const servingStartedMs = Date.now();
  const status = await waitServing({ ...target, timeoutMs: options.servingTimeoutSeconds * 1000, signal: ctx.signal });
  const timings: Timings = { copyMs, restoreMs: start.durationMs, servingMs: Date.now() - servingStartedMs };
  // A 1.x master does not report its version: what mfsmetarestore wrote is what it serves.
  const served = status.metadataVersion ?? start.restoredVersion;
  if (served === undefined)
    throw new RestoreFailed(start.command, `${start.command} succeeded, but the restored metadata version is unknown`);
  // Past the chain's newest only by the master's own housekeeping (4.x writes IDLE() at its first tick): the restore reached the chain.
  const own = await selfChangesSince(scratch.dataPath, binaries.generation, chain.newest, served);
  const version = own?.restoredVersion ?? served;
  const selfChanges = own?.ops ?? [];
  return {
    placed,
    chain,
    header,
    version,
    selfChanges,
    counts: await countsOf(status, target),
    generation: `MooseFS ${status.softwareVersion}`,
    timings,
    copyStartedMs,
    cut,
  };
}

/** ", then N more of its own (IDLE)" when the scratch master had already changed something by itself. */
function selfChangesNote(r: Restored): string {
  return r.selfChanges.length
    ? `, then ${r.selfChanges.length} change(s) of its own (${[...new Set(r.selfChanges)].join(', ')})`
    : '';
}

/** The drill's result: the restored master compared with its chain and with the live master. */
function drillResult(
  ctx: Ctx,
  source: RestoreSource,
  r: Restored,
  live: LiveMaster | undefined,
  ports: ScratchPorts,
): JobResult {
  const { placed, chain, header, timings } = r;
  const ageSeconds = (Date.now() - restorePointTime(source, r.copyStartedMs)) / 1000;
  const rtoSeconds = seconds(timings.copyMs + timings.restoreMs + timings.servingMs);
  // RPO counts from when the restored state stopped being current: a cut's target, else the restore point.
  const stateAgeSeconds = r.cut ? Date.now() / 1000 - cutTime(r.cut) : ageSeconds;
  const facts = { expectedVersion: chain.newest, restoredVersion: r.version, restored: r.counts, live, rtoSeconds };
  const verdict = drillVerdict(
    { ...facts, restorePointAgeSeconds: stateAgeSeconds, damage: placed.damage },
    ctx.options,
  );
  const rpo =
    live && verdict.rpoVersions !== undefined
      ? `RPO ${verdict.rpoVersions} versions / ${verdict.rpoSeconds} s (live master ${live.name} at ${live.version})`
      : `RPO unknown (no live master answers; restore point ${Math.round(ageSeconds)} s old)`;
  const summary = `${describeSource(source, true)} restored to metadata version ${r.version} and served; RTO ${rtoSeconds.toFixed(1)} s; ${rpo}`;
  return {
    status: verdict.status,
    summary: verdict.problems.length ? `${verdict.problems.join('; ')} — ${summary}` : summary,
    metrics: metricsOf(placed, chain.newest, r.version, r.counts, timings, verdict, ageSeconds),
    lines: [
      `restore point: ${describeSource(source)}: ${placed.image} (${describeImageVersion(header)}) + ${placed.changelogs.length} changelog file(s), ${placed.bytes} bytes`,
      ...(placed.identityNote ? [placed.identityNote] : []),
      ...(r.cut ? [cutLine(r.cut)] : []),
      `chain: newest version ${chain.newest}; scratch master (${r.generation}) served ${r.version} on ${SCRATCH_HOST}:${ports.matocl}${selfChangesNote(r)}`,
      `RTO ${rtoSeconds.toFixed(2)} s = copy ${seconds(timings.copyMs)} s + restore ${seconds(timings.restoreMs)} s + serving ${seconds(timings.servingMs)} s`,
      `restored: ${formatCounts(r.counts)}`,
      live
        ? `live master ${live.name} (version ${live.version}): ${formatCounts(live.counts)}`
        : 'live master: none answers, no comparison',
    ],
    details: {
      source: describeSource(source),
      image: placed.image,
      imageVersion: header.version,
      changelogs: placed.changelogs,
      expectedVersion: chain.newest,
      restoredVersion: r.version,
      selfChanges: r.selfChanges,
      moosefs: r.generation,
      restored: r.counts,
      live: live ?? null,
      rpoVersions: verdict.rpoVersions ?? null,
      rpoSeconds: verdict.rpoSeconds,
      rtoSeconds,
      timings,
      newestChangeAt: placed.newestChangeMs ? new Date(placed.newestChangeMs).toISOString() : null,
      ...(r.cut ? { target: describeTarget(r.cut.target), leftOut: r.cut.result.outcome.leftOut } : {}),
      ports,
    },
  };
}

/** Unix seconds at which the cut's state stopped being current: T of --to-time T, else the first change left out. */
function cutTime(cut: NonNullable<Restored['cut']>): number {
  const { target, result } = cut;
  if (target.kind === 'time') return target.time;
  const { leftOut, lastApplied, imageTimestamp } = result.outcome;
  return leftOut.first?.timestamp ?? lastApplied?.timestamp ?? imageTimestamp ?? Date.now() / 1000;
}

/** `cut at --to-version N: 12 change(s) left out after it, 3 deletion(s)`: what `restore` with the same target would leave out. */
function cutLine(cut: NonNullable<Restored['cut']>): string {
  const { leftOut, targetVersion } = cut.result.outcome;
  const range = leftOut.first && leftOut.last ? ` (versions ${leftOut.first.version}..${leftOut.last.version})` : '';
  return `cut at ${describeTarget(cut.target)}: version ${targetVersion}; ${leftOut.count} change(s) left out after it${range}, ${leftOut.deletions} of them deletions`;
}

function leftoverLine(l: Leftover): string {
  const stopped =
    l.pid !== undefined ? `stopped a scratch master left by an earlier drill (pid ${l.pid}, ${l.dir})` : '';
  const removed = l.removed ? `removed the scratch of an interrupted drill (${l.dir})` : '';
  return [stopped, removed].filter(Boolean).join('; ');
}

/** After the scratch master is stopped: remove the scratch unless --keep or a failure left evidence. */
async function cleanUp(scratch: Scratch, result: JobResult, keep: boolean): Promise<{ kept: boolean; line: string }> {
  const evidence = result.status === 'CRITICAL' && (await fs.readdir(scratch.dataPath).catch(() => [])).length > 0;
  if (keep || evidence) {
    await keepScratch(scratch, keep ? '--keep' : `failed: ${result.summary}`);
    return { kept: true, line: `scratch kept for inspection: ${scratch.dir}` };
  }
  await fs.rm(scratch.dir, { recursive: true, force: true });
  return { kept: false, line: `scratch removed: ${scratch.dir}` };
}

export default defineJob({
  ...CARDS.drill,
  options: drillOptions,
  args: drillArgs,
  async run(ctx) {
    const { config, options } = ctx;
    const root = options.scratchDir ?? path.join(config.stateDir, 'drill');
    const rootKey = options.scratchDir ? 'jobs.drill.scratchDir' : 'stateDir';
    // A bad --to-version / --to-time is a usage error before anything is copied.
    parseTarget(ctx.args, config.timezone);
    const source = await chooseSource(config, { key: 'jobs.drill.from', from: options.from }, ctx.args);
    await checkScratchRoot(config, root, rootKey);
    if (ctx.dryRun) {
      const ports = await pickPorts(options.ports, await productionPorts(config), 'jobs.drill.ports');
      return {
        status: 'OK',
        summary: `dry run: would restore ${describeSource(source)} into a scratch master on ${SCRATCH_HOST}:${ports.matocl} under ${root}`,
        details: { source: describeSource(source), ports },
      };
    }
    // The installed mfsmaster's -v answer (restoringBinaries), asked while the files are copied.
    probeAhead(config, options.mfsmasterBin);
    // A drill killed mid-way (SIGKILL) leaves its daemonised master running and its copy on disk.
    const leftovers = await clearLeftovers(root, SCRATCH_PREFIX);
    for (const l of leftovers) ctx.log.warn(leftoverLine(l), l);
    // Stale tables go only after the masters they guarded (clearLeftovers); the ports are chosen meanwhile.
    const [stale, ports] = await Promise.all([
      ScratchGuard.clearStale(),
      productionPorts(config).then((reserved) => pickPorts(options.ports, reserved, 'jobs.drill.ports')),
    ]);
    for (const table of stale) ctx.log.warn(`removed nftables table ${table} left by a drill that was killed`);
    // Up while the files are copied, and before the scratch master listens (restore() waits for it there).
    const guarding: Guarding = guardScratch(ctx, ports).catch((err: unknown) =>
      err instanceof Error ? err : new Error(String(err)),
    );
    const scratch = await createScratch(root, SCRATCH_PREFIX).catch(async (err: unknown) => {
      const g = await guarding;
      if (!(g instanceof Error) && !('status' in g)) await g.guard?.remove();
      throw err;
    });
    ctx.log.info('drill started', { source: describeSource(source), scratch: scratch.dir, ports });
    let result: JobResult;
    try {
      const restored = await restore(ctx, source, scratch, ports, guarding);
      result = drillResult(ctx, source, restored, await liveMaster(ctx), ports);
    } catch (err) {
      // No guard, no scratch master: the drill refuses (or fails) as it did before copying, its copy removed.
      const g = await guarding;
      if (g instanceof Error || 'status' in g) {
        await fs.rm(scratch.dir, { recursive: true, force: true });
        if (g instanceof Error) throw g;
        return g;
      }
      const guarded = g;
      if (ctx.signal.aborted) {
        await stopScratchMaster(scratch);
        await guarded.guard?.remove();
        await fs.rm(scratch.dir, { recursive: true, force: true });
        throw err;
      }
      // A restore point the cluster identity refuses is no failed restore: its copy goes, not kept as evidence.
      if (err instanceof RestorePointRefused) await fs.rm(scratch.dataPath, { recursive: true, force: true });
      const reason = err instanceof RestoreFailed ? err.message : describeError(err);
      // The refusal names the restore point itself.
      const summary = err instanceof RestorePointRefused ? err.message : `${describeSource(source, true)}: ${reason}`;
      result = { status: 'CRITICAL', summary, details: { source: describeSource(source), error: reason, ports } };
    }
    const guarded = await guardUp(guarding);
    // Only a scratch that stays (--keep, or kept as evidence of a failure) is worth a clean stop.
    const discard = ctx.args.keep !== true && result.status !== 'CRITICAL';
    const stoppedPid = discard ? await killScratchMaster(scratch) : await stopScratchMaster(scratch);
    // Both once the master is gone: the guard (after its ports close) and the scratch.
    const [closed, cleanup] = await Promise.all([
      guarded.guard?.remove() ?? true,
      cleanUp(scratch, result, ctx.args.keep === true),
    ]);
    if (guarded.guard && !closed)
      ctx.log.warn(`nftables table ${guarded.guard.table} removed while a port of the scratch master still listened`, {
        ports,
      });
    const stopped = `scratch master ${stoppedPid ? `stopped (pid ${stoppedPid})` : 'not running'}; ${cleanup.line}`;
    const lines = [...(result.lines ?? []), ...leftovers.map(leftoverLine), guarded.line, stopped];
    let summary = result.status === 'CRITICAL' && cleanup.kept ? `${result.summary}; ${cleanup.line}` : result.summary;
    // An unguarded drill exposed the metadata: never a plain OK.
    if (!guarded.guard) summary = `scratch master was unguarded (jobs.drill.allowUnguarded) — ${summary}`;
    const status = !guarded.guard && result.status === 'OK' ? 'WARNING' : result.status;
    const kept = { scratch: scratch.dir, scratchKept: cleanup.kept, stoppedPid: stoppedPid ?? null };
    const details = { ...result.details, ...kept };
    return { ...result, status, summary, lines, details: { ...details, scratchGuard: guarded.guard?.table ?? null } };
  },
});
