// The restore drill, as the runbook does it: copy a restore point into a scratch DATA_PATH, run
// `mfsmaster -a` on loopback, prove it serves the version its chain promises, measure RTO and RPO
// against the live master, stop it, clean up. A failed restore keeps its scratch for inspection.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { formatHole, type RollForward } from '../lib/chain.js';
import { allHosts, jobOptionsSchema, type Config, type MasterHost, type MetaloggerHost } from '../lib/config.js';
import { ConfigError, describeError, UsageError } from '../lib/errors.js';
import { defineJob, worst, type JobContext, type JobResult, type Metric, type Status } from '../lib/job.js';
import type { StoredSnapshot } from '../lib/manifest.js';
import type { ImageHeader } from '../lib/metadata.js';
import { generalInfo, infoNumber, masterInfo, type CliTarget } from '../lib/mfscli.js';
import { mfsmasterErrorLine, startMaster, waitServing } from '../lib/mfsmaster.js';
import { openSource } from '../lib/remote.js';
import { pickSnapshot, placeFromDataPath, placeSnapshot, type PlacedRestorePoint } from '../lib/restorepoint.js';
import {
  checkScratchRoot,
  createScratch,
  ensureFreeSpace,
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
} from '../lib/scratchmaster.js';

/** Scratch run directories are `<scratchDir>/drill-XXXXXX`. */
const SCRATCH_PREFIX = 'drill';

const port = z.union([z.literal('auto'), z.number().int().min(1).max(65535)]).default('auto');
const drillOptions = jobOptionsSchema({
  /** Parent of the scratch DATA_PATHs (default `<stateDir>/drill`); never inside a production DATA_PATH. */
  scratchDir: z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path').optional(),
  /** Metalogger (or master) to drill from when no flag says otherwise; default: the newest snapshot. */
  from: z.string().min(1).optional(),
  /** The scratch master's MATOML/MATOCS/MATOCL_LISTEN_PORT on 127.0.0.1. */
  ports: z.strictObject({ matoml: port, matocs: port, matocl: port }).default({ matoml: 'auto', matocs: 'auto', matocl: 'auto' }),
  mfsmasterBin: z.string().min(1).optional(),
  restoreTimeoutSeconds: z.number().positive().default(3600),
  servingTimeoutSeconds: z.number().positive().default(120),
  liveTimeoutSeconds: z.number().positive().default(10),
  warnRpoVersions: z.number().int().min(0).optional(),
  warnRpoSeconds: z.number().min(0).default(86_400),
  warnRtoSeconds: z.number().positive().optional(),
});
type DrillOptions = z.infer<typeof drillOptions>;
type Ctx = JobContext<DrillOptions>;

type RestoreSource = { kind: 'snapshot'; snapshot: StoredSnapshot } | { kind: 'datapath'; host: MasterHost | MetaloggerHost };

/** `--snapshot ID`, `--from NAME`, `--latest`, or the configured default (`jobs.drill.from`, else latest). */
async function chooseSource(config: Config, options: DrillOptions, args: Record<string, unknown>): Promise<RestoreSource> {
  const flags = [args.snapshot !== undefined && '--snapshot', args.from !== undefined && '--from', args.latest === true && '--latest'].filter((f): f is string => Boolean(f));
  if (flags.length > 1) throw new UsageError(flags[1]!, `${flags.join(' and ')} cannot be combined: a drill restores one restore point`);
  const from = typeof args.from === 'string' ? args.from : flags.length === 0 ? options.from : undefined;
  if (from !== undefined) {
    const host = allHosts(config).find((h) => h.name === from);
    const key = typeof args.from === 'string' ? '--from' : 'jobs.drill.from';
    if (!host) throw new UsageError(key, `${key} ${from}: no metalogger or master of that name in ${config.file} (known: ${allHosts(config).map((h) => h.name).join(', ') || 'none'})`);
    return { kind: 'datapath', host };
  }
  if (!config.snapshotStore) throw new ConfigError('snapshotStore.path', `${config.file}: snapshotStore.path is not configured (drill restores a snapshot unless --from METALOGGER is given)`);
  return { kind: 'snapshot', snapshot: await pickSnapshot(config.snapshotStore.path, typeof args.snapshot === 'string' ? args.snapshot : 'latest') };
}

