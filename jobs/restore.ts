// Point-in-time recovery, as the runbook does it: take a restore point (a snapshot of the store, or a
// metalogger's DATA_PATH), cut its changelogs at the target version or time, check the cut is sound
// (inside what the restore point covers, no hole, no damaged line before it) — all in a staging
// directory — and only then move the DATA_PATH's old content aside, place the image and the cut
// changelog, and say how to start the master (or start it with --start and wait until it serves).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DIR_MODE } from '../lib/core/atomic.js';
import { DirHandle } from '../lib/core/dirhandle.js';
import { jobOptionsSchema } from '../lib/core/config.js';
import { ChainError, ConfigError, ProcessError, UsageError, describeError } from '../lib/core/errors.js';
import { defineJob, type JobContext, type JobResult, type Metric, type Status } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import { chooseSource, describeSource, identityGate, place, type RestoreSource } from '../lib/restore/source.js';
import { ImagesTooNew, preferRealImages, type PlacedRestorePoint } from '../lib/restore/restorepoint.js';
import { moveAside, stamp, type MovedAside } from '../lib/failover/standby.js';
import { listDataPath, readSourceImageHeader, RESTORED_SESSIONS } from '../lib/moosefs/datapath.js';
import { restoringBinaries, type Binaries } from '../lib/moosefs/generations/binaries.js';
import { generationsReading, type Generation } from '../lib/moosefs/generations/index.js';
import { masterStatus, waitServing, type MasterTarget } from '../lib/moosefs/master.js';
import { MasterCfg } from '../lib/moosefs/master-cfg.js';
import { daemonLock, mfsmasterErrorLine, runningMasterPid } from '../lib/moosefs/mfsmaster.js';
import { restoreAndStart, restoreCommandLine } from '../lib/moosefs/roll-forward.js';
import { isWithin } from '../lib/core/paths.js';
import { selfChangesSince } from '../lib/moosefs/self-changes.js';
import { listSnapshots } from '../lib/store/manifest.js';
import { storeKeys } from '../lib/store/stored-file.js';
import { openSource } from '../lib/transport/remote.js';
import { cutChain, CutRefused, type CutResult } from '../lib/restore/cut-files.js';
import {
  checkTrash,
  describeTarget,
  parseTarget,
  TARGET_ARGS,
  type ChangeRef,
  type RestoreTarget,
  type TrashCheck,
} from '../lib/restore/target.js';
import { describeImageVersion, restoreFrom } from '../lib/moosefs/metadata.js';

const restoreOptions = jobOptionsSchema({
  /** Parent of the staging directories (default `<stateDir>/restore`); never inside the DATA_PATH restored. */
  scratchDir: z
    .string()
    .refine((p) => path.isAbsolute(p), 'expected an absolute path')
    .optional(),
  /** The restored master's mfsmaster.cfg (its DATA_PATH must be --data-path); default standby.masterConfig, else /etc/mfs/mfsmaster.cfg. */
  masterConfig: z
    .string()
    .refine((p) => path.isAbsolute(p), 'expected an absolute path')
    .optional(),
  mfsmasterBin: z.string().min(1).optional(),
  restoreTimeoutSeconds: z.number().positive().default(3600),
  servingTimeoutSeconds: z.number().positive().default(120),
});
type RestoreOptions = z.infer<typeof restoreOptions>;
/** The command line (flags and help: its card in lib/core/job-cards.ts). */
const restoreArgs = z.strictObject({
  snapshot: z.string().optional(),
  from: z.string().optional(),
  latest: z.boolean().optional(),
  ...TARGET_ARGS,
  dataPath: z.string().optional(),
  start: z.boolean().optional(),
  masterConfig: z.string().optional(),
  otherFilesystem: z.boolean().optional(),
});
type Ctx = JobContext<RestoreOptions, z.infer<typeof restoreArgs>>;

