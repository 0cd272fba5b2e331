import { promises as fs } from 'node:fs';
import { parseTcpSockets, parseTcpTable } from '../../lib/core/tcp-table.js';
import type { PromoteState } from './failover.js';

/**
 * Where a failover's seconds go, for one round: what the clients did (polled while it happens) beside what
 * ucarp, the up-script and promote recorded. Every time is in ms since the kill.
 *
 * The clients are watched from the standby's side: its network namespace's TCP table (read through
 * /proc/PID/net of a process living there) shows when the mount's and the chunkserver's connections are
 * established; the client machine's table shows their connects (SYN sent, sent again, refused); the
 * chunkserver's own log (lines without times) is stamped as the lines appear.
 */
export interface TimelineSources {
  killedAt: number;
  /** A process in the promoting machine's network namespace (its ucarp). */
  standbyNetPid: number;
  /** The client machine's address, and the master's client and chunkserver ports. */
  clientIp: string;
  clientPort: number;
  chunkserverPort: number;
  chunkserverLog: string;
  /** A process in the client machine's network namespace (its mount), and the address they connect to. */
  clientNetPid: number;
  vip: string;
  /** Whether the chunkserver process running now is alive (a 1.6.4 one may die and be started again). */
  chunkserverAlive: () => boolean;
}

export interface TimelineEvent {
  ms: number;
  what: string;
}

/** Chunkserver log lines worth a mark (the connection's life); the rest is its start-up chatter. */
const CHUNKSERVER_LINES =
  /Master connection lost|connecting \.\.\.|connected to Master|connection failed|register to master|set gid/;

export class ClientWatch {
  readonly events: TimelineEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private logOffset = 0;
  private seen = { mount: false, chunkserver: false, alive: true };
  /** The client machine's sockets to the VIP, by local port: the state and retransmissions last seen. */
  private sockets = new Map<number, { state: number; retransmits: number; who: string }>();
  private busy = false;

  private constructor(private readonly s: TimelineSources) {}

  /** Start polling every `everyMs` (the log's offset is taken now: only what comes after is marked). */
  static async start(s: TimelineSources, everyMs = 50): Promise<ClientWatch> {
    const w = new ClientWatch(s);
    w.logOffset = (await fs.stat(s.chunkserverLog).catch(() => undefined))?.size ?? 0;
    w.timer = setInterval(() => void w.poll(), everyMs);
    // A test that fails before stop() must not keep the runner alive.
    w.timer.unref();
    return w;
  }

  private mark(what: string): void {
    this.events.push({ ms: Date.now() - this.s.killedAt, what });
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { s } = this;
      const tables = await readTables(s.standbyNetPid);
      const peers = tables.flatMap(parseTcpTable).filter((p) => p.remote === s.clientIp);
      const mount = peers.some((p) => p.localPort === s.clientPort);
      const chunkserver = peers.some((p) => p.localPort === s.chunkserverPort);
      if (mount !== this.seen.mount) this.mark(mount ? 'mount connected to the standby' : 'mount disconnected');
      if (chunkserver !== this.seen.chunkserver)
        this.mark(chunkserver ? 'chunkserver connected to the standby' : 'chunkserver disconnected');
      this.seen.mount = mount;
      this.seen.chunkserver = chunkserver;
      this.followConnects(await readTables(s.clientNetPid));
      const alive = s.chunkserverAlive();
      if (alive !== this.seen.alive) this.mark(alive ? 'chunkserver started again' : 'chunkserver process died');
      this.seen.alive = alive;
      const log = await fs.readFile(s.chunkserverLog).catch(() => Buffer.alloc(0));
      const text = log.subarray(this.logOffset).toString('utf8');
      const end = text.lastIndexOf('\n') + 1;
      this.logOffset += Buffer.byteLength(text.slice(0, end));
      for (const line of text.slice(0, end).split('\n')) {
        const m = CHUNKSERVER_LINES.exec(line);
        if (m) this.mark(`chunkserver: ${m[0] === 'set gid' ? 'process started' : m[0]}`);
      }
    } finally {
      this.busy = false;
    }
  }

  /** The clients' connects to the VIP as their machine sees them (a socket gone in SYN_SENT: a failed connect). */
  private followConnects(tables: string[]): void {
    const now = new Map<number, { state: number; retransmits: number; who: string }>();
    for (const sock of tables.flatMap(parseTcpSockets)) {
      if (sock.remote !== this.s.vip) continue;
      const who =
        sock.remotePort === this.s.clientPort
          ? 'mount'
          : sock.remotePort === this.s.chunkserverPort
            ? 'chunkserver'
            : undefined;
      if (who) now.set(sock.localPort, { state: sock.state, retransmits: sock.retransmits, who });
    }
    for (const [port, cur] of now) {
      const was = this.sockets.get(port);
      const tag = `${cur.who} (:${port})`;
      if (cur.state === SYN_SENT && was?.state !== SYN_SENT) this.mark(`${tag}: connect (SYN sent)`);
      else if (cur.state === SYN_SENT && cur.retransmits > (was?.retransmits ?? 0))
        this.mark(`${tag}: SYN sent again (${cur.retransmits})`);
      else if (cur.state !== was?.state) this.mark(`${tag}: ${STATES[cur.state] ?? cur.state}`);
    }
    for (const [port, was] of this.sockets)
      if (!now.has(port))
        this.mark(`${was.who} (:${port}): closed${was.state === SYN_SENT ? ' in SYN_SENT: connect failed' : ''}`);
    this.sockets = now;
  }

  stop(): TimelineEvent[] {
    clearInterval(this.timer);
    return this.events;
  }
}