function describeSource(source: RestoreSource, short = false): string {
  if (source.kind === 'snapshot') return `snapshot ${source.snapshot.id}`;
  return short ? `${source.host.role} ${source.host.name}` : `${source.host.role} ${source.host.name} (${source.host.dataPath})`;
}

async function place(ctx: Ctx, source: RestoreSource, dataPath: string): Promise<PlacedRestorePoint> {
  const options = { signal: ctx.signal, ensureSpace: (bytes: number) => ensureFreeSpace(dataPath, bytes) };
  if (source.kind === 'snapshot') return placeSnapshot(source.snapshot, dataPath, options);
  const files = await openSource(ctx.config, source.host, ctx.signal);
  try {
    return await placeFromDataPath(files, source.host.dataPath, dataPath, options);
  } finally {
    await files.close();
  }
}

export interface Counts {
  fsObjects?: number;
  directories?: number;
  files?: number;
}

function countsOf(info: Record<string, string>): Counts {
  return { fsObjects: infoNumber(info, 'all fs objects'), directories: infoNumber(info, 'directories'), files: infoNumber(info, 'files') };
}

function formatCounts(c: Counts): string {
  return `${c.fsObjects ?? '?'} fs objects, ${c.directories ?? '?'} directories, ${c.files ?? '?'} files`;
}

interface LiveMaster {
  name: string;
  version: number;
  counts: Counts;
}

/** The live master with the highest version among those that answer; undefined when none does. */
async function liveMaster(ctx: Ctx): Promise<LiveMaster | undefined> {
  const answers = await Promise.all(
    ctx.config.masters.map(async (m) => {
      const target: CliTarget = { host: m.cliHost, port: m.cliPort, bin: ctx.config.mfscliBin, timeoutMs: ctx.options.liveTimeoutSeconds * 1000, signal: ctx.signal };
      try {
        const info = await masterInfo(target);
        return { name: m.name, version: info.metadataVersion, counts: countsOf(await generalInfo(target)) };
      } catch (err) {
        ctx.log.info(`live master ${m.name} not reachable for comparison`, { error: describeError(err) });
        return undefined;
      }
    }),
  );
  return answers.filter((a): a is LiveMaster => a !== undefined).sort((a, b) => b.version - a.version)[0];
}

export interface DrillFacts {
  expectedVersion: number;
  restoredVersion: number;
  restored: Counts;
  live?: LiveMaster;
  rtoSeconds: number;
  /** Seconds since the restore point was taken (snapshot start, or the copy from a live DATA_PATH). */
  restorePointAgeSeconds: number;
  /** Damaged changelog lines in the restore point (`file:line: reason`): the restore worked without them. */
  damage?: string[];
}

export interface DrillVerdict {
  status: Status;
  problems: string[];
  /** Versions the live master has that the restore point lacks; undefined without a live master. */
  rpoVersions?: number;
  /** 0 when nothing would be lost, else the restore point's age (its worst case without a live master). */
  rpoSeconds: number;
}

