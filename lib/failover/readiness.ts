import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, StandbyConfig } from '../core/config.js';
import { describeError, MfsJobsError } from '../core/errors.js';
import { execCapture } from '../core/exec.js';
import { octal, pathTrust } from '../core/trusted-path.js';
import type { Status } from '../core/job.js';
import { binariesFor, binaryGeneration, restoringBinaries, type Binaries } from '../moosefs/generations/binaries.js';
import { generationNamed, type Generation } from '../moosefs/generations/index.js';
import { dataPathOf, masterVersion, targetOf } from '../moosefs/master.js';
import { LISTEN_ROLES, MasterCfg } from '../moosefs/master-cfg.js';
import { listening } from '../core/tcp-table.js';
import { closeSources, collectSources, sourceSpecs, type CollectedSource } from './collect.js';
import { expectedFilesystem } from './identity.js';
import { mirroredHosts } from './mirror.js';
import { choosePlan, groupByMetaid, type RestorePlan } from './restore-plan.js';
import { checkGenerationConfig, checkStandby, localMaster } from './standby.js';
import { sourcesUsed } from './report.js';

/**
 * Readiness before failure (Barman's `check`, Patroni's replica health): would a promotion of this standby
 * succeed now? Each question is one promote asks at failover time, asked with promote's own code
 * (checkStandby, checkGenerationConfig, restoringBinaries, sourceSpecs/collectSources, choosePlan), so that
 * anything promote could refuse is found here first; and what promote only meets when mfsmaster starts
 * (binaries that do not run, taken ports, a DATA_PATH its user cannot write or without room) is tried here.
 * The old masters are left out of the sources: at failover their machine is the one that died.
 */

export interface Finding {
  status: Status;
  /** The config key or mfsmaster.cfg setting it concerns (`standby.masterConfig LOCK_FILE`, `metaloggers.0`). */
  setting: string;
  text: string;
}

export interface ReadinessOptions {
  sourceTimeoutMs: number;
  cliTimeoutMs: number;
  lag: { versionsWarn: number; versionsCrit: number; secondsWarn: number; secondsCrit: number };
  /** A mirror whose state has not moved for this long while its source has newer changes is stale. */
  mirrorStaleMs: number;
  signal: AbortSignal;
  now?: number;
}

export interface Readiness {
  findings: Finding[];
  /** Lines that are facts, not problems (what a promotion would start from). */
  notes: string[];
  /** The machine's own master already serves: it is the master, not a standby. */
  serving?: { pid: number; version?: number };
  generation?: Generation;
  binaries?: Binaries;
  plan?: RestorePlan;
  master?: { name: string; version: number };
  lag?: { versions: number; seconds?: number };
  freeBytes?: number;
  neededBytes?: number;
}

const problem = (status: Status, setting: string, text: string): Finding => ({ status, setting, text });

function fromError(err: unknown, fallback: string): Finding {
  const setting = err instanceof MfsJobsError ? err.subject : fallback;
  return problem('CRITICAL', setting, err instanceof MfsJobsError ? err.message : describeError(err));
}

const isDir = (p: string) =>
  fs.stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );

export async function checkReadiness(config: Config, standby: StandbyConfig, o: ReadinessOptions): Promise<Readiness> {
  const r: Readiness = { findings: [], notes: [] };
  // Promote's own first step: the cfg names the DATA_PATH, it exists, no metalogger lives there, a pinned
  // generation's keys are set.
  await checkStandby(config, standby).catch((err: unknown) => r.findings.push(fromError(err, 'standby')));
  // On the serving machine too: its hooks run at the next failover (notify_backup, the down-script).
  await checkHookScripts(standby, r);
  let masterCfg: MasterCfg;
  try {
    masterCfg = await MasterCfg.read(standby.masterConfig);
  } catch (err) {
    r.findings.push(problem('CRITICAL', 'standby.masterConfig', describeError(err)));
    return r;
  }
  const running = await localMaster(config, standby, { waitMs: 0, signal: o.signal });
  if (running.pid !== undefined) {
    if (running.info) r.serving = { pid: running.pid, version: running.info.metadataVersion };
    else {
      const text =
        `mfsmaster (pid ${running.pid}) holds ${standby.dataPath} but does not serve (${running.problem}): ` +
        `promote would refuse to touch it`;
      r.findings.push(problem('CRITICAL', 'standby.dataPath', text));
    }
    return r;
  }
  const master = await askMaster(config, o);
  if ('version' in master) r.master = master;
  else r.notes.push(master.error);
  const cfg = masterCfg.values;
  await checkGeneration(config, standby, cfg, master.generation, r);
  await checkPorts(masterCfg, r);
  const user = await workingUser(cfg, standby);
  if ('problem' in user) r.findings.push(user.problem);
  else await checkWritable(config, standby, cfg, user, r);
  await checkSources(config, standby, o, r);
  await checkRoom(standby, r);
  return r;
}