/** Staging directories are `<scratchDir>/stage-XXXXXX`; a killed run's are removed by the next. */
const STAGE_PREFIX = 'stage-';
/** The restored image's name in DATA_PATH: a master's own last saved image. */
const RESTORED_IMAGE = 'metadata.mfs.back';
const DEFAULT_MASTER_CONFIG = '/etc/mfs/mfsmaster.cfg';
/** How long a live master may take to say its metaid when no cluster identity is recorded. */
const IDENTITY_TIMEOUT_MS = 5_000;

const iso = (unix: number) => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
const change = (c: ChangeRef) => `version ${c.version} at ${iso(c.timestamp)} (${c.op})`;

/** The restore points to try, best first: `--latest` is every snapshot newest first (the newest whose image is older than the target wins). */
async function candidates(ctx: Ctx, target: RestoreTarget): Promise<RestoreSource[]> {
  const { args, config } = ctx;
  const given = [args.snapshot !== undefined, args.from !== undefined, args.latest === true].filter(Boolean).length;
  if (given === 0)
    throw new UsageError(
      '--latest',
      'say which restore point to restore from: --snapshot ID, --latest or --from SOURCE',
    );
  const first = await chooseSource(config, { key: '--from' }, args);
  if (first.kind !== 'snapshot' || args.latest !== true || target.kind === 'newest') return [first];
  const { snapshots } = await listSnapshots(config.snapshotStore!.path, await storeKeys(config));
  const newestFirst = snapshots.filter((s) => s.id !== first.snapshot.id).reverse();
  const all = preferRealImages([first.snapshot, ...newestFirst]);
  // An image newer than a version target can never serve it: skip those without copying them.
  const usable = target.kind === 'version' ? all.filter((s) => s.manifest.image.version <= target.version) : all;
  return (usable.length ? usable : [all[all.length - 1]!]).map((snapshot) => ({ kind: 'snapshot', snapshot }));
}

/** The DATA_PATH to restore into: a directory no master or metalogger runs in (created when missing). */
async function checkDataPath(dataPath: string): Promise<void> {
  const st = await fs
    .stat(dataPath)
    .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (st && !st.isDirectory()) throw new UsageError('--data-path', `--data-path ${dataPath} is not a directory`);
  if (!st) {
    const parent = await fs.stat(path.dirname(dataPath)).catch(() => undefined);
    if (!parent?.isDirectory())
      throw new UsageError('--data-path', `--data-path ${dataPath}: neither it nor its parent directory exists`);
    return;
  }
  const pid = await runningMasterPid(dataPath);
  if (pid !== undefined)
    throw new ProcessError(
      dataPath,
      `${dataPath}: an mfsmaster runs in this DATA_PATH (pid ${pid}, ${path.join(dataPath, '.mfsmaster.lock')}): stop it first; restore never writes into a running master's DATA_PATH`,
    );
  const mlPid = (await daemonLock(dataPath, 'mfsmetalogger')).pid;
  if (mlPid !== undefined) {
    const why = `an mfsmetalogger runs in this DATA_PATH (pid ${mlPid}): restore into a master's DATA_PATH of its own`;
    throw new ProcessError(dataPath, `${dataPath}: ${why}`);
  }
}

interface Staged {
  source: RestoreSource;
  stage: string;
  placed: PlacedRestorePoint & { header: NonNullable<PlacedRestorePoint['header']> };
  cut: CutResult;
  /** Restore points passed over because their image is newer than the target. */
  skipped: string[];
  timings: Timings;
}

/**
 * Seconds per phase (details.timings, bench case `restore`): `place` fetches, checks and decompresses the
 * restore point into staging and scans its changelogs (every candidate tried); `cut` cuts the chain; `dataPath`
 * moves the old content aside and places the files; `mfsmaster` is `mfsmaster -a` until it has started;
 * `serving` the wait until it serves.
 */
type Phase = 'place' | 'cut' | 'dataPath' | 'mfsmaster' | 'serving';
type Timings = Partial<Record<`${Phase}Seconds`, number>>;

