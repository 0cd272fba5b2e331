import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Option } from 'commander';
import { ensureDir, renameDurable } from './atomic.js';
import type { Config } from './config.js';
import { ConfigError, describeError, UntrustedPathError } from './errors.js';
import { pathTrust } from './trusted-path.js';
import {
  HAND_OFF_JOBS,
  MAX_REQUEST_BYTES,
  PROTOCOL_VERSION,
  rendezvousPath,
  REQUEST_TIMEOUT_MS,
  trustedRunDir,
  type HandOffRequest,
  type HandOffResponse,
} from './hand-off.js';
import type { Companion, Job } from './job.js';
import type { Logger } from './logger.js';
import { formatReport, type JsonReport } from './output.js';
import { runJob } from './runner.js';

/** A hook's `run promote` arriving this long after a VIP-triggered run finished still joins it. */
const JOIN_WINDOW_MS = 60_000;

interface SharedRun {
  report: Promise<JsonReport>;
  finishedAt?: number;
}

export interface HandOffServer {
  /**
   * Start `job` now, on the daemon's own initiative (the VIP appeared): a hook's request for the same job
   * (no flags but --json) that arrives while it runs, or within a minute after, gets its result instead
   * of a second run. Ignored while such a run is going.
   */
  startShared(job: Job, why: string): void;
  /** Stop taking requests; runs already taken go on (see `running`). */
  close(): Promise<void>;
  /** Runs taken and not finished: the daemon's shutdown waits for them like for its own. */
  running: Set<{ promise: Promise<unknown>; controller: AbortController }>;
}