/** Pure: what the measured facts mean for an operator. */
export function drillVerdict(f: DrillFacts, t: Pick<DrillOptions, 'warnRpoVersions' | 'warnRpoSeconds' | 'warnRtoSeconds'>): DrillVerdict {
  const found: { status: Status; text: string }[] = [];
  if (f.restoredVersion !== f.expectedVersion) found.push({ status: 'CRITICAL', text: `restored metadata version ${f.restoredVersion}, but the chain's newest version is ${f.expectedVersion}` });
  const gap = f.live ? f.live.version - f.restoredVersion : undefined;
  if (f.live && gap !== undefined && gap < 0) found.push({ status: 'WARNING', text: `the restore point (${f.restoredVersion}) is ahead of live master ${f.live.name} (${f.live.version}): did the master lose changes?` });
  if (f.live && gap === 0) {
    const keys = (['fsObjects', 'directories', 'files'] as const).filter((k) => f.restored[k] !== f.live!.counts[k]);
    if (keys.length) found.push({ status: 'CRITICAL', text: `at the same version the restored metadata differs from live master ${f.live.name}: ${keys.map((k) => `${k} ${f.restored[k]} vs ${f.live!.counts[k]}`).join(', ')}` });
  }
  for (const d of f.damage ?? []) found.push({ status: 'WARNING', text: `damaged changelog ${d}: mfsmaster -a left those lines out` });
  const rpoVersions = gap === undefined ? undefined : Math.max(0, gap);
  const rpoSeconds = rpoVersions === 0 ? 0 : Math.max(0, Math.round(f.restorePointAgeSeconds));
  if (t.warnRpoVersions !== undefined && rpoVersions !== undefined && rpoVersions > t.warnRpoVersions) found.push({ status: 'WARNING', text: `RPO ${rpoVersions} versions exceeds ${t.warnRpoVersions} (jobs.drill.warnRpoVersions)` });
  if (rpoSeconds > t.warnRpoSeconds) found.push({ status: 'WARNING', text: `RPO ${rpoSeconds} s exceeds ${t.warnRpoSeconds} s (jobs.drill.warnRpoSeconds)` });
  if (t.warnRtoSeconds !== undefined && f.rtoSeconds > t.warnRtoSeconds) found.push({ status: 'WARNING', text: `RTO ${f.rtoSeconds.toFixed(1)} s exceeds ${t.warnRtoSeconds} s (jobs.drill.warnRtoSeconds)` });
  return { status: worst(...found.map((p) => p.status)), problems: found.map((p) => p.text), rpoVersions, rpoSeconds };
}

const seconds = (ms: number) => Math.round(ms) / 1000;

interface Timings {
  copyMs: number;
  restoreMs: number;
  servingMs: number;
}

function metricsOf(placed: PlacedRestorePoint, expectedVersion: number, restoredVersion: number, restored: Counts, t: Timings, v: DrillVerdict, ageSeconds: number): Metric[] {
  const m: Metric[] = [
    { name: 'restored_version', value: restoredVersion, help: 'Metadata version the scratch master served after mfsmaster -a.' },
    { name: 'expected_version', value: expectedVersion, help: 'Newest metadata version the restore point\'s chain offers.' },
    { name: 'rto_seconds', value: seconds(t.copyMs + t.restoreMs + t.servingMs), unit: 's', help: 'Copy + restore + until mfscli -SIM answers.' },
    { name: 'copy_seconds', value: seconds(t.copyMs), unit: 's', help: 'Copying (and checksumming) the restore point.' },
    { name: 'restore_seconds', value: seconds(t.restoreMs), unit: 's', help: 'mfsmaster -a start until it daemonised.' },
    { name: 'serving_seconds', value: seconds(t.servingMs), unit: 's', help: 'Until mfscli -SIM answered.' },
    { name: 'copied_bytes', value: placed.bytes, unit: 'B', help: 'Bytes of image and changelogs copied.' },
    { name: 'rpo_seconds', value: v.rpoSeconds, unit: 's', help: 'Changes of this many seconds would be lost (0 when the live master has nothing newer).' },
    { name: 'restore_point_age_seconds', value: Math.round(ageSeconds), unit: 's', help: 'Age of the restore point.' },
  ];
  if (v.rpoVersions !== undefined) m.push({ name: 'rpo_versions', value: v.rpoVersions, help: 'Metadata versions the live master has beyond the restore point.' });
  if (restored.files !== undefined) m.push({ name: 'restored_files', value: restored.files, help: 'Files in the restored metadata (mfscli -SIG).' });
  if (restored.directories !== undefined) m.push({ name: 'restored_directories', value: restored.directories, help: 'Directories in the restored metadata (mfscli -SIG).' });
  return m;
}

/** When the restore point was current: a snapshot's start, or now for a copy from a live DATA_PATH. */
function restorePointTime(source: RestoreSource, copyStartedMs: number): number {
  const at = source.kind === 'snapshot' ? Date.parse(source.snapshot.manifest.startedAt) : NaN;
  return Number.isFinite(at) ? at : copyStartedMs;
}

class RestoreFailed extends Error {}

interface Restored {
  placed: PlacedRestorePoint;
  chain: RollForward;
  header: ImageHeader;
  version: number;
  counts: Counts;
  timings: Timings;
  copyStartedMs: number;
}