/** Seconds since `fromMs`, to the millisecond. */
const since = (fromMs: number) => Math.round(Date.now() - fromMs) / 1000;

/** Copy the candidates into staging one by one until one holds the target; every refusal leaves no staging behind. */
async function stage(ctx: Ctx, root: string, target: RestoreTarget, sources: RestoreSource[]): Promise<Staged> {
  const skipped: string[] = [];
  const timings: Timings = { placeSeconds: 0, cutSeconds: 0 };
  const otherFilesystem = ctx.args.otherFilesystem === true;
  const gate = await identityGate(ctx.config, otherFilesystem, { timeoutMs: IDENTITY_TIMEOUT_MS, signal: ctx.signal });
  for (const [i, source] of sources.entries()) {
    // A DATA_PATH keeps older images too (metadata.mfs.back.N, metadata_ml.mfs.back.N): the newest older than the target.
    let maxImageVersion = target.kind === 'version' ? target.version : undefined;
    for (;;) {
      const dir = await fs.mkdtemp(path.join(root, STAGE_PREFIX));
      let imageVersion: number | undefined;
      try {
        let t = Date.now();
        const passTime = target.kind === 'time' ? target.time : undefined;
        const o = { maxImageVersion, gate, who: 'the restore', passTime };
        const placed = await place(ctx.config, source, dir, ctx.signal, o);
        timings.placeSeconds! += since(t);
        if (!placed.header)
          throw new ChainError(
            path.join(dir, placed.image),
            `${describeSource(source)}: image ${placed.image} is not usable: ${placed.imageProblem}`,
          );
        imageVersion = restoreFrom(placed.header);
        t = Date.now();
        const cut = await cutChain({
          dir,
          changelogs: placed.changelogs,
          imageName: placed.image,
          imageVersion,
          target,
          where: describeSource(source),
          signal: ctx.signal,
          scanned: placed.scans,
        });
        timings.cutSeconds! += since(t);
        return { source, stage: dir, placed: placed as Staged['placed'], cut, skipped, timings };
      } catch (caught) {
        await fs.rm(dir, { recursive: true, force: true });
        const err = caught instanceof ImagesTooNew ? tooNew(target, source, caught) : caught;
        if (!(err instanceof CutRefused && err.refusal.beforeImage)) throw err;
        skipped.push(`${describeSource(source)}: ${err.message}`);
        // A DATA_PATH with an older image still in it: try that one (a time target learns only now that it is needed).
        if (
          source.kind === 'datapath' &&
          imageVersion !== undefined &&
          imageVersion > 1 &&
          (await olderImageIn(ctx, source, imageVersion))
        ) {
          maxImageVersion = imageVersion - 1;
          ctx.log.info('image is newer than the target, trying an older image of the same DATA_PATH', {
            source: describeSource(source),
            below: imageVersion,
          });
          continue;
        }
        if (i === sources.length - 1) throw err;
        ctx.log.info('restore point is newer than the target, trying an older one', { source: describeSource(source) });
        break;
      }
    }
  }
  throw new UsageError('--latest', 'no restore point to restore from');
}

/** A DATA_PATH whose images are all newer than the target: refused the way the cut refuses an image too new. */
function tooNew(target: RestoreTarget, source: RestoreSource, e: ImagesTooNew): CutRefused {
  const message =
    `${describeTarget(target)} is older than ${describeSource(source)}: its oldest image ${e.oldest.name} is at ` +
    `version ${e.oldest.version} (use an older restore point): nothing written`;
  return new CutRefused({ subject: e.subject, beforeImage: true, message });
}

/** Does the DATA_PATH hold a valid image older than `version` (before copying it)? */
async function olderImageIn(
  ctx: Ctx,
  source: Extract<RestoreSource, { kind: 'datapath' }>,
  version: number,
): Promise<boolean> {
  const files = await openSource(ctx.config, source.host, ctx.signal);
  try {
    const listing = await listDataPath(files, source.host.dataPath);
    for (const e of listing.images) {
      const header = await readSourceImageHeader(files, path.posix.join(source.host.dataPath, e.name), e.size).catch(
        () => undefined,
      );
      if (header && !header.empty && header.version < version) return true;
    }
    return false;
  } finally {
    await files.close();
  }
}