/** `--json`, `--dry-run`, and the job's own switches (flags without a value): what a hook passes. */
function parseArgv(
  job: Job,
  argv: readonly string[],
): { json: boolean; dryRun: boolean; args: Record<string, unknown> } | { refused: string } {
  const switches = new Map(
    (job.cliOptions ?? [])
      .filter((o) => !/[<[]/.test(o.flags))
      .map((o) => [new Option(o.flags, '').long!, new Option(o.flags, '').attributeName()]),
  );
  const out = { json: false, dryRun: false, args: {} as Record<string, unknown> };
  for (const a of argv) {
    if (a === '--json') out.json = true;
    else if (a === '--dry-run' || a === '-n') out.dryRun = true;
    else if (switches.has(a)) out.args[switches.get(a)!] = true;
    else return { refused: `option ${JSON.stringify(a.slice(0, 40))} is not handed off` };
  }
  return out;
}

function validRequest(value: unknown): value is HandOffRequest {
  const r = value as HandOffRequest;
  return (
    typeof r === 'object' &&
    r !== null &&
    r.v === PROTOCOL_VERSION &&
    typeof r.job === 'string' &&
    typeof r.config === 'string' &&
    Array.isArray(r.argv) &&
    r.argv.length <= 32 &&
    r.argv.every((a) => typeof a === 'string') &&
    Number.isFinite(r.triggeredAtMs)
  );
}

/** A socket file already there: another daemon's (it answers: refuse to start) or a stale one (remove it). Anything else is not ours to delete. */
async function clearStaleSocket(file: string): Promise<void> {
  const st = await fs.lstat(file).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket())
    throw new ConfigError('daemon.socket', `daemon.socket ${file} exists and is not a socket: not touching it`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (alive)
    throw new ConfigError('daemon.socket', `daemon.socket ${file}: another mfs-jobs daemon is listening there`);
  await fs.unlink(file);
}

/**
 * Listen on `config.daemon.socket` (0600, in the 0700 state directory) and run the hook jobs handed
 * over by `mfs-jobs run promote|demote` — with the same runner, lock and state as a run of its own,
 * and the same output. A request for another config file, another job or a flag the daemon does not
 * handle is refused: the caller then runs the job itself.
 */
/**
 * The link the hook looks for first (hand-off.ts, rendezvousPath): in a run directory of our own (made
 * 0700 if missing; one anyone else could write into is not used), named after the config's realpath.
 * Best effort: without it the hook reads daemon.socket from the config.
 */
async function linkRendezvous(configReal: string, socketPath: string, log: Logger): Promise<string | undefined> {
  const link = rendezvousPath(configReal);
  try {
    await fs.mkdir(path.dirname(link), { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    if (!(await trustedRunDir()))
      throw new UntrustedPathError(
        path.dirname(link),
        `${path.dirname(link)} is not a directory of ours that only we can write`,
      );
    const tmp = `${link}.${process.pid}`;
    await fs.rm(tmp, { force: true });
    await fs.symlink(socketPath, tmp);
    // The run directory is tmpfs, rebuilt at every start: nothing to make durable.
    await renameDurable(tmp, link, { durable: false });
    return link;
  } catch (err) {
    log.warn(`no hand-off link in the run directory (${describeError(err)}): hooks find the daemon through the config`);
    return undefined;
  }
}

export async function serveHandOff(
  config: Config,
  jobs: readonly Job[],
  log: Logger,
  socketPath: string,
  companions: ReadonlyMap<string, Companion> = new Map(),
): Promise<HandOffServer> {
  const configReal = await fs.realpath(config.file);
  const running: HandOffServer['running'] = new Set();
  const shared = new Map<string, SharedRun>();
  let closing = false;
  const track = (promise: Promise<unknown>, controller: AbortController) => {
    const entry = { promise, controller };
    running.add(entry);
    void promise.finally(() => running.delete(entry)).catch(() => undefined);
  };
  const joinable = (job: Job, argv: readonly string[]) => {
    const s = shared.get(job.name);
    return s &&
      argv.every((a) => a === '--json') &&
      (s.finishedAt === undefined || Date.now() - s.finishedAt < JOIN_WINDOW_MS)
      ? s
      : undefined;
  };
  const server = net.createServer((sock) => {
    let buf = '';
    const reply = (r: HandOffResponse) => sock.end(JSON.stringify(r) + '\n');
    const refuse = (reason: string) => {
      log.warn('hand-off refused', { reason });
      reply({ v: PROTOCOL_VERSION, accepted: false, reason });
    };
    sock.setEncoding('utf8');
    sock.setTimeout(REQUEST_TIMEOUT_MS, () => sock.destroy());
    sock.on('error', () => undefined);
    const onData = (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST_BYTES) {
        sock.off('data', onData);
        refuse(`request over ${MAX_REQUEST_BYTES} bytes`);
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      sock.off('data', onData);
      sock.setTimeout(0);
      let request: unknown;
      try {
        request = JSON.parse(buf.slice(0, nl));
      } catch {
        refuse('request is not JSON');
        return;
      }
      if (!validRequest(request)) return refuse(`not a protocol ${PROTOCOL_VERSION} request`);
      if (closing) return refuse('daemon stopping');
      if (request.config !== configReal)
        return refuse(`daemon serves ${configReal}, not ${request.config.slice(0, 200)}`);
      const job = jobs.find((j) => j.name === request.job);
      if (!job || !HAND_OFF_JOBS.includes(job.name))
        return refuse(`job ${JSON.stringify(request.job.slice(0, 40))} is not handed off`);
      const parsed = parseArgv(job, request.argv);
      if ('refused' in parsed) return refuse(parsed.refused);
      const send = (report: Promise<JsonReport>) =>
        report
          .then((r) =>
            reply({ v: PROTOCOL_VERSION, accepted: true, exitCode: r.exitCode, stdout: formatReport(r, parsed.json) }),
          )
          .catch((err: unknown) => {
            log.error('hand-off run failed', { job: job.name, error: describeError(err) });
            sock.destroy();
          });
      const join = joinable(job, request.argv);
      if (join) {
        log.info('hand-off joins the run already started', { job: job.name });
        void send(join.report);
        return;
      }
      const controller = new AbortController();
      log.info('hand-off taken', { job: job.name, argv: request.argv });
      const report = runJob(job, {
        config,
        log,
        dryRun: parsed.dryRun,
        args: parsed.args,
        trigger: { by: 'hook', atMs: request.triggeredAtMs },
        companion: companions.get(job.name),
        signal: controller.signal,
      }).then((o) => o.report);
      track(send(report), controller);
    };
    sock.on('data', onData);
  });
  await ensureDir(path.dirname(socketPath));
  // A directory others may write into lets them stand in for this daemon while it is down (the hook
  // would refuse their socket, but also never reach ours): listen only where root alone writes.
  const dir = await pathTrust(path.dirname(socketPath), 'dir');
  if (!dir.trusted)
    throw new ConfigError('daemon.socket', `daemon.socket ${socketPath}: its directory cannot be trusted (${dir.why})`);
  await clearStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.chmod(socketPath, 0o600);
  const link = await linkRendezvous(configReal, socketPath, log);
  log.info('hand-off socket listening', { socket: socketPath, ...(link ? { link } : {}) });
  return {
    running,
    startShared: (job, why) => {
      const current = shared.get(job.name);
      if (closing || (current && current.finishedAt === undefined)) return;
      log.info(`starting ${job.name}: ${why}`, { job: job.name });
      const controller = new AbortController();
      const run: SharedRun = {
        report: runJob(job, {
          config,
          log,
          trigger: { by: 'vip', atMs: Date.now() },
          companion: companions.get(job.name),
          signal: controller.signal,
        }).then((o) => o.report),
      };
      void run.report.finally(() => (run.finishedAt = Date.now())).catch(() => undefined);
      shared.set(job.name, run);
      track(run.report, controller);
    },
    close: async () => {
      closing = true;
      // Stop listening now; connections of runs still going stay open until their result is sent.
      server.close();
      await fs.unlink(socketPath).catch(() => undefined);
      if (link && (await fs.readlink(link).catch(() => undefined)) === socketPath)
        await fs.unlink(link).catch(() => undefined);
    },
  };
}