type MasterAnswer =
  { name: string; version: number; generation: Generation } | { error: string; generation?: undefined };

/** The live master's version (the lag's reference) and generation (which binaries a promotion needs). */
async function askMaster(config: Config, o: ReadinessOptions): Promise<MasterAnswer> {
  const errors: string[] = [];
  for (const m of config.masters) {
    try {
      const target = targetOf(config, m, { timeoutMs: o.cliTimeoutMs, signal: o.signal });
      const s = await masterVersion(target, dataPathOf(config, m, o.signal));
      return { name: m.name, version: s.metadataVersion, generation: s.generation };
    } catch (err) {
      errors.push(describeError(err));
    }
  }
  return { error: `no master answers (${errors.join('; ') || 'none configured'}): the lag behind it is not measured` };
}

/** The binaries a promotion now would restore with, that they run, and the cfg keys their generation needs. */
async function checkGeneration(
  config: Config,
  standby: StandbyConfig,
  cfg: Record<string, string>,
  live: Generation | undefined,
  r: Readiness,
): Promise<void> {
  const pinned = config.moosefs.generation;
  const generation = pinned !== 'auto' ? generationNamed(pinned) : live;
  if (!generation) {
    const text =
      'no master answers and moosefs.generation is auto: which binaries a promotion needs is not known, ' +
      'so they are not checked';
    r.findings.push(problem('WARNING', 'moosefs.generation', text));
    return;
  }
  r.generation = generation;
  await checkBinaries(config, standby, generation, r).catch((err: unknown) => {
    r.findings.push(fromError(err, 'moosefs.prefixes'));
  });
  try {
    checkGenerationConfig(config, standby, generation, cfg);
  } catch (err) {
    r.findings.push(fromError(err, 'standby.masterConfig'));
  }
}

async function checkBinaries(config: Config, standby: StandbyConfig, generation: Generation, r: Readiness) {
  const missing = (b: Binaries, bin: string, why = '') =>
    problem('CRITICAL', b.key, `${b.key}: ${bin} is missing or not executable${why}`);
  let binaries: Binaries;
  try {
    const what = `a ${generation.label} image`;
    binaries = await restoringBinaries(config, generation.imageMagic, what, standby.mfsmasterBin);
  } catch (err) {
    // restoringBinaries asks an unpinned mfsmaster for its version; a missing one deserves its own words.
    const planned = binariesFor(config, generation, standby.mfsmasterBin);
    const there = await executable(planned.mfsmaster);
    r.findings.push(there ? fromError(err, planned.key) : missing(planned, planned.mfsmaster));
    return;
  }
  r.binaries = binaries;
  const { key, mfsmaster } = binaries;
  if (!(await executable(mfsmaster))) {
    r.findings.push(missing(binaries, mfsmaster));
  } else {
    const found = await binaryGeneration(mfsmaster);
    if (!found) {
      const text = `${key}: ${mfsmaster} gives no MooseFS version when asked (-v): it does not run as an mfsmaster`;
      r.findings.push(problem('CRITICAL', key, text));
    } else if (found.generation.imageMagic !== generation.imageMagic) {
      const text =
        `${key}: ${mfsmaster} is MooseFS ${found.version}, which cannot restore ${generation.label}'s ` +
        `"${generation.imageMagic}" images`;
      r.findings.push(problem('CRITICAL', key, text));
    }
  }
  const method = standby.restoreMethod === 'auto' ? generation.restore : standby.restoreMethod;
  if (method !== generation.restore) {
    const text =
      `standby.restoreMethod is ${standby.restoreMethod}, but ${generation.label} restores with ` +
      `${generation.restore}`;
    r.findings.push(problem('CRITICAL', 'standby.restoreMethod', text));
  }
  if (method === 'mfsmetarestore' && !(await executable(binaries.mfsmetarestore))) {
    r.findings.push(missing(binaries, binaries.mfsmetarestore, `; ${generation.label} restores with it`));
  }
}