const SYN_SENT = 2;
/** The kernel's TCP states (include/net/tcp_states.h). */
const STATES: Record<number, string> = {
  1: 'connected',
  2: 'SYN_SENT',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  11: 'CLOSING',
};

/** /proc/net/tcp and tcp6 of the network namespace process `pid` lives in. */
function readTables(pid: number): Promise<string[]> {
  return Promise.all(['tcp', 'tcp6'].map((t) => fs.readFile(`/proc/${pid}/net/${t}`, 'latin1').catch(() => '')));
}

/** ucarp's own log: when it switched to MASTER after `since` (its stamps are local time, microseconds). */
export async function ucarpMasterAt(log: string, since: number): Promise<number | undefined> {
  const text = await fs.readFile(log, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const m = /^(\S+): \[WARNING\] Switching to state: MASTER/.exec(line);
    const at = m ? new Date(m[1]!).getTime() : NaN;
    if (at >= since) return at;
  }
  return undefined;
}

/**
 * The marks promote recorded: its process start (the hook's call), the job's start, the end of each phase
 * it times (fence, collecting, placing, restoring until it served) — as events since the kill.
 */
export function promoteEvents(state: PromoteState, killedAt: number): TimelineEvent[] {
  const t = state.details?.timings ?? {};
  const jobStart = Date.parse(state.startedAt);
  const processStart = jobStart - (t.startupMs ?? 0);
  const began = jobStart + (t.checkMs ?? 0);
  const at = (ms: number) => ms - killedAt;
  const out: TimelineEvent[] = [
    { ms: at(processStart), what: 'promote: process started' },
    { ms: at(jobStart), what: 'promote: job started (Node start-up, config)' },
    { ms: at(began), what: 'promote: checks done, fence and collect begin' },
  ];
  if (t.fenceMs !== undefined) out.push({ ms: at(began + t.fenceMs), what: 'promote: fence verdict' });
  if (t.inventoryMs !== undefined)
    out.push({ ms: at(began + t.inventoryMs), what: 'promote: sources listed (inventory)' });
  if (t.inventoryMs !== undefined && t.fetchMs !== undefined)
    out.push({ ms: at(began + t.inventoryMs + t.fetchMs), what: 'promote: files fetched' });
  const rto = state.details?.rtoSeconds;
  if (rto !== undefined) {
    const served = processStart + rto * 1000;
    if (t.restoreMs !== undefined) {
      const restoring = served - t.restoreMs;
      out.push({ ms: at(restoring), what: 'promote: placed; restore begins' });
      if (t.metarestoreMs !== undefined)
        out.push({ ms: at(restoring + t.metarestoreMs), what: 'promote: mfsmetarestore done, next chunk id raised' });
      if (t.masterStartMs !== undefined)
        out.push({
          ms: at(restoring + (t.metarestoreMs ?? 0) + t.masterStartMs),
          what: 'promote: mfsmaster started and answering',
        });
    }
    out.push({ ms: at(served), what: 'promote: master serving (then: VIP still held? announced)' });
  }
  return out;
}

export function formatTimeline(events: TimelineEvent[]): string {
  return [...events]
    .sort((a, b) => a.ms - b.ms)
    .map((e) => `${(e.ms / 1000).toFixed(2).padStart(7)} s  ${e.what}`)
    .join('\n');
}
