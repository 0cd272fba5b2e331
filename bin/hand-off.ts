// Loaded first by bin/mfs-jobs: `run promote|demote` goes to the running daemon when there is one
// (lib/core/hand-off.ts); anything else, or no daemon, goes on to the whole CLI (cli.ts).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { configPath, HAND_OFF_JOBS, HandOffLost, NO_HAND_OFF_ENV, PROTOCOL_VERSION, sendHandOff, socketFromConfig } from '../lib/core/hand-off.js';

/** `[-c FILE] run JOB [flags]` → its parts; undefined for anything a hand-off does not cover. */
function hookCall(argv: readonly string[]): { job: string; config?: string; rest: string[] } | undefined {
  let config: string | undefined;
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') config = argv[++i];
    else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else if (a === '-v' || a === '--verbose') return undefined; // debug logs and stack traces: here
    else words.push(a);
  }
  if (words[0] !== 'run' || !HAND_OFF_JOBS.includes(words[1] ?? '') || config === '') return undefined;
  return { job: words[1]!, config, rest: words.slice(2) };
}

/** True when the daemon ran it (the process is exiting with its code); false: run it here. */
export async function tryHandOff(argv: readonly string[]): Promise<boolean> {
  if (process.env[NO_HAND_OFF_ENV] === '1') return false;
  const call = hookCall(argv);
  if (!call) return false;
  let socket: string | undefined;
  let config: string;
  try {
    config = await fs.realpath(path.resolve(configPath(call.config)));
    socket = await socketFromConfig(config);
  } catch {
    return false; // the CLI reads the config again and names what is wrong with it
  }
  if (!socket) return false;
  try {
    const answer = await sendHandOff(socket, { v: PROTOCOL_VERSION, job: call.job, argv: call.rest, config, triggeredAtMs: Math.round(performance.timeOrigin) });
    if (!answer.accepted) return false;
    await new Promise<void>((resolve) => process.stdout.write(answer.stdout, () => resolve()));
    process.exit(answer.exitCode);
  } catch (err) {
    if (!(err instanceof HandOffLost)) return false;
    process.stderr.write(`mfs-jobs: ${call.job} was handed to the daemon on ${socket}, which did not report back (${err.message}); it may have acted: see the daemon's log and "mfs-jobs list-jobs"\n`);
    process.exit(3);
  }
}