/** The binaries that will restore this image here; without an installed mfsmaster, the newest generation writing its magic (for the command shown). */
async function binariesFor(
  ctx: Ctx,
  magic: string,
  where: string,
  needed: boolean,
): Promise<{ binaries?: Binaries; generation: Generation }> {
  try {
    const binaries = await restoringBinaries(ctx.config, magic, where, ctx.options.mfsmasterBin);
    return { binaries, generation: binaries.generation };
  } catch (err) {
    if (needed) throw err;
    ctx.log.warn('cannot tell which mfsmaster would restore this image here', { error: describeError(err) });
    const generation = generationsReading(magic)[0];
    if (!generation) throw err;
    return { generation };
  }
}

/** The restored master's config: --master-config, jobs.restore.masterConfig, standby.masterConfig (same DATA_PATH), or Debian's default. */
function masterConfigOf(ctx: Ctx, dataPath: string): { file: string; key: string } {
  const { args, options, config } = ctx;
  if (typeof args.masterConfig === 'string') return { file: path.resolve(args.masterConfig), key: '--master-config' };
  if (options.masterConfig) return { file: options.masterConfig, key: 'jobs.restore.masterConfig' };
  if (config.standby && path.resolve(config.standby.dataPath) === dataPath)
    return { file: config.standby.masterConfig, key: 'standby.masterConfig' };
  return { file: DEFAULT_MASTER_CONFIG, key: '--master-config' };
}

/**
 * How the restored master is started: with a config whose DATA_PATH is --data-path the command itself;
 * otherwise why the config found does not do and what to do instead — never a command that would run
 * `-a` on the DATA_PATH another config names (a production master's).
 */
interface StartPlan {
  file: string;
  key: string;
  /** Set when `file` starts the restored DATA_PATH. */
  command?: string;
  /** Why `file` does not (unreadable, or another DATA_PATH). */
  problem?: string;
  /** One line for the operator: the command, or what to write and run. */
  advice: string;
}

interface StartFacts {
  generation: Generation;
  binaries?: Binaries;
  dataPath: string;
  changelog?: string;
}

async function startPlan(ctx: Ctx, s: StartFacts): Promise<StartPlan> {
  const { generation, binaries, dataPath, changelog } = s;
  const { file, key } = masterConfigOf(ctx, dataPath);
  const cfg = await MasterCfg.read(file).catch((err: Error) => err);
  const other = cfg instanceof Error ? undefined : cfg.dataPath;
  const given = typeof ctx.args.masterConfig === 'string' || key !== '--master-config';
  const named = given ? `${key} ${file}` : `${file} (no --master-config given)`;
  let problem: string | undefined;
  if (cfg instanceof Error) problem = `${named}: ${cfg.message}`;
  else if (other === undefined || path.resolve(other) !== dataPath) {
    problem = `${named} has DATA_PATH = ${other ?? '(not set)'}, not ${dataPath}`;
  }
  if (!problem) {
    const command = startCommand(generation, binaries, file, dataPath, changelog);
    return { file, key, command, advice: `start it with: ${command}` };
  }
  const command = startCommand(generation, binaries, 'FILE', dataPath, changelog);
  const advice =
    `no mfsmaster.cfg for ${dataPath} (${problem}): write one with DATA_PATH = ${dataPath} (a copy of the master's ` +
    `with that line changed, its own ports), then start it with: ${command} ` +
    '(or restore again with --master-config FILE --start)';
  return { file, key, problem, advice };
}

/** The command that restores and starts the master (shown, or run by --start: restoreCommandLine, one for both). */
function startCommand(
  generation: Generation,
  binaries: Binaries | undefined,
  configFile: string,
  dataPath: string,
  changelog: string | undefined,
): string {
  const files = { dataPath, image: RESTORED_IMAGE, changelogs: changelog ? [changelog] : [] };
  return restoreCommandLine({ ...binaries, generation }, configFile, files);
}

