import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import type { Config, MasterHost } from '../core/config.js';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { loadStoreKey } from '../store/sealed.js';
import { quorumName } from './quorum.js';

/**
 * Patroni's failsafe mode (issues #1593, #3403): an etcd outage alone must not stop a healthy cluster. With
 * etcd unreachable, the master's daemon asks every other master's daemon "are you promoting?" over this
 * channel; a daemon that answers "no" promises not to promote for one TTL (promote reads the promise:
 * `failsafePromise`). The master keeps serving only while every peer has so answered within the TTL.
 * One JSON line each way, at most MAX_LINE bytes, HMAC-SHA256 with quorum.failsafe.keyFile over every
 * field, the answer bound to the asker's random nonce, asks outside the time window or seen before ignored.
 */
const MAX_LINE = 1024;
const VERSION = 1;

export interface PeerAnswer {
  name: string;
  confirmed: boolean;
  detail: string;
}

export interface FailsafePromise {
  from: string;
  until: number;
}

const mac = (key: Buffer, fields: readonly (string | number | boolean)[]) =>
  createHmac('sha256', key).update(JSON.stringify(fields)).digest('hex');

function macOk(key: Buffer, fields: readonly (string | number | boolean)[], given: unknown): boolean {
  if (typeof given !== 'string' || !/^[0-9a-f]{64}$/.test(given)) return false;
  return timingSafeEqual(Buffer.from(mac(key, fields), 'hex'), Buffer.from(given, 'hex'));
}

/** `<stateDir>/quorum-failsafe.json`: until when this host promised a serving master not to promote. */
export function promiseFile(config: Config): string {
  return path.join(config.stateDir, 'quorum-failsafe.json');
}

/** The promise in force (unexpired), if any. */
export async function failsafePromise(config: Config, now = Date.now()): Promise<FailsafePromise | undefined> {
  const text = await fs.readFile(promiseFile(config), 'utf8').catch(() => undefined);
  if (!text || text.length > MAX_LINE) return undefined;
  try {
    const p = JSON.parse(text) as Partial<FailsafePromise>;
    return typeof p.from === 'string' && typeof p.until === 'number' && p.until > now
      ? (p as FailsafePromise)
      : undefined;
  } catch {
    return undefined;
  }
}

async function readLine(sock: net.Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => (sock.destroy(), reject(new Error(`no answer within ${timeoutMs} ms`))), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0 || buf.length > MAX_LINE) {
        clearTimeout(timer);
        sock.removeAllListeners('data');
        if (nl < 0 || nl > MAX_LINE) reject(new Error(`line over ${MAX_LINE} bytes`));
        else resolve(buf.slice(0, nl));
      }
    });
    sock.once('error', (e) => (clearTimeout(timer), reject(e)));
    sock.once('end', () => (clearTimeout(timer), reject(new Error('closed without an answer'))));
  });
}

export interface FailsafeServer {
  close(): Promise<void>;
}

/**
 * Listen for asks. `promoting()` says why this host cannot promise (its own master serves, a promotion is
 * running), or undefined: then the promise is recorded before the answer leaves.
 */
export async function serveFailsafe(
  config: Config,
  o: { promoting: () => Promise<string | undefined>; log: Logger },
): Promise<FailsafeServer | undefined> {
  const fsafe = config.quorum?.failsafe;
  if (!fsafe) return undefined;
  const { key } = await loadStoreKey(fsafe.keyFile, 'quorum.failsafe.keyFile');
  const name = quorumName(config);
  const ttlMs = config.quorum!.etcd.ttlSeconds * 1000;
  const seen = new Map<string, number>();
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    void (async () => {
      const line = await readLine(sock, 2_000);
      const r = JSON.parse(line) as { v?: unknown; from?: unknown; nonce?: unknown; at?: unknown; mac?: unknown };
      const now = Date.now();
      if (
        r.v !== VERSION ||
        typeof r.from !== 'string' ||
        typeof r.nonce !== 'string' ||
        !/^[0-9a-f]{32}$/.test(r.nonce) ||
        typeof r.at !== 'number'
      )
        return sock.destroy();
      if (!macOk(key, ['ask', r.from, r.nonce, r.at], r.mac)) return sock.destroy();
      if (Math.abs(now - r.at) > ttlMs || seen.has(r.nonce)) return sock.destroy();
      for (const [n, t] of seen) if (now - t > 2 * ttlMs) seen.delete(n);
      seen.set(r.nonce, now);
      const reason = (await o.promoting().catch((e: unknown) => `cannot tell: ${describeError(e)}`)) ?? '';
      if (!reason)
        await writeFileAtomic(
          promiseFile(config),
          JSON.stringify({ from: r.from, until: now + ttlMs } satisfies FailsafePromise),
        );
      const promoting = reason !== '';
      sock.end(
        JSON.stringify({
          v: VERSION,
          from: name,
          nonce: r.nonce,
          promoting,
          reason,
          mac: mac(key, ['answer', name, r.nonce, promoting, reason]),
        }) + '\n',
      );
    })().catch(() => sock.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(fsafe.port, () => resolve());
  });
  o.log.info('failsafe channel listening', { port: fsafe.port });
  return { close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Ask each peer (the other masters' daemons) once; confirmed = a valid "not promoting" answer. */
export async function askPeers(config: Config, peers: readonly MasterHost[], timeoutMs: number): Promise<PeerAnswer[]> {
  const fsafe = config.quorum?.failsafe;
  if (!fsafe) return peers.map((p) => ({ name: p.name, confirmed: false, detail: 'no quorum.failsafe configured' }));
  const { key } = await loadStoreKey(fsafe.keyFile, 'quorum.failsafe.keyFile');
  const from = quorumName(config);
  return Promise.all(
    peers.map(async (p): Promise<PeerAnswer> => {
      const nonce = randomBytes(16).toString('hex');
      const at = Date.now();
      const sock = net.connect({ host: p.host, port: fsafe.port });
      sock.on('error', () => undefined);
      try {
        const answer = readLine(sock, timeoutMs);
        sock.write(JSON.stringify({ v: VERSION, from, nonce, at, mac: mac(key, ['ask', from, nonce, at]) }) + '\n');
        const a = JSON.parse(await answer) as {
          v?: unknown;
          from?: unknown;
          nonce?: unknown;
          promoting?: unknown;
          reason?: unknown;
          mac?: unknown;
        };
        const fields = [
          'answer',
          String(a.from),
          String(a.nonce),
          a.promoting === true,
          typeof a.reason === 'string' ? a.reason : '',
        ] as const;
        if (a.v !== VERSION || a.nonce !== nonce || typeof a.promoting !== 'boolean' || !macOk(key, fields, a.mac)) {
          return { name: p.name, confirmed: false, detail: `${p.name}: answer not authenticated` };
        }
        if (a.promoting)
          return { name: p.name, confirmed: false, detail: `${p.name} cannot promise: ${fields[4].slice(0, 200)}` };
        return { name: p.name, confirmed: true, detail: `${p.name} confirms it is not promoting` };
      } catch (err) {
        return { name: p.name, confirmed: false, detail: `${p.name} (${p.host}:${fsafe.port}): ${describeError(err)}` };
      } finally {
        sock.destroy();
      }
    }),
  );
}
