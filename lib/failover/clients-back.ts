import { promises as fs } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../core/errors.js';

/**
 * After the promoted master serves: are the clients back? mfsmount retries its master every 2 s
 * (mastercomm.c, "reconnect every 2 seconds") and a chunkserver on its own schedule, so the cluster is
 * back a few seconds after the master, and an operator wants that moment, not only the master's.
 *
 * Watched in this machine's kernel connection table (/proc/net/tcp, tcp6), not by asking the master:
 * polling mfscli (a Python program, twice a poll) on the machine the master and its clients are
 * reconnecting to slowed their reconnection measurably (the VIP bench, 2 CPUs). A mount is an established
 * connection to the client port, a chunkserver one to the chunkserver port, from an address that is
 * neither this machine's loopback nor another configured master (whose fence probes connect there too).
 */
export interface ClientsBack {
  /** Connections seen at the end of the window (or when both kinds were back). */
  mounts: number;
  chunkservers: number;
  /** Milliseconds after `since` when the first mount and the first chunkserver were connected. */
  firstMountMs?: number;
  firstChunkserverMs?: number;
  /** Why nothing could be watched. */
  unavailable?: string;
}

export interface Peer {
  localPort: number;
  remote: string;
}

/** Established connections in /proc/net/tcp{,6} text: local port and remote address of each. */
export function parseTcpTable(text: string): Peer[] {
  const out: Peer[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '01') continue; // 01: ESTABLISHED
    const [, localPort] = f[1]!.split(':');
    const [remoteHex] = f[2]!.split(':');
    out.push({ localPort: Number.parseInt(localPort!, 16), remote: hexAddress(remoteHex!) });
  }
  return out;
}

/** Local ports in LISTEN state in /proc/net/tcp{,6} text. */
export function parseListeningPorts(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue; // 0A: LISTEN
    out.push(Number.parseInt(f[1]!.split(':')[1]!, 16));
  }
  return out;
}

async function tcpTables(): Promise<string[]> {
  return Promise.all(
    ['/proc/net/tcp', '/proc/net/tcp6'].map((f) =>
      fs
        .readFile(f, 'latin1')
        .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? '' : Promise.reject(err))),
    ),
  );
}

/** Is anything on this machine (this network namespace) listening on one of `ports`? */
export async function listening(ports: readonly number[]): Promise<boolean> {
  const open = new Set((await tcpTables()).flatMap(parseListeningPorts));
  return ports.some((p) => open.has(p));
}

/** The kernel's hex address (host byte order per 32-bit word, little-endian here) as text. */
function hexAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) =>
    [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => Number.parseInt(b, 16)),
  );
  if (bytes.length === 4) return bytes.join('.');
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) as the IPv4 address; other IPv6 in full hex groups.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

const isLoopback = (a: string) => a.startsWith('127.') || a === '0:0:0:0:0:0:0:1';

export async function watchClientsBack(o: {
  clientPort: number;
  chunkserverPort: number;
  ignore: readonly string[];
  since: number;
  timeoutMs: number;
  everyMs?: number;
  signal?: AbortSignal;
}): Promise<ClientsBack> {
  const deadline = Date.now() + o.timeoutMs;
  const ignore = new Set(o.ignore.map((a) => a.toLowerCase()));
  const out: ClientsBack = { mounts: 0, chunkservers: 0 };
  for (;;) {
    let peers: Peer[];
    try {
      peers = (await tcpTables()).flatMap(parseTcpTable).filter((p) => !isLoopback(p.remote) && !ignore.has(p.remote));
    } catch (err) {
      return { ...out, unavailable: describeError(err) };
    }
    const at = Date.now() - o.since;
    out.mounts = peers.filter((p) => p.localPort === o.clientPort).length;
    out.chunkservers = peers.filter((p) => p.localPort === o.chunkserverPort).length;
    if (out.mounts > 0) out.firstMountMs ??= at;
    if (out.chunkservers > 0) out.firstChunkserverMs ??= at;
    if (
      (out.firstMountMs !== undefined && out.firstChunkserverMs !== undefined) ||
      Date.now() >= deadline ||
      o.signal?.aborted
    )
      return out;
    await sleep(o.everyMs ?? 100, undefined, { signal: o.signal }).catch(() => undefined);
  }
}

export function describeClientsBack(c: ClientsBack, windowS: number): string {
  if (c.unavailable) return `clients: not watched (${c.unavailable})`;
  const s = (ms?: number) => (ms === undefined ? `none within ${windowS} s` : `${(ms / 1000).toFixed(2)} s`);
  return `clients back (after the hook was called): first mount ${s(c.firstMountMs)}, first chunkserver ${s(c.firstChunkserverMs)}; ${c.mounts} mount and ${c.chunkservers} chunkserver connection(s)`;
}
