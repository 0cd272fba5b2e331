// Loaded first by bin/mfs-jobs: `run promote|demote` goes to the running daemon when there is one
// (lib/core/hand-off.ts); anything else, or no daemon, goes on to the whole CLI (cli.ts).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  configPath,
  HAND_OFF_JOBS,
  HandOffLost,
  NO_HAND_OFF_ENV,
  PROTOCOL_VERSION,
  rendezvousPath,
  sendHandOff,
  socketFromConfig,
  trustedRunDir,
  UntrustedSocket,
  type HandOffRequest,
} from '../lib/core/hand-off.js';

/** `[-c FILE] run JOB [flags]` → its parts; undefined for anything a hand-off does not cover. */
function hookCall(argv: readonly string[]): { job: string; config?: string; rest: string[] } | undefined {
  let config: string | undefined;
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') config = argv[++i];
    else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else if (a === '-v' || a === '--verbose')
      return undefined; // debug logs and stack traces: here
    else words.push(a);
  }
  if (words[0] !== 'run' || !HAND_OFF_JOBS.includes(words[1] ?? '') || config === '') return undefined;
  return { job: words[1]!, config, rest: words.slice(2) };
}

/**
 * True when the daemon ran it (the process is exiting with its code); false: run it here. `viaConfig` false asks
 * only the daemon's link, not the config's daemon.socket (which loads the YAML parser), and answers undefined when
 * that is still to be asked: bin/mfs-jobs's first call, before the code-cached CLI, which has its own parser.
 */
export async function tryHandOff(argv: readonly string[], viaConfig = true): Promise<boolean | undefined> {
  if (process.env[NO_HAND_OFF_ENV] === '1') return false;
  const call = hookCall(argv);
  if (!call) return false;
  let config: string;
  try {
    config = await fs.realpath(path.resolve(configPath(call.config)));
  } catch {
    return false; // the CLI reads the config and names what is wrong with it
  }
  const request = {
    v: PROTOCOL_VERSION,
    job: call.job,
    argv: call.rest,
    config,
    triggeredAtMs: Math.round(performance.timeOrigin),
  };
  // The daemon's link in the run directory first (no YAML parser to load), then the config's daemon.socket.
  if (await trustedRunDir()) {
    const link = rendezvousPath(config);
    const target = await fs.readlink(link).catch(() => undefined);
    const handled = target === undefined ? undefined : await offer(link, call.job, request, target);
    if (handled !== undefined) return handled;
  }
  if (!viaConfig) return undefined;
  let socket: string | undefined;
  try {
    socket = await socketFromConfig(config);
  } catch {
    return false;
  }
  if (!socket) return false;
  return (await offer(socket, call.job, request)) ?? false;
}

/** true: the daemon ran it (the process is exiting); false: it would not, run it here; undefined: no daemon there. */
async function offer(
  socket: string,
  job: string,
  request: HandOffRequest,
  shown = socket,
): Promise<boolean | undefined> {
  try {
    const answer = await sendHandOff(socket, request);
    if (!answer.accepted) return false;
    await new Promise<void>((resolve) => process.stdout.write(answer.stdout, () => resolve()));
    process.exit(answer.exitCode);
  } catch (err) {
    if (err instanceof UntrustedSocket) {
      const why = `the daemon socket cannot be trusted (${err.message})`;
      process.stderr.write(`mfs-jobs: ${job} not handed off: ${why}; running it here\n`);
      return false;
    }
    if (!(err instanceof HandOffLost)) return undefined;
    process.stderr.write(
      `mfs-jobs: ${job} was handed to the daemon on ${shown}, which did not report back (${err.message}); it may have acted: see the daemon's log and "mfs-jobs list-jobs"\n`,
    );
    process.exit(3);
  }
}
