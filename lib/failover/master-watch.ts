import type { MasterHost } from '../core/config.js';
import { arpProbe, type ArpAnswer } from './arp.js';
import { probePort, type FenceAnswer, type Reachability } from './fence.js';
import { delay } from '../core/delay.js';

/**
 * Fencing ahead of time. On a standby, `mfs-jobs daemon` probes every other master all the time
 * (a TCP connect to its client port every `intervalMs`; ARP when the connect gets no answer), so that
 * when the VIP lands here the fence already knows: a master seen dead by several probes in a row,
 * the last one a moment ago, needs no fresh probe. Anything else (alive, not sure, not watched, a
 * verdict gone stale) and promote probes as it always did: the watch may only make a "dead" answer
 * earlier, never make a live master look dead.
 *
 * An unregistered connection that closes at once is not logged by mfsmaster (matoclserv logs only
 * registered clients' disconnects), so the probes leave no trace in the old master's syslog.
 */

export interface WatchOptions {
  intervalMs: number;
  /** ARP window and requests, as the fence's own (fenceArpMilliseconds, fenceArpProbes); windowMs 0: no ARP. */
  arp: { windowMs: number; probes: number };
  /** Consecutive dead probes before the watch answers for the fence. */
  confirmations?: number;
  /** No probes while this says so (this machine serves itself: it is no standby now); its word goes stale meanwhile. */
  idle?: () => Promise<boolean>;
  onChange?: (m: MasterHost, state: WatchState) => void;
}

export type WatchState =
  | { kind: 'alive'; at: number }
  | { kind: 'unsure'; at: number; detail: string }
  | {
      kind: 'dead';
      reachability: Exclude<Reachability, 'listening'>;
      detail: string;
      arp?: ArpAnswer;
      since: number;
      at: number;
      probes: number;
    };

export class MasterWatch {
  private readonly states = new Map<string, WatchState>();
  private stopped = false;
  private readonly stop = new AbortController();
  private readonly loops: Promise<void>[];

  constructor(
    readonly masters: readonly MasterHost[],
    private readonly o: WatchOptions,
  ) {
    this.loops = masters.map((m) => this.watch(m));
  }

  /**
   * The fence's answer for `m` if the watch already has it: dead for at least `confirmations` probes
   * in a row, the newest one finished at most `freshMs` ago.
   */
  deadAnswer(m: MasterHost, freshMs: number, now = Date.now()): FenceAnswer | undefined {
    const s = this.states.get(keyOf(m));
    if (!s || s.kind !== 'dead' || s.probes < (this.o.confirmations ?? 2) || now - s.at > freshMs) return undefined;
    const since = new Date(s.since).toISOString().slice(11, 23);
    return {
      name: m.name,
      address: `${m.cliHost}:${m.cliPort}`,
      reachability: s.reachability,
      detail: `${s.detail} (the daemon's watch: down since ${since} UTC, ${s.probes} probes in a row, the last ${now - s.at} ms ago)`,
      arp: s.arp,
      ms: 0,
      watched: true,
    };
  }

  state(m: MasterHost): WatchState | undefined {
    return this.states.get(keyOf(m));
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.stop.abort();
    await Promise.all(this.loops);
  }

  private set(m: MasterHost, next: WatchState): void {
    const before = this.states.get(keyOf(m));
    this.states.set(keyOf(m), next);
    if (before?.kind !== next.kind) this.o.onChange?.(m, next);
  }

  private async watch(m: MasterHost): Promise<void> {
    const { intervalMs } = this.o;
    while (!this.stopped) {
      const began = Date.now();
      if (await this.o.idle?.().catch(() => false)) {
        this.states.delete(keyOf(m));
        await delay(intervalMs * 4, this.stop.signal);
        continue;
      }
      const s = await this.probeOnce(m);
      if (this.stopped) break;
      if (s) {
        const before = this.states.get(keyOf(m));
        const streak =
          before?.kind === 'dead' && s.kind === 'dead' && before.reachability === s.reachability ? before : undefined;
        this.set(
          m,
          s.kind === 'dead' ? { ...s, since: streak?.since ?? s.since, probes: (streak?.probes ?? 0) + 1 } : s,
        );
      }
      await delay(Math.max(0, began + intervalMs - Date.now()), this.stop.signal);
    }
  }

  private async probeOnce(m: MasterHost): Promise<WatchState | undefined> {
    const signal = this.stop.signal;
    const started = Date.now();
    const tcp = await probePort(m.cliHost, m.cliPort, this.o.intervalMs, signal);
    if (signal.aborted) return undefined;
    const at = Date.now();
    if (tcp.reachability === 'listening') return { kind: 'alive', at };
    if (tcp.reachability === 'refused')
      return { kind: 'dead', reachability: 'refused', detail: tcp.detail, since: started, at, probes: 1 };
    if (this.o.arp.windowMs <= 0) return { kind: 'unsure', at, detail: tcp.detail };
    const arp = await arpProbe(m.cliHost, { ...this.o.arp, signal });
    if (signal.aborted) return undefined;
    if (arp.state !== 'silent')
      return {
        kind: 'unsure',
        at: Date.now(),
        detail: arp.state === 'reply' ? 'host answers ARP, port silent' : arp.why,
      };
    return {
      kind: 'dead',
      reachability: 'unreachable',
      detail: `host down: no ARP reply on ${arp.dev} to ${arp.probes} request(s) within ${arp.ms} ms`,
      arp,
      since: started,
      at: Date.now(),
      probes: 1,
    };
  }
}

function keyOf(m: MasterHost): string {
  return `${m.name}\0${m.cliHost}:${m.cliPort}`;
}
