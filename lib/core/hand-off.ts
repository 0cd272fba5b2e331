// The failover hook's short way in: `mfs-jobs run promote` hands the run to the `mfs-jobs daemon`
// already running on this machine, over a Unix socket, instead of loading the whole program (Node's
// module loading alone is ~0.4 s on the critical path of a failover). This file is what both sides share,
// and all the client loads: Node built-ins and the YAML parser, nothing else.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MfsJobsError } from './errors.js';
import { pathTrust } from './trusted-path.js';

export const DEFAULT_CONFIG_PATH = '/etc/mfs-jobs/config.yaml';
export const DEFAULT_STATE_DIR = '/var/lib/mfs-jobs';
/** Set to 1 to never hand off (the run then happens in this process). */
export const NO_HAND_OFF_ENV = 'MFS_JOBS_NO_HAND_OFF';
export const PROTOCOL_VERSION = 1;
/** The jobs a failover hook runs, and the only ones handed off. */
export const HAND_OFF_JOBS: readonly string[] = ['promote', 'demote'];
/** A request is one JSON line of at most this many bytes; the daemon reads it within REQUEST_TIMEOUT_MS. */
export const MAX_REQUEST_BYTES = 64 * 1024;
export const REQUEST_TIMEOUT_MS = 5_000;
/** What the client accepts back (the report, formatted). */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Which file to read: --config, then $MFS_JOBS_CONFIG, then /etc/mfs-jobs/config.yaml. */
export function configPath(explicit?: string): string {
  return explicit ?? process.env.MFS_JOBS_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** `daemon.socket` as the config gives it: a path, `false` (no hand-off), or by default `<stateDir>/daemon.sock`. */
export function socketPathOf(
  daemonSocket: string | false | undefined,
  stateDir: string | undefined,
): string | undefined {
  if (daemonSocket === false) return undefined;
  return daemonSocket ?? path.join(stateDir ?? DEFAULT_STATE_DIR, 'daemon.sock');
}

export interface HandOffRequest {
  v: number;
  job: string;
  /** The flags after the job name, as typed (`--json`, `--dry-run`, `--force`). */
  argv: string[];
  /** realpath of the config file the caller would have used: the daemon serves only its own. */
  config: string;
  /** When the hook process started (ms since the epoch): promote's RTO counts from there. */
  triggeredAtMs: number;
}

export type HandOffResponse =
  { v: number; accepted: true; exitCode: number; stdout: string } | { v: number; accepted: false; reason: string };

/** The run may have acted: the caller must not run it again, only say so. `subject`: the socket. */
export class HandOffLost extends MfsJobsError {}

/** A socket another user could have put there: never asked; the caller says so in one line and runs the job itself. */
export class UntrustedSocket extends MfsJobsError {}

/**
 * The hook's shortest way to the daemon: a link in a run directory named after the config file's
 * realpath, pointing at the daemon's socket, so the hook need not load a YAML parser to find it. Used
 * only when the directory is this user's own and nobody else may write there (else anyone could stand
 * in for the daemon); otherwise, or when the link is stale, the hook reads the config as before.
 */
export const RUN_DIR_ENV = 'MFS_JOBS_RUN_DIR';
const runDir = (): string => process.env[RUN_DIR_ENV] ?? '/run/mfs-jobs';

export function rendezvousPath(configRealpath: string): string {
  return path.join(runDir(), `hand-off-${createHash('sha256').update(configRealpath).digest('hex').slice(0, 16)}.sock`);
}

/** The run directory, if it is a directory of this user's that no one else can write into. */
export async function trustedRunDir(): Promise<string | undefined> {
  const dir = runDir();
  const st = await fs.lstat(dir).catch(() => undefined);
  return st?.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0 ? dir : undefined;
}

/** Read the socket path from the config without validating the rest (the daemon did that when it started). */
export async function socketFromConfig(file: string): Promise<string | undefined> {
  // Loaded here, not at the top: a launcher that is not running a hook should not pay for it.
  const { default: YAML } = await import('yaml');
  // An alias bomb is refused before it is expanded (as loadConfig does).
  type Doc = { stateDir?: unknown; daemon?: { socket?: unknown } } | null;
  const doc = YAML.parse(await fs.readFile(file, 'utf8'), { maxAliasCount: 100 }) as Doc;
  const socket = doc?.daemon?.socket;
  const stateDir = typeof doc?.stateDir === 'string' ? doc.stateDir : undefined;
  return socketPathOf(typeof socket === 'string' || socket === false ? socket : undefined, stateDir);
}

/**
 * Send one request. Resolves with the daemon's answer; rejects with an ordinary error when there is no
 * daemon to talk to (no socket, refused, it would not take the request: run it here instead), and with
 * HandOffLost when the daemon took it and then went away (it may have acted: do not run it again).
 */
export async function sendHandOff(socketPath: string, request: HandOffRequest): Promise<HandOffResponse> {
  // Whoever listens there gets to say "promoted": only a socket that no one but root (or we) could have
  // put there, on a path no one else can change, is asked. The ownership of the socket and of every
  // directory to it is the check: Node exposes no SO_PEERCRED to ask the kernel who listens.
  const trust = await pathTrust(socketPath, 'socket');
  if (!trust.trusted) {
    if (!trust.missing) throw new UntrustedSocket(socketPath, trust.why);
    throw Object.assign(new Error(`${socketPath}: no daemon listening`), { code: 'ENOENT' });
  }
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let sent = false;
    let buf = '';
    sock.setEncoding('utf8');
    sock.once('connect', () => {
      sent = true;
      sock.write(JSON.stringify(request) + '\n');
    });
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_RESPONSE_BYTES) {
        sock.destroy();
        reject(new HandOffLost(socketPath, `the daemon's answer on ${socketPath} is over ${MAX_RESPONSE_BYTES} bytes`));
      }
    });
    sock.once('error', (err: NodeJS.ErrnoException) =>
      sent ? reject(new HandOffLost(socketPath, `${socketPath}: ${err.code ?? err.message}`)) : reject(err),
    );
    sock.once('end', () => {
      const line = buf.split('\n')[0] ?? '';
      let answer: HandOffResponse;
      try {
        answer = JSON.parse(line) as HandOffResponse;
      } catch {
        reject(
          new HandOffLost(
            socketPath,
            `the daemon on ${socketPath} closed the connection without a result${buf ? ' (unreadable answer)' : ''}`,
          ),
        );
        return;
      }
      if (answer.accepted === true && (typeof answer.exitCode !== 'number' || typeof answer.stdout !== 'string'))
        reject(new HandOffLost(socketPath, `the daemon on ${socketPath} sent an incomplete result`));
      else resolve(answer);
    });
  });
}
