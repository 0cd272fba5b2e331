import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../core/errors.js';
import { parseTcpTable, tcpTables, type Peer } from '../core/tcp-table.js';

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
