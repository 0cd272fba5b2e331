import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../core/errors.js';
import { connected, type CliTarget, type Connected } from '../moosefs/mfscli.js';

/**
 * After the promoted master serves: are the clients back? mfsmount retries its master every 2 s
 * (mastercomm.c, "reconnect every 2 seconds") and a chunkserver on its own schedule, so the cluster
 * is back a few seconds after the master, and an operator wants that moment, not only the master's.
 * The master restored its sessions from sessions.mfs: each one is listed inactive until its mount
 * reconnects. The watch ends when none is inactive, or after `timeoutMs` (a session of a client that
 * unmounted cleanly stays inactive for a day; it is reported, not waited for beyond the window).
 */
export interface ClientsBack {
  /** Sessions the restored master knew at its first answer. */
  sessions: number;
  /** Of those, reconnected within the window. */
  back: number;
  chunkservers: number;
  /** Milliseconds after `since` when the first mount, every session, the first chunkserver was back. */
  firstMountMs?: number;
  allMountsMs?: number;
  firstChunkserverMs?: number;
  /** Why nothing could be watched (no mfscli for this master, …). */
  unavailable?: string;
}

export async function watchClientsBack(target: CliTarget, o: { since: number; timeoutMs: number; everyMs?: number }): Promise<ClientsBack> {
  const deadline = Date.now() + o.timeoutMs;
  const out: ClientsBack = { sessions: 0, back: 0, chunkservers: 0 };
  let first: Connected | undefined;
  for (;;) {
    let now: Connected;
    try {
      now = await connected({ ...target, timeoutMs: Math.min(5_000, Math.max(500, deadline - Date.now())) });
    } catch (err) {
      if (!first) return { ...out, unavailable: describeError(err) };
      if (Date.now() >= deadline) return out;
      await sleep(o.everyMs ?? 200);
      continue;
    }
    const at = Date.now() - o.since;
    first ??= now;
    out.sessions = Math.max(out.sessions, now.activeMounts + now.inactiveMounts);
    out.back = now.activeMounts;
    out.chunkservers = now.chunkservers;
    if (now.activeMounts > 0) out.firstMountMs ??= at;
    if (now.chunkservers > 0) out.firstChunkserverMs ??= at;
    const mountsDone = now.inactiveMounts === 0;
    if (mountsDone && out.sessions > 0) out.allMountsMs ??= at;
    if ((mountsDone && (now.chunkservers > 0 || out.sessions === 0)) || Date.now() >= deadline) return out;
    await sleep(o.everyMs ?? 200);
  }
}

export function describeClientsBack(c: ClientsBack, windowS: number): string {
  if (c.unavailable) return `clients: not watched (${c.unavailable})`;
  const s = (ms?: number) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
  const mounts = c.sessions === 0 ? 'no client sessions to wait for' : `${c.back} of ${c.sessions} mounts back (first ${s(c.firstMountMs)}, all ${c.allMountsMs !== undefined ? s(c.allMountsMs) : `not within ${windowS} s`})`;
  return `clients: ${mounts}; ${c.chunkservers} chunkserver(s) connected (first ${s(c.firstChunkserverMs)}) — seconds after the hook was called`;
}