interface Started {
  timings: Timings;
  command: string;
  servedVersion: number;
  selfChanges: string[];
  host: string;
  port: number;
}

/** `--start`: restore and start the master with its config, wait until it serves at the target version. */
async function startRestored(
  ctx: Ctx,
  binaries: Binaries,
  configFile: string,
  dataPath: string,
  changelog: string | undefined,
  expected: number,
): Promise<Started> {
  const { generation } = binaries;
  const cfg = await MasterCfg.read(configFile);
  const host = cfg.localHost(generation, 'cl');
  const port = cfg.listenPort(generation, 'cl')!.port;
  const target: MasterTarget = { host, port, bin: binaries.mfscli, generation: ctx.config.moosefs.generation };
  const ready = () =>
    masterStatus({ ...target, timeoutMs: 1_000 }).then(
      () => true,
      () => false,
    );
  const files = { dataPath, image: RESTORED_IMAGE, changelogs: changelog ? [changelog] : [] };
  const startedMs = Date.now();
  const res = await restoreAndStart(binaries, configFile, files, {
    timeoutMs: ctx.options.restoreTimeoutSeconds * 1000,
    signal: ctx.signal,
    ready,
  });
  if (res.code !== 0)
    throw new ProcessError(dataPath, `${res.command} -c ${configFile} failed: ${mfsmasterErrorLine(res.output)}`);
  const servingMs = Date.now();
  const status = await waitServing({
    ...target,
    timeoutMs: ctx.options.servingTimeoutSeconds * 1000,
    signal: ctx.signal,
  });
  const timings = { mfsmasterSeconds: (servingMs - startedMs) / 1000, servingSeconds: since(servingMs) };
  const served = status.metadataVersion ?? res.restoredVersion ?? expected;
  const facts = { timings, command: res.commandLine, servedVersion: served, host, port };
  if (served === expected) return { ...facts, selfChanges: [] };
  const own = await selfChangesSince(dataPath, generation, expected, served);
  if (own) return { ...facts, selfChanges: own.ops };
  throw new ProcessError(
    `${host}:${port}`,
    `the restored master ${host}:${port} serves metadata version ${served}, expected ${expected}`,
  );
}

function leftOutLine(cut: CutResult): string {
  const l = cut.outcome.leftOut;
  if (l.count === 0) return 'left out: nothing (the target is the newest version the restore point holds)';
  const byOp = Object.entries(l.deletionsByOp)
    .map(([op, n]) => `${op} ${n}`)
    .join(', ');
  return `left out: ${l.count} change(s) after the target, from ${change(l.first!)} to ${change(l.last!)}; ${l.deletions} deletion(s)${byOp ? ` (${byOp})` : ''}`;
}

function metricsOf(version: number, cut: CutResult, trash: TrashCheck): Metric[] {
  return [
    metric('restored_version', version),
    metric('left_out_changes', cut.outcome.leftOut.count),
    metric('left_out_deletions', cut.outcome.leftOut.deletions),
    metric('trash_seconds', trash.seconds),
  ];
}