/** Copy, `mfsmaster -a`, wait until it serves, read its counts. The caller stops the master. */
async function restore(ctx: Ctx, source: RestoreSource, scratch: Scratch, ports: ScratchPorts): Promise<Restored> {
  const { options, config } = ctx;
  const copyStartedMs = Date.now();
  const placed = await place(ctx, source, scratch.dataPath);
  const copyMs = Date.now() - copyStartedMs;
  ctx.log.info('restore point copied', { source: describeSource(source), image: placed.image, imageVersion: placed.header?.version, changelogs: placed.changelogs.length, bytes: placed.bytes, expectedVersion: placed.chain?.newest });
  const bin = options.mfsmasterBin ?? config.standby?.mfsmasterBin;
  const start = await startMaster({ configFile: scratch.configFile, bin, autoRestore: true, timeoutMs: options.restoreTimeoutSeconds * 1000, signal: ctx.signal });
  await fs.writeFile(path.join(scratch.dir, 'mfsmaster-restore.log'), start.output, { mode: 0o600 });
  if (start.code !== 0) {
    const holes = placed.chain?.holes.length ? ` (chain check: missing versions ${placed.chain.holes.map(formatHole).join(', ')})` : '';
    const image = placed.imageProblem ? ` (image check: ${placed.imageProblem})` : '';
    throw new RestoreFailed(`mfsmaster -a failed: ${mfsmasterErrorLine(start.output)}${holes}${image}`);
  }
  const { chain, header } = placed;
  if (!chain || !header) throw new RestoreFailed(`mfsmaster -a accepted ${placed.image}, but mfs-jobs cannot read it: ${placed.imageProblem}`);
  const servingStartedMs = Date.now();
  const target: CliTarget = { host: SCRATCH_HOST, port: ports.matocl, bin: config.mfscliBin };
  const info = await waitServing({ ...target, timeoutMs: options.servingTimeoutSeconds * 1000, signal: ctx.signal });
  const timings: Timings = { copyMs, restoreMs: start.durationMs, servingMs: Date.now() - servingStartedMs };
  return { placed, chain, header, version: info.metadataVersion, counts: countsOf(await generalInfo(target)), timings, copyStartedMs };
}

/** The drill's result: the restored master compared with its chain and with the live master. */
function drillResult(ctx: Ctx, source: RestoreSource, r: Restored, live: LiveMaster | undefined, ports: ScratchPorts): JobResult {
  const { placed, chain, header, timings } = r;
  const ageSeconds = (Date.now() - restorePointTime(source, r.copyStartedMs)) / 1000;
  const rtoSeconds = seconds(timings.copyMs + timings.restoreMs + timings.servingMs);
  const verdict = drillVerdict({ expectedVersion: chain.newest, restoredVersion: r.version, restored: r.counts, live, rtoSeconds, restorePointAgeSeconds: ageSeconds, damage: placed.damage }, ctx.options);
  const rpo = live && verdict.rpoVersions !== undefined ? `RPO ${verdict.rpoVersions} versions / ${verdict.rpoSeconds} s (live master ${live.name} at ${live.version})` : `RPO unknown (no live master answers; restore point ${Math.round(ageSeconds)} s old)`;
  const summary = `${describeSource(source, true)} restored to metadata version ${r.version} and served; RTO ${rtoSeconds.toFixed(1)} s; ${rpo}`;
  return {
    status: verdict.status,
    summary: verdict.problems.length ? `${verdict.problems.join('; ')} — ${summary}` : summary,
    metrics: metricsOf(placed, chain.newest, r.version, r.counts, timings, verdict, ageSeconds),
    lines: [
      `restore point: ${describeSource(source)}: ${placed.image} (version ${header.empty ? 'MFSM NEW' : header.version}) + ${placed.changelogs.length} changelog file(s), ${placed.bytes} bytes`,
      `chain: newest version ${chain.newest}; scratch master served ${r.version} on ${SCRATCH_HOST}:${ports.matocl}`,
      `RTO ${rtoSeconds.toFixed(2)} s = copy ${seconds(timings.copyMs)} s + restore ${seconds(timings.restoreMs)} s + serving ${seconds(timings.servingMs)} s`,
      `restored: ${formatCounts(r.counts)}`,
      live ? `live master ${live.name} (version ${live.version}): ${formatCounts(live.counts)}` : 'live master: none answers, no comparison',
    ],
    details: {
      source: describeSource(source),
      image: placed.image,
      imageVersion: header.version,
      changelogs: placed.changelogs,
      expectedVersion: chain.newest,
      restoredVersion: r.version,
      restored: r.counts,
      live: live ?? null,
      rpoVersions: verdict.rpoVersions ?? null,
      rpoSeconds: verdict.rpoSeconds,
      rtoSeconds,
      timings,
      newestChangeAt: placed.newestChangeMs ? new Date(placed.newestChangeMs).toISOString() : null,
      ports,
    },
  };
}

