// keepalived's FAULT on a refusal (issue #24, docs/failover.md "keepalived"). keepalived 2.2 runs
// notify_master without waiting and, when promote refuses (the old master still serves: a VRRP partition)
// and takes the VIP away, drops to BACKUP and takes it back one master-down interval later — each time
// with gratuitous ARPs that steal the VIP's traffic from the serving master. A `track_file` with weight 0
// holds the instance in FAULT instead (VIP released, not retaken) while the file holds a non-zero number.
//
// The refusal is mfs-jobs state (`<stateDir>/keepalived-fault.json`); the track file is its projection,
// written only here. It is released when what made promote refuse is gone: no master it found alive still
// accepts connections (a watcher started by the refusal probes them every second; check-standby does too),
// when a promotion succeeds, or when the operator removes the file (keepalived reads a missing file as 0).
import { spawn } from 'node:child_process';
import { constants as fsc, openSync, closeSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FILE_MODE, writeFileAtomic } from '../core/atomic.js';
import type { Config, StandbyConfig } from '../core/config.js';
import { describeError, UsageError } from '../core/errors.js';
import type { Status } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { pathTrust } from '../core/trusted-path.js';
import { probePort, type FenceAnswer } from './fence.js';

const SETTING = 'standby.keepalivedTrackFile';

/** A master whose answer made promote refuse: while it accepts connections the FAULT holds. */
export interface FaultMaster {
  name: string;
  host: string;
  port: number;
}

/** The refusal, as recorded: its time names it (a newer refusal replaces it, and its watcher). */
export interface FaultRecord {
  since: string;
  trackFile: string;
  reason: string;
  masters: FaultMaster[];
}

export function faultRecordFile(stateDir: string): string {
  return path.join(stateDir, 'keepalived-fault.json');
}

function faultLogFile(stateDir: string): string {
  return path.join(stateDir, 'keepalived-fault.log');
}

export async function readFaultRecord(stateDir: string): Promise<FaultRecord | undefined> {
  const text = await fs.readFile(faultRecordFile(stateDir), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<FaultRecord>;
    const ok =
      typeof r.since === 'string' &&
      typeof r.trackFile === 'string' &&
      typeof r.reason === 'string' &&
      Array.isArray(r.masters) &&
      r.masters.every((m) => typeof m.name === 'string' && typeof m.host === 'string' && Number.isInteger(m.port));
    return ok ? (r as FaultRecord) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The number keepalived reads from a track file: strtol of its first bytes, 0 when missing or not a number
 * (keepalived's own reading). Only the first line counts; we put the reason on the next one.
 */
export async function trackFileValue(file: string): Promise<number> {
  const handle = await fs.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW).catch(() => undefined);
  if (!handle) return 0;
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(127), 0, 127, 0);
    const m = /^\s*([+-]?\d+)/.exec(buffer.subarray(0, bytesRead).toString('latin1'));
    return m ? Number(m[1]) : 0;
  } finally {
    await handle.close();
  }
}

/**
 * The track file's directory must be one only root can change (another user could otherwise hold this
 * standby in FAULT for good, or let it flap), and must exist before keepalived starts: keepalived drops a
 * track file whose directory is missing at start-up, saying so only in its log.
 */
async function directoryProblem(trackFile: string): Promise<{ status: Status; text: string } | undefined> {
  const dir = path.dirname(trackFile);
  const trust = await pathTrust(dir, 'dir');
  if (trust.trusted) return undefined;
  if (trust.missing) {
    const text =
      `track file directory ${dir} does not exist: keepalived ignores a track file whose directory is ` +
      `missing when it starts (install -d -m 0700 ${dir}, then restart keepalived); a VRRP partition ` +
      `would flap the VIP`;
    return { status: 'WARNING', text };
  }
  return { status: 'CRITICAL', text: `track file ${trust.why}: another user could hold keepalived in FAULT` };
}

async function project(trackFile: string, fault: boolean, why: string): Promise<void> {
  // keepalived reads the first number; the line after it is for whoever runs `cat` on the file.
  const text = `${fault ? 1 : 0}\n# ${new Date().toISOString()} ${why.replace(/\s+/g, ' ')}\n`;
  await writeFileAtomic(trackFile, text, FILE_MODE);
}