async function finish(ctx: Ctx, target: RestoreTarget, dataPath: string, s: Staged): Promise<JobResult> {
  const { cut, placed, source } = s;
  const { outcome } = cut;
  const version = outcome.targetVersion;
  const start = ctx.args.start === true;
  const { binaries, generation } = await binariesFor(
    ctx,
    placed.header.magic,
    `${describeSource(source)}: ${placed.image}`,
    start,
  );
  const reachedAt = outcome.lastApplied?.timestamp ?? outcome.imageTimestamp;
  // Files deleted after the target keep their chunks for their trash time from their deletion on.
  const trash = checkTrash({
    leftOut: outcome.leftOut,
    nowSeconds: Date.now() / 1000,
    smallest: outcome.smallestTrashTime,
    stepSeconds: generation.trashTime.stepSeconds,
    defaultSeconds: generation.trashTime.defaultSeconds,
    generation: generation.label,
  });
  const plan = await startPlan(ctx, { generation, binaries, dataPath, changelog: cut.changelog });
  // Everything --start needs is checked before DATA_PATH changes.
  if (start && plan.problem) {
    const need =
      `--start needs the restored master's mfsmaster.cfg, with DATA_PATH = ` + `${dataPath} (--master-config FILE)`;
    throw new ConfigError(plan.key, `${plan.problem}: ${need}: nothing changed in ${dataPath}`);
  }
  const reached = `metadata version ${version}${reachedAt !== undefined ? ` (last change applied at ${iso(reachedAt)})` : ''}`;
  const lines = [
    `restore point: ${describeSource(source)}: ${placed.image} (${describeImageVersion(placed.header)}) + ${placed.changelogs.length} changelog file(s)`,
    ...(placed.identityNote ? [placed.identityNote] : []),
    ...s.skipped.map((x) => `passed over: ${x}`),
    `target: ${describeTarget(target)} → ${reached}; ${outcome.applied} change(s) applied after the image${cut.changelog ? ` (cut at a whole line into ${cut.changelog})` : ''}`,
    leftOutLine(cut),
    outcome.leftOut.deletions
      ? `trash time: ${trash.seconds} s, from ${trash.basis}`
      : 'trash: no deletion among the changes left out, so nothing comes back that the trash may have emptied',
    ...(trash.warning ? [`WARNING: ${trash.warning}`] : []),
  ];
  const details: Record<string, unknown> = {
    source: describeSource(source),
    image: placed.image,
    imageVersion: placed.header.version,
    target:
      target.kind === 'version'
        ? { toVersion: target.version }
        : target.kind === 'time'
          ? { toTime: target.iso }
          : null,
    restoredVersion: version,
    lastApplied: outcome.lastApplied ? { ...outcome.lastApplied, at: iso(outcome.lastApplied.timestamp) } : null,
    applied: outcome.applied,
    leftOut: { ...outcome.leftOut, first: outcome.leftOut.first ?? null, last: outcome.leftOut.last ?? null },
    trash: { seconds: trash.seconds, basis: trash.basis, warning: trash.warning ?? null },
    dataPath,
    masterConfig: plan.file,
    startCommand: plan.command ?? null,
    moosefs: generation.label,
    passedOver: s.skipped,
    timings: s.timings,
  };
  const status: Status = trash.warning ? 'WARNING' : 'OK';
  const leftOut = outcome.leftOut.count
    ? `; left out ${outcome.leftOut.count} later change(s), ${outcome.leftOut.deletions} of them deletions`
    : '';
  const warn = trash.warning ? ` — WARNING: ${trash.warning}` : '';
  if (ctx.dryRun) {
    return {
      status,
      summary: `dry run: would restore ${describeSource(source)} into ${dataPath} at ${reached}${leftOut}${warn}`,
      lines: [
        ...lines,
        `would move ${dataPath}'s content aside, place ${RESTORED_IMAGE}${cut.changelog ? ` and ${cut.changelog}` : ''}; then ${plan.advice}`,
      ],
      details,
      metrics: metricsOf(version, cut, trash),
    };
  }

  // From here on DATA_PATH changes: its old content goes aside (never deleted), then exactly what the restore needs.
  // DATA_PATH belongs to the MooseFS user: every change in it goes through its held descriptor (lib/core/dirhandle.ts).
  const dataPathMs = Date.now();
  await fs.mkdir(dataPath, { recursive: true, mode: DIR_MODE });
  const data = await DirHandle.open(dataPath, '--data-path');
  const placedNames = [RESTORED_IMAGE];
  let aside: MovedAside;
  try {
    await checkDataPath(dataPath);
    aside = await moveAside(data, ctx.startedAt, []);
    const owner = { uid: data.uid, gid: data.gid };
    await data.place(path.join(s.stage, placed.image), RESTORED_IMAGE, owner);
    if (cut.changelog) {
      await data.place(path.join(s.stage, cut.changelog), cut.changelog, owner);
      placedNames.push(cut.changelog);
    }
    const sessions = path.join(s.stage, RESTORED_SESSIONS);
    if (generation.sessionsFiles.length && (await fs.lstat(sessions).catch(() => undefined))) {
      await data.place(sessions, RESTORED_SESSIONS, owner);
      placedNames.push(RESTORED_SESSIONS);
    }
    await data.sync();
  } finally {
    await data.close();
  }
  s.timings.dataPathSeconds = since(dataPathMs);
  lines.push(
    aside.dir
      ? `moved ${aside.moved.length} existing entr${aside.moved.length === 1 ? 'y' : 'ies'} of ${dataPath} aside into ${aside.dir}`
      : `${dataPath} was empty`,
  );
  lines.push(`placed in ${dataPath}: ${placedNames.join(', ')}`);
  Object.assign(details, { placed: placedNames, movedAside: aside.dir ?? null, restoredAt: stamp(new Date()) });
  const metrics = metricsOf(version, cut, trash);

  if (!start || !plan.command) {
    lines.push(plan.advice);
    return {
      status,
      summary: `${describeSource(source)} restored into ${dataPath} at ${reached}${leftOut}; ${plan.advice}${warn}`,
      lines,
      details,
      metrics,
    };
  }
  const started = await startRestored(ctx, binaries!, plan.file, dataPath, cut.changelog, version);
  const own = started.selfChanges.length
    ? `, then ${started.selfChanges.length} change(s) of its own (${[...new Set(started.selfChanges)].join(', ')})`
    : '';
  lines.push(
    `started: ${started.command}; serving on ${started.host}:${started.port} at metadata version ${started.servedVersion}${own}`,
  );
  Object.assign(s.timings, started.timings);
  Object.assign(details, { started: true, servedVersion: started.servedVersion, selfChanges: started.selfChanges });
  return {
    status,
    summary: `${describeSource(source)} restored into ${dataPath} at ${reached} and serving on ${started.host}:${started.port}${leftOut}${warn}`,
    lines,
    details,
    metrics: [...metrics, metric('served_version', started.servedVersion)],
  };
}