/** A program that exists and may be executed (a bare name is looked up in PATH, as execve would). */
async function executable(bin: string): Promise<boolean> {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const c of bin.includes('/') ? [bin] : dirs.map((d) => path.join(d, bin))) {
    const st = await fs.stat(c).catch(() => undefined);
    if (
      st?.isFile() &&
      (await fs.access(c, fsc.X_OK).then(
        () => true,
        () => false,
      ))
    )
      return true;
  }
  return false;
}

/** The ports the master will listen on, free (a port taken here makes mfsmaster -a fail after the restore). */
async function checkPorts(cfg: MasterCfg, r: Readiness): Promise<void> {
  if (!r.generation) return;
  for (const role of LISTEN_ROLES) {
    const listen = cfg.listenPort(r.generation, role);
    if (!listen || !(await listening([listen.port]))) continue;
    const text =
      `port ${listen.port} (${listen.key}) is taken: something on this machine already listens there, and the promoted ` +
      `mfsmaster could not`;
    r.findings.push(problem('CRITICAL', `standby.masterConfig ${listen.key}`, text));
  }
}

interface MooseUser {
  name: string;
  uid: number;
  gids: number[];
}

/** WORKING_USER of the cfg (mfsmaster switches to it at start), as this machine knows it. */
type UserOrProblem = MooseUser | { problem: Finding };

async function workingUser(cfg: Record<string, string>, standby: StandbyConfig): Promise<UserOrProblem> {
  const name = cfg.WORKING_USER ?? 'mfs';
  const id = (flag: string) => execCapture('id', [flag, name], { timeoutMs: 5_000 });
  const [uid, groups] = await Promise.all([id('-u'), id('-G')]);
  if (uid.code !== 0) {
    const unset = cfg.WORKING_USER === undefined;
    const who = unset ? 'WORKING_USER is not set and the usual user mfs' : `WORKING_USER = ${name}`;
    const text = `${standby.masterConfig}: ${who} does not exist here: mfsmaster could not switch to it`;
    return { problem: problem('CRITICAL', 'standby.masterConfig WORKING_USER', text) };
  }
  return { name, uid: Number(uid.stdout.trim()), gids: groups.stdout.trim().split(/\s+/).map(Number) };
}

/** Can `user` create files in `dir`? Root: only a read-only filesystem stops it; others: the mode bits. */
async function writableBy(dir: string, user: MooseUser): Promise<boolean> {
  if (user.uid === 0)
    return fs.access(dir, fsc.W_OK).then(
      () => true,
      () => false,
    );
  const st = await fs.stat(dir);
  const bits = st.uid === user.uid ? 0o300 : user.gids.includes(st.gid) ? 0o030 : 0o003;
  return (st.mode & bits) === bits;
}