/** The watch of a held FAULT, as a detached process of its own (bin/watch-fault.ts). */
export interface FaultWatchRequest {
  stateDir: string;
  since: string;
  intervalMs: number;
  timeoutMs: number;
}

export function parseFaultWatchRequest(text: string): FaultWatchRequest {
  const r = JSON.parse(text) as Partial<FaultWatchRequest>;
  const ms = (v: unknown) => Number.isFinite(v) && (v as number) > 0 && (v as number) <= 600_000;
  const ok =
    typeof r.stateDir === 'string' &&
    path.isAbsolute(r.stateDir) &&
    typeof r.since === 'string' &&
    ms(r.intervalMs) &&
    ms(r.timeoutMs);
  if (!ok) throw new UsageError('keepalived fault watch request', 'not a keepalived fault watch request');
  return r as FaultWatchRequest;
}

export interface HeldFault {
  /** For promote's summary: how keepalived was told, or why it could not be. */
  note: string;
  record?: FaultRecord;
  watcher?: number;
}

/**
 * Promote refused because `alive` still serve: record the refusal, put keepalived into FAULT through
 * standby.keepalivedTrackFile, and start the watcher that releases it once none of them answers.
 */
export async function holdFault(
  config: Config,
  standby: StandbyConfig,
  alive: readonly FenceAnswer[],
  o: { timeoutMs: number },
): Promise<HeldFault> {
  const trackFile = standby.keepalivedTrackFile;
  if (!trackFile) return { note: '' };
  try {
    const problem = await directoryProblem(trackFile);
    if (problem) return { note: `; keepalived not held in FAULT: ${SETTING}: ${problem.text}` };
    const masters = alive.map((a) => {
      const m = config.masters.find((x) => x.name === a.name)!;
      return { name: a.name, host: m.cliHost, port: m.cliPort };
    });
    const reason = `promote refused: ${alive.map((a) => `${a.name} (${a.address}) ${a.detail}`).join('; ')}`;
    const record: FaultRecord = { since: new Date().toISOString(), trackFile, reason, masters };
    await writeFileAtomic(faultRecordFile(config.stateDir), JSON.stringify(record, null, 2) + '\n');
    await project(
      trackFile,
      true,
      `${reason}; released when ${masters.map((m) => m.name).join(', ')} stop(s) answering`,
    );
    const watcher = await spawnFaultWatcher({
      stateDir: config.stateDir,
      since: record.since,
      intervalMs: 1000,
      timeoutMs: o.timeoutMs,
    }).catch((err: unknown) => describeError(err));
    const names = masters.map((m) => m.name).join(', ');
    // Without its watcher the next check-standby is what releases it.
    const unwatched = typeof watcher === 'string' ? ` (no watcher: ${watcher}; check-standby releases it)` : '';
    const note = `; keepalived held in FAULT (${trackFile}) until ${names} stop(s) answering${unwatched}`;
    return { note, record, watcher: typeof watcher === 'number' ? watcher : undefined };
  } catch (err) {
    return { note: `; could not hold keepalived in FAULT through ${trackFile}: ${describeError(err)}` };
  }
}

/** Release the FAULT: the track file to 0 first (keepalived may take the VIP again), then the record. */
export async function releaseFault(stateDir: string, record: FaultRecord, why: string): Promise<void> {
  if ((await trackFileValue(record.trackFile)) !== 0) await project(record.trackFile, false, why);
  await fs.rm(faultRecordFile(stateDir), { force: true });
}

/** A promotion succeeded: whatever refusal was recorded is over. */
export async function releaseFaultOnPromotion(stateDir: string): Promise<void> {
  const record = await readFaultRecord(stateDir);
  if (record) await releaseFault(stateDir, record, 'released: this standby was promoted');
}

/** Which of the recorded masters still accept connections (what makes promote refuse). */
async function stillAlive(r: FaultRecord, timeoutMs: number, signal?: AbortSignal): Promise<FaultMaster[]> {
  const answers = await Promise.all(
    r.masters.map(async (m) => ({ m, p: await probePort(m.host, m.port, timeoutMs, signal) })),
  );
  return answers.filter((a) => a.p.reachability === 'listening').map((a) => a.m);
}

type Step = { done: false } | { done: true; line: string };