export default defineJob({
  ...CARDS.restore,
  options: restoreOptions,
  args: restoreArgs,
  // A restore and a promotion may aim at the same DATA_PATH (the standby's): one after the other, never both.
  lockName: 'failover',
  lockWaitSeconds: 60,
  async run(ctx) {
    const { config, options, args } = ctx;
    const target = parseTarget(args, config.timezone);
    if (typeof args.dataPath !== 'string')
      throw new UsageError('--data-path', '--data-path DIR is required: the DATA_PATH to rebuild');
    const dataPath = path.resolve(args.dataPath);
    await checkDataPath(dataPath);
    const root = options.scratchDir ?? path.join(config.stateDir, 'restore');
    if (isWithin(root, dataPath) || isWithin(dataPath, root))
      throw new ConfigError(
        options.scratchDir ? 'jobs.restore.scratchDir' : 'stateDir',
        `staging directory ${root} and --data-path ${dataPath} overlap: choose another jobs.restore.scratchDir`,
      );
    await fs.mkdir(root, { recursive: true, mode: DIR_MODE });
    // What a killed run left (the job's lock is ours): only staging copies, never a DATA_PATH.
    for (const n of await fs.readdir(root))
      if (n.startsWith(STAGE_PREFIX)) await fs.rm(path.join(root, n), { recursive: true, force: true });
    const sources = await candidates(ctx, target);
    const staged = await stage(ctx, root, target, sources);
    try {
      return await finish(ctx, target, dataPath, staged);
    } finally {
      await fs.rm(staged.stage, { recursive: true, force: true });
    }
  },
});