/** The nearest directory that exists on the way to `dir` (mfsmaster makes the rest of a LOCK_FILE path). */
async function existingAncestor(dir: string): Promise<string> {
  let d = dir;
  while (!(await isDir(d)) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

async function checkWritable(
  config: Config,
  standby: StandbyConfig,
  cfg: Record<string, string>,
  user: MooseUser,
  r: Readiness,
): Promise<void> {
  if (!(await isDir(standby.dataPath))) return; // checkStandby said so
  if (!(await writableBy(standby.dataPath, user))) {
    const text =
      `${config.file}: standby.dataPath ${standby.dataPath} is not writable by the MooseFS user ${user.name} ` +
      `(WORKING_USER in ${standby.masterConfig}): the promoted mfsmaster could not write its metadata`;
    r.findings.push(problem('CRITICAL', 'standby.dataPath', text));
  }
  const lock = r.generation?.lockFile(cfg, standby.dataPath);
  if (lock && path.dirname(lock) !== path.resolve(standby.dataPath)) {
    const dir = await existingAncestor(path.dirname(lock));
    if (await writableBy(dir, user)) return;
    const text =
      `${standby.masterConfig}: LOCK_FILE = ${cfg.LOCK_FILE}: ${dir} is not writable by the MooseFS user ` +
      `${user.name}: the master could not take its lock`;
    r.findings.push(problem('CRITICAL', 'standby.masterConfig LOCK_FILE', text));
  }
}

/** Every source promote would read, read the way promote reads it; the plan it would make; the lag; the mirror. */
async function checkSources(config: Config, standby: StandbyConfig, o: ReadinessOptions, r: Readiness): Promise<void> {
  let collected: CollectedSource[] = [];
  try {
    // Without the off-site copies: with an empty store promote would download the newest snapshot of one,
    // too much for a check every few minutes (verify checks the copies).
    const store = config.snapshotStore;
    const withoutCopies = store ? { ...config, snapshotStore: { ...store, copies: [] } } : config;
    const { specs, notes } = await sourceSpecs(withoutCopies, [], o.signal);
    r.notes.push(...notes);
    if (store && store.copies.length > 0 && !specs.some((s) => s.ref.kind === 'snapshot')) {
      const copies = store.copies.map((c) => c.name).join(' or ');
      r.notes.push(`the snapshot store holds no complete snapshot: a promotion would fetch one from copy ${copies}`);
    }
    if (specs.length === 0) {
      const text = 'no source to promote from: no metaloggers, chunkservers or snapshotStore in the config';
      r.findings.push(problem('CRITICAL', 'metaloggers', text));
      return;
    }
    collected = await collectSources(specs, { timeoutMs: o.sourceTimeoutMs, signal: o.signal });
    for (const { inventory: i } of collected) {
      if (!i.error) continue;
      const text = `source ${i.source.name} (${i.source.kind}) is not reachable: ${i.error}`;
      r.findings.push(problem('WARNING', settingOf(config, i.source.name), text));
    }
    const inventories = collected.map((c) => c.inventory);
    const expected = await expectedFilesystem(config, undefined, inventories);
    const choice = choosePlan(groupByMetaid(inventories).groups, expected?.metaids);
    if (!choice) {
      const of = expected?.known ? ` of metaid ${expected.metaids.join(' or ')}` : '';
      const text = `a promotion now would find no usable metadata image${of} on any source`;
      r.findings.push(problem('CRITICAL', 'metaloggers', text));
      return;
    }
    const { plan } = choice;
    const image = `${plan.image.source}:${plan.image.name}`;
    r.plan = plan;
    if (plan.image.empty && plan.steps.length === 0) {
      const text = `the only restore point is an empty filesystem (${image}): promote would refuse`;
      r.findings.push(problem('CRITICAL', 'metaloggers', text));
    }
    const from = sourcesUsed(plan).join(' + ');
    const steps = `${plan.steps.length} changelog(s)`;
    r.notes.push(`a promotion now would restore metadata version ${plan.reached} from ${from} (${image}, ${steps})`);
    judgeLag(plan, o, r);
    await checkMirror(config, standby, collected, o, r);
  } catch (err) {
    r.findings.push(fromError(err, 'snapshotStore'));
  } finally {
    await closeSources(collected);
  }
}

/** `metaloggers.0`, `chunkservers.1`, `snapshotStore`: the config key of a source. */
function settingOf(config: Config, name: string): string {
  for (const list of ['metaloggers', 'chunkservers', 'masters'] as const) {
    const i = (config[list] as { name: string }[]).findIndex((h) => h.name === name);
    if (i >= 0) return `${list}.${i}`;
  }
  return name.startsWith('copy:') ? 'snapshotStore.copies' : 'snapshotStore';
}

/** How far behind the live master a promotion now would start; the threshold it crosses names the setting. */
function judgeLag(plan: RestorePlan, o: ReadinessOptions, r: Readiness): void {
  if (!r.master) return;
  const versions = Math.max(0, r.master.version - plan.reached);
  const last = plan.steps.at(-1)?.changelog.lastTimestamp;
  const now = (o.now ?? Date.now()) / 1000;
  const seconds = versions === 0 ? 0 : last !== undefined ? Math.max(0, Math.round((now - last) * 10) / 10) : undefined;
  r.lag = { versions, seconds };
  const { lag } = o;
  type Crossed = readonly [Status, string, number];
  const over = (v: number | undefined, warn: number, crit: number, name: string): Crossed[] =>
    v === undefined || v < warn
      ? []
      : v >= crit
        ? [['CRITICAL', `${name}Crit`, crit]]
        : [['WARNING', `${name}Warn`, warn]];
  const crossed = [
    ...over(versions, lag.versionsWarn, lag.versionsCrit, 'lagVersions'),
    ...over(seconds, lag.secondsWarn, lag.secondsCrit, 'lagSeconds'),
  ];
  crossed.sort((x, y) => (x[0] === y[0] ? 0 : x[0] === 'CRITICAL' ? -1 : 1));
  const inSeconds = seconds !== undefined ? ` and ${seconds} s` : '';
  const behind = `${versions} version(s)${inSeconds} behind ${r.master.name} (at version ${r.master.version})`;
  const first = crossed[0];
  if (!first) {
    r.notes.push(`a promotion now would start ${behind}`);
    return;
  }
  const [status, key, limit] = first;
  const setting = `jobs.check-standby.${key}`;
  r.findings.push(problem(status, setting, `it would start ${behind}, over ${setting} = ${limit}`));
}

interface MirrorState {
  updatedAt: string;
  sources: Record<string, { newestVersion: number | null }>;
}

/** standby.mirror: the daemon's mirror keeps up with its sources (mirror.json, written by the daemon's passes). */
async function checkMirror(
  config: Config,
  standby: StandbyConfig,
  collected: readonly CollectedSource[],
  o: ReadinessOptions,
  r: Readiness,
): Promise<void> {
  const hosts = mirroredHosts(config);
  if (!standby.mirror || hosts.length === 0) return;
  const file = path.join(config.stateDir, 'state', 'mirror.json');
  const state = await fs.readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as MirrorState,
    () => undefined,
  );
  if (!state) {
    const text = `standby.mirror is on but ${file} is missing: is mfs-jobs daemon running on this standby?`;
    r.findings.push(problem('WARNING', 'standby.mirror', text));
    return;
  }
  const age = ((o.now ?? Date.now()) - Date.parse(state.updatedAt)) / 1000;
  for (const host of hosts) {
    const inv = collected.find((c) => c.inventory.source.name === host.name)?.inventory;
    if (!inv || inv.error) continue;
    const lines = inv.changelogs.flatMap((c) => c.segments.map((s) => s.last));
    const newest = Math.max(0, ...lines, ...inv.images.map((i) => i.version - 1));
    const mirrored = state.sources[host.name]?.newestVersion ?? undefined;
    if ((mirrored !== undefined && mirrored >= newest) || age * 1000 <= o.mirrorStaleMs) continue;
    const text =
      `standby.mirror: ${host.name} mirrored up to ${mirrored ?? 'nothing'}, the source has ${newest}; the ` +
      `mirror has not moved for ${Math.round(age)} s`;
    r.findings.push(problem('WARNING', 'standby.mirror', text));
  }
}

/** DATA_PATH's filesystem has room for what a promotion places and what the master writes beside it. */
async function checkRoom(standby: StandbyConfig, r: Readiness): Promise<void> {
  const st = await fs.statfs(standby.dataPath).catch(() => undefined);
  if (!st) return;
  r.freeBytes = st.bavail * st.bsize;
  if (!r.plan) return;
  // The image placed, the master's own dump beside it (metadata.mfs.back, then metadata.mfs), the changelogs.
  r.neededBytes = 2 * r.plan.image.size + r.plan.steps.reduce((n, s) => n + s.changelog.size, 0);
  if (r.freeBytes >= r.neededBytes) return;
  const text =
    `standby.dataPath ${standby.dataPath}: ${r.freeBytes} bytes free, a promotion now needs about ` +
    `${r.neededBytes} (the image twice and the changelogs)`;
  r.findings.push(problem('CRITICAL', 'standby.dataPath', text));
}

/**
 * The hook scripts ucarp or keepalived run as root (standby.hookScripts). keepalived with
 * enable_script_security disables a notify script that a non-root user could change (the script or any
 * directory above it) or that is not executable, and says so only in its own log at start-up: the VIP
 * would then move at failover time with no promotion behind it. Root must not run such a script anyway.
 */
async function checkHookScripts(standby: StandbyConfig, r: Readiness): Promise<void> {
  for (const [i, script] of standby.hookScripts.entries()) {
    const setting = `standby.hookScripts.${i}`;
    const trust = await pathTrust(script, 'file');
    if (!trust.trusted) {
      r.findings.push(problem('CRITICAL', setting, `hook script ${trust.why}: keepalived would not run it`));
      continue;
    }
    const st = await fs.stat(trust.real);
    if ((st.mode & 0o100) === 0) {
      const text = `hook script ${script} is not executable by its owner (mode ${octal(st.mode)})`;
      r.findings.push(problem('CRITICAL', setting, text));
      continue;
    }
    const head = await firstBytes(trust.real, 2);
    if (head !== '#!') r.findings.push(problem('CRITICAL', setting, `hook script ${script} does not start with #!`));
  }
}

async function firstBytes(file: string, n: number): Promise<string> {
  const h = await fs.open(file, 'r');
  try {
    const { buffer, bytesRead } = await h.read(Buffer.alloc(n), 0, n, 0);
    return buffer.subarray(0, bytesRead).toString('latin1');
  } finally {
    await h.close();
  }
}