/**
 * One look at a held FAULT: gone (another watcher's, the operator's rm), or released now because no
 * recorded master answers any more, or the operator cleared the track file; else still held.
 */
async function faultStep(stateDir: string, since: string, timeoutMs: number): Promise<Step> {
  const record = await readFaultRecord(stateDir);
  if (!record || record.since !== since) return { done: true, line: 'no longer recorded' };
  if ((await trackFileValue(record.trackFile)) === 0) {
    await releaseFault(stateDir, record, 'released by the operator');
    return { done: true, line: `${record.trackFile} cleared by the operator: refusal of ${record.since} dropped` };
  }
  const alive = await stillAlive(record, timeoutMs);
  if (alive.length > 0) return { done: false };
  const names = record.masters.map((m) => m.name).join(', ');
  await releaseFault(stateDir, record, `released: ${names} no longer answer(s)`);
  return { done: true, line: `keepalived FAULT released: ${names} no longer answer(s) (refusal of ${record.since})` };
}

/** The watcher's loop: until the FAULT is released or no longer its own. Never throws. */
export async function watchFault(req: FaultWatchRequest, log: Logger, signal?: AbortSignal): Promise<void> {
  while (!signal?.aborted) {
    try {
      const step = await faultStep(req.stateDir, req.since, req.timeoutMs);
      if (step.done) {
        log.info(`keepalived fault watch: ${step.line}`, { job: 'keepalived-fault' });
        return;
      }
    } catch (err) {
      log.error(`keepalived fault watch: ${describeError(err)}`, { job: 'keepalived-fault' });
    }
    await new Promise((resolve) => setTimeout(resolve, req.intervalMs));
  }
}

const WATCHER = new URL('../../bin/watch-fault.js', import.meta.url);

/** Detached and unref'd (its own session), like the clients-back watcher: the refusing promote exits at once. */
async function spawnFaultWatcher(req: FaultWatchRequest): Promise<number> {
  const out = openSync(
    faultLogFile(req.stateDir),
    fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_NOFOLLOW,
    FILE_MODE,
  );
  try {
    const child = spawn(process.execPath, [WATCHER.pathname, JSON.stringify(req)], {
      detached: true,
      stdio: ['ignore', out, out],
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    return pid;
  } finally {
    closeSync(out);
  }
}

export interface FaultCheck {
  findings: { status: Status; setting: string; text: string }[];
  notes: string[];
  /** 1 while keepalived is held in FAULT by the track file. */
  held: number;
}

/**
 * check-standby's part: the track file's directory, and a held FAULT — released when its reason is gone
 * (the watcher died with a reboot), reported with its reason while it holds.
 */
export async function checkFault(
  config: Config,
  standby: StandbyConfig,
  o: { timeoutMs: number },
): Promise<FaultCheck> {
  const r: FaultCheck = { findings: [], notes: [], held: 0 };
  const trackFile = standby.keepalivedTrackFile;
  if (!trackFile) return r;
  const problem = await directoryProblem(trackFile);
  if (problem) r.findings.push({ status: problem.status, setting: SETTING, text: problem.text });
  // Root writes nothing into a directory another user can change.
  if (problem?.status === 'CRITICAL') return r;
  const record = await readFaultRecord(config.stateDir);
  const value = await trackFileValue(trackFile);
  if (!record) {
    if (value === 0) return r;
    // Nothing of ours explains it: a FAULT no watcher will ever release blocks the next failover.
    await project(trackFile, false, 'released by check-standby: no refusal recorded');
    const text = `${trackFile} held keepalived in FAULT (value ${value}) with no refusal recorded: released`;
    r.findings.push({ status: 'WARNING', setting: SETTING, text });
    return r;
  }
  const step = await faultStep(config.stateDir, record.since, o.timeoutMs);
  if (step.done) {
    r.notes.push(step.line);
    return r;
  }
  r.held = 1;
  const names = record.masters.map((m) => m.name).join(', ');
  const text =
    `keepalived held in FAULT since ${record.since} by ${trackFile} (${record.reason}): this standby takes ` +
    `the VIP again once ${names} stop(s) answering, or now with rm ${trackFile}`;
  r.findings.push({ status: 'WARNING', setting: SETTING, text });
  return r;
}