function leftoverLine(l: Leftover): string {
  const stopped = l.pid !== undefined ? `stopped a scratch master left by an earlier drill (pid ${l.pid}, ${l.dir})` : '';
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
  name: 'drill',
  description: 'Restore drill: restore a snapshot or a metalogger\'s files into a scratch master on loopback, prove it serves, report RTO/RPO, clean up',
  defaultSchedule: '30 4 * * 0',
  options: drillOptions,
  cliOptions: [
    { flags: '--snapshot <id>', description: 'drill this snapshot of the store' },
    { flags: '--from <metalogger>', description: 'drill from this metalogger\'s DATA_PATH (SFTP, or local)' },
    { flags: '--latest', description: 'drill the newest snapshot (the default, unless jobs.drill.from names a metalogger)' },
    { flags: '--keep', description: 'keep the scratch DATA_PATH afterwards (the scratch master is stopped anyway)' },
  ],
  async run(ctx) {
    const { config, options } = ctx;
    const root = options.scratchDir ?? path.join(config.stateDir, 'drill');
    const rootKey = options.scratchDir ? 'jobs.drill.scratchDir' : 'stateDir';
    const bin = options.mfsmasterBin ?? config.standby?.mfsmasterBin;
    const source = await chooseSource(config, options, ctx.args);
    await checkScratchRoot(config, root, rootKey);
    if (ctx.dryRun) {
      const ports = await pickPorts(options.ports, await productionPorts(config), 'jobs.drill.ports');
      return { status: 'OK', summary: `dry run: would restore ${describeSource(source)} into a scratch master on ${SCRATCH_HOST}:${ports.matocl} under ${root}`, details: { source: describeSource(source), ports } };
    }
    // A drill killed mid-way (SIGKILL) leaves its daemonised master running and its copy on disk.
    const leftovers = await clearLeftovers(root, SCRATCH_PREFIX, bin);
    for (const l of leftovers) ctx.log.warn(leftoverLine(l), l);
    const ports = await pickPorts(options.ports, await productionPorts(config), 'jobs.drill.ports');
    const scratch = await createScratch(root, SCRATCH_PREFIX);
    await writeScratchConfig(scratch, ports);
    ctx.log.info('drill started', { source: describeSource(source), scratch: scratch.dir, ports });
    let result: JobResult;
    try {
      const restored = await restore(ctx, source, scratch, ports);
      result = drillResult(ctx, source, restored, await liveMaster(ctx), ports);
    } catch (err) {
      if (ctx.signal.aborted) {
        await stopScratchMaster(scratch, bin);
        await fs.rm(scratch.dir, { recursive: true, force: true });
        throw err;
      }
      const reason = err instanceof RestoreFailed ? err.message : describeError(err);
      result = { status: 'CRITICAL', summary: `${describeSource(source, true)}: ${reason}`, details: { source: describeSource(source), error: reason, ports } };
    }
    // Only a scratch that stays (--keep, or kept as evidence of a failure) is worth a clean stop.
    const discard = ctx.args.keep !== true && result.status !== 'CRITICAL';
    const stoppedPid = discard ? await killScratchMaster(scratch) : await stopScratchMaster(scratch, bin);
    const cleanup = await cleanUp(scratch, result, ctx.args.keep === true);
    const lines = [...(result.lines ?? []), ...leftovers.map(leftoverLine), `scratch master ${stoppedPid ? `stopped (pid ${stoppedPid})` : 'not running'}; ${cleanup.line}`];
    const summary = result.status === 'CRITICAL' && cleanup.kept ? `${result.summary}; ${cleanup.line}` : result.summary;
    return { ...result, summary, lines, details: { ...result.details, scratch: scratch.dir, scratchKept: cleanup.kept, stoppedPid: stoppedPid ?? null } };
  },
});
