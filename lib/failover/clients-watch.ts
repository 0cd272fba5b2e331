import { spawn } from 'node:child_process';
import { constants as fsc, fstatSync, openSync, closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { DIR_MODE, FILE_MODE, pathExists } from '../core/atomic.js';
import { describeError, UsageError } from '../core/errors.js';
import type { JobResult, Status } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { metric, type Metric } from '../core/metrics.js';
import { writePrometheusTextfile } from '../core/output.js';
import { readJobState, stateFile, writeJobState } from '../core/state.js';
import { describeClientsBack, watchClientsBack, type ClientsBack } from './clients-back.js';

/**
 * The clients-back watch, outside the promotion. Nothing the clients need may wait behind something the
 * clients do: ucarp runs its up-script synchronously and announces the VIP (gratuitous ARP, adverts) only
 * when it returns, so a promote that waited for the clients would keep them away. Promote returns once its
 * master serves; the watch goes on in the daemon (when promote runs there) or in a detached process of its
 * own (`bin/watch-clients.ts`), and records its result under the name `promote-clients`: the state file
 * `<stateDir>/state/promote-clients.json`, the textfile `mfs_jobs_promote_clients.prom` and the log.
 */

/** The name its result is recorded under (state file, Prometheus `job` label). */
export const CLIENTS_WATCH = 'promote-clients';

export interface ClientsWatchRequest {
  clientPort: number;
  chunkserverPort: number;
  /** Peer addresses that are not clients (the other masters: their fence probes connect too). */
  ignore: string[];
  /** When the hook was called (ms since the epoch): the times are counted from there. */
  since: number;
  timeoutMs: number;
  stateDir: string;
  textfileDir?: string;
  /** The promotion watched for (its job start, ISO), so a reader can tell it belongs to the last promote. */
  promotedAt: string;
  metadataVersion: number;
}

/** A request as it arrives on the watcher's command line: every field checked, nothing else taken. */
export function parseClientsWatchRequest(text: string): ClientsWatchRequest {
  const r = JSON.parse(text) as Partial<ClientsWatchRequest>;
  const port = (p: unknown) => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536;
  const abs = (p: unknown) => typeof p === 'string' && path.isAbsolute(p);
  const ok =
    port(r.clientPort) &&
    port(r.chunkserverPort) &&
    Array.isArray(r.ignore) &&
    r.ignore.every((a) => typeof a === 'string') &&
    Number.isFinite(r.since) &&
    Number.isFinite(r.timeoutMs) &&
    r.timeoutMs! >= 0 &&
    r.timeoutMs! <= 600_000 &&
    abs(r.stateDir) &&
    (r.textfileDir === undefined || abs(r.textfileDir)) &&
    typeof r.promotedAt === 'string' &&
    Number.isFinite(r.metadataVersion);
  if (!ok) throw new UsageError('clients-watch request', 'not a clients-watch request');
  return r as ClientsWatchRequest;
}

/** The watch's verdict: OK once a mount came back; WARNING when none did within the window. */
export function clientsResult(c: ClientsBack, req: ClientsWatchRequest): JobResult {
  const windowS = req.timeoutMs / 1000;
  const what = describeClientsBack(c, windowS);
  const status: Status = c.unavailable ? 'UNKNOWN' : c.firstMountMs !== undefined ? 'OK' : 'WARNING';
  const metrics: Metric[] = c.firstMountMs !== undefined ? [metric('clients_back_seconds', c.firstMountMs / 1000)] : [];
  return {
    status,
    summary: `promotion of ${req.promotedAt} (metadata version ${req.metadataVersion}): ${what}`,
    details: { promotedAt: req.promotedAt, metadataVersion: req.metadataVersion, windowSeconds: windowS, clients: c },
    metrics,
  };
}

/** Watch, then record the result (state file, Prometheus textfile, log). Never throws. */
export async function watchAndRecord(req: ClientsWatchRequest, log: Logger, signal?: AbortSignal) {
  const startedAt = new Date();
  const clients = await watchClientsBack({ ...req, signal });
  const result = clientsResult(clients, req);
  const finishedAt = new Date();
  const durationMs = finishedAt.getTime() - startedAt.getTime();
  const level = result.status === 'OK' ? 'info' : 'warn';
  log.log(level, result.summary, { job: CLIENTS_WATCH, status: result.status, clients });
  try {
    // A state directory removed meanwhile (a test's, or an uninstall) is not made again by a watch.
    if (!(await pathExists(req.stateDir))) return clients;
    await writeJobState(req.stateDir, {
      job: CLIENTS_WATCH,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs,
      status: result.status,
      exitCode: ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'].indexOf(result.status),
      summary: result.summary,
      dryRun: false,
      details: result.details,
    });
    if (req.textfileDir) await writePrometheusTextfile(req.textfileDir, CLIENTS_WATCH, result, finishedAt, durationMs);
  } catch (err) {
    log.error(`could not record the clients-back result: ${describeError(err)}`, { job: CLIENTS_WATCH });
  }
  return clients;
}

/** Where the watcher writes when promote's own stderr is a pipe or socket its caller may wait on. */
export function watcherLogFile(stateDir: string): string {
  return path.join(stateDir, `${CLIENTS_WATCH}.log`);
}

const WATCHER = new URL('../../bin/watch-clients.js', import.meta.url);

/**
 * Start the watch in a process of its own, detached (its own session) and unref'd, so that a one-shot
 * `mfs-jobs run promote` exits at once and the hook returns. Its output goes where promote's log goes when
 * that is a file or a terminal; a pipe or socket (a caller that reads promote's output and waits for it to
 * close) is never handed on: then `<stateDir>/promote-clients.log`.
 */
export async function spawnClientsWatcher(req: ClientsWatchRequest): Promise<{ pid: number; log: string }> {
  let out: number;
  let shown: string;
  let opened = false;
  const st = (() => {
    try {
      return fstatSync(2);
    } catch {
      return undefined;
    }
  })();
  if (st && (st.isFile() || st.isCharacterDevice())) {
    out = 2;
    shown = "this run's log (stderr)";
  } else {
    await mkdir(req.stateDir, { recursive: true, mode: DIR_MODE });
    shown = watcherLogFile(req.stateDir);
    out = openSync(shown, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_NOFOLLOW, FILE_MODE);
    opened = true;
  }
  try {
    const argv = [WATCHER.pathname, JSON.stringify(req)];
    const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', out, out] });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    return { pid, log: shown };
  } finally {
    if (opened) closeSync(out);
  }
}

export interface LastClientsBack {
  line: string;
  status: Status;
  details: Record<string, unknown>;
  file: string;
}

/** The last recorded clients-back result, for verify and check-standby to show. */
export async function lastClientsBack(stateDir: string): Promise<LastClientsBack | undefined> {
  const s = await readJobState(stateDir, CLIENTS_WATCH);
  if (!s) return undefined;
  return {
    line: `last promotion's clients: ${s.summary} (${s.status}, recorded ${s.finishedAt})`,
    status: s.status,
    details: { ...s.details, status: s.status, recordedAt: s.finishedAt },
    file: stateFile(stateDir, CLIENTS_WATCH),
  };
}

/** The daemon's side of a watch: its log, and the watches its shutdown aborts. */
export interface DaemonWatches {
  log: Logger;
  watches: Set<AbortController>;
}

type Started = ClientsWatchStarted;

/** Who watches for this promotion's clients, as promote reports it (`details.clients`). */
export type ClientsWatchStarted =
  | { by: 'daemon'; stateFile: string }
  | { by: 'watcher'; pid: number; log: string; stateFile: string }
  | { by: 'nobody'; error: string };

/**
 * Start the watch without waiting for it: in the daemon's own process when promote runs there (`daemon`:
 * its log and the set of watches its shutdown aborts), else in a detached watcher process.
 */
export async function startClientsWatch(req: ClientsWatchRequest, daemon?: DaemonWatches): Promise<Started> {
  const state = stateFile(req.stateDir, CLIENTS_WATCH);
  if (daemon) {
    const controller = new AbortController();
    daemon.watches.add(controller);
    void watchAndRecord(req, daemon.log, controller.signal).finally(() => daemon.watches.delete(controller));
    return { by: 'daemon', stateFile: state };
  }
  try {
    return { by: 'watcher', ...(await spawnClientsWatcher(req)), stateFile: state };
  } catch (err) {
    return { by: 'nobody', error: describeError(err) };
  }
}

export function describeClientsWatch(w: ClientsWatchStarted, windowS: number): string {
  if (w.by === 'nobody') return `clients: not watched (cannot start the watcher: ${w.error})`;
  const who = w.by === 'daemon' ? 'the daemon' : `watcher pid ${w.pid} (log: ${w.log})`;
  return `clients: ${who} watches up to ${windowS} s for them to come back; result in ${w.stateFile}`;
}
