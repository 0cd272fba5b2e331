import { isIPv6 } from 'node:net';
import os from 'node:os';
import { delay } from '../core/delay.js';
import { execCapture } from '../core/exec.js';
import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';

/**
 * Hold the clients' connection attempts while the VIP is here and the master is not listening yet.
 *
 * In a VIP failover the address lands on the standby a fraction of a second before its mfsmaster listens.
 * A client whose SYN arrives in that window is refused (RST) and waits out its own back-off: mfsmount
 * retries every 2 s, a chunkserver at its next MASTER_RECONNECTION_DELAY tick (5 s by default). A SYN that
 * is dropped instead is sent again by the client's kernel 1 s later (TCP's initial retransmission timeout),
 * inside mfsmount's 2 s connect timeout, and by then the master listens: the client connects instead of
 * backing off. (MooseFS 4.59.2: mfsclient/mastercomm.c CONNECT_TIMEOUT 2000 and `portable_sleep(2)`,
 * mfschunkserver/masterconn.c MASTER_RECONNECTION_DELAY.)
 *
 * The drop is an nftables table of its own (`inet mfs_jobs`): one rule per family for TCP SYNs to the
 * addresses in a set, on the master's ports. The VIP is in the set only while this standby's master is not
 * serving, with an element timeout the daemon keeps refreshing — so it is already in place when the VIP
 * arrives (no race with the first SYN), and if the daemon dies the hold ends by itself within
 * `timeoutMs`. It is given up when the VIP has been here `giveUpMs` without a master (a refused promotion:
 * clients are refused again, not left hanging), and released the moment promote's mfsmaster has started.
 */
export interface SynHoldOptions {
  vip: string;
  ports: readonly number[];
  /** The nft command (tests prefix it with nsenter); default `nft`. */
  nft?: readonly string[];
  /** Is this machine's master serving (promote: its client port is listening)? Then nothing is held. */
  serving: () => Promise<boolean>;
  /** Is the VIP on one of this machine's interfaces? Default: os.networkInterfaces(). */
  vipHere?: () => boolean;
  refreshMs?: number;
  /** The set element's own timeout: how long a hold outlives a dead daemon. */
  timeoutMs?: number;
  giveUpMs?: number;
  log: Logger;
}

export const SYN_HOLD_TABLE = 'mfs_jobs';

/** The nft script that (re)creates the table: set per family, one drop rule each. Pure, for the unit test. */
export function holdTableScript(ports: readonly number[]): string {
  const p = [...new Set(ports)].sort((a, b) => a - b).join(', ');
  const rule = (fam: 'ip' | 'ip6', set: string) =>
    `${fam} daddr @${set} tcp dport { ${p} } tcp flags & (syn | ack) == syn drop;`;
  return [
    `add table inet ${SYN_HOLD_TABLE};`,
    `delete table inet ${SYN_HOLD_TABLE};`,
    `table inet ${SYN_HOLD_TABLE} {`,
    ' set held4 { type ipv4_addr; flags timeout; };',
    ' set held6 { type ipv6_addr; flags timeout; };',
    ` chain hold { type filter hook input priority -10; policy accept; ${rule('ip', 'held4')} ${rule('ip6', 'held6')} };`,
    '}',
  ].join(' ');
}

/** The nft commands that put `vip` in the set for `timeoutMs` (replacing an older element), or take it out. */
export function holdElementScript(vip: string, timeoutMs: number | undefined): string {
  const set = isIPv6(vip) ? 'held6' : 'held4';
  const flush = `flush set inet ${SYN_HOLD_TABLE} ${set};`;
  return timeoutMs === undefined
    ? flush
    : `${flush} add element inet ${SYN_HOLD_TABLE} ${set} { ${vip} timeout ${Math.max(1, Math.ceil(timeoutMs / 1000))}s };`;
}

function vipOnInterfaces(vip: string): boolean {
  const want = vip.toLowerCase();
  return Object.values(os.networkInterfaces()).some((list) => list?.some((a) => a.address.toLowerCase() === want));
}

export class SynHold {
  private readonly stop = new AbortController();
  private readonly o: Required<Omit<SynHoldOptions, 'log'>> & { log: Logger };
  private held = false;
  private vipSince: number | undefined;
  /** Released (promote started the master) or given up (the VIP here too long without one): until the VIP leaves. */
  private done = false;
  private loop: Promise<void> | undefined;
  private failing = false;
  private queue: Promise<void> = Promise.resolve();
  private claims = 0;

  constructor(o: SynHoldOptions) {
    const refreshMs = o.refreshMs ?? 1_000;
    this.o = {
      nft: ['nft'],
      vipHere: () => vipOnInterfaces(o.vip),
      timeoutMs: 3 * refreshMs,
      giveUpMs: 30_000,
      ...o,
      refreshMs,
    };
  }

  /** Make the table and start holding; false (said once in the log) when nftables cannot be used here. */
  async start(): Promise<boolean> {
    const made = await this.nft(holdTableScript(this.o.ports));
    if (!made) return false;
    this.loop = this.run();
    return true;
  }

  /** Holding the VIP's SYNs right now? */
  get holding(): boolean {
    return this.held;
  }

  /**
   * A promotion is under way: from now until release() or unclaim() the hold is promote's to end — neither
   * a port that starts listening before promote has checked its master, nor the give-up time (restoring
   * a 100M-file image takes minutes) ends it.
   */
  claim(): void {
    this.claims++;
  }

  unclaim(): void {
    this.claims = Math.max(0, this.claims - 1);
  }

  /** The master has started: clients may connect from now on, and are not held again until the VIP has left. */
  async release(): Promise<void> {
    this.done = true;
    if (this.held) await this.set(false);
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.loop;
    await this.nft(`delete table inet ${SYN_HOLD_TABLE};`);
  }

  private async run(): Promise<void> {
    while (!this.stop.signal.aborted) {
      const began = Date.now();
      await this.tick(began).catch((err: unknown) =>
        this.o.log.warn(`SYN hold for ${this.o.vip}: ${describeError(err)}`),
      );
      await delay(Math.max(0, began + this.o.refreshMs - Date.now()), this.stop.signal);
    }
  }

  private async tick(now: number): Promise<void> {
    const here = this.o.vipHere();
    if (!here) {
      this.vipSince = undefined;
      this.done = false;
    } else this.vipSince ??= now;
    if (this.claims === 0 && (await this.o.serving())) return void (this.held && (await this.set(false)));
    if (here && !this.done && this.claims === 0 && now - this.vipSince! >= this.o.giveUpMs) {
      this.done = true;
      this.o.log.warn(
        `virtual IP ${this.o.vip} held here for ${this.o.giveUpMs / 1000} s without a serving master: clients are no longer held, they are refused`,
      );
    }
    if (this.done) return void (this.held && (await this.set(false)));
    await this.set(true);
  }

  /** One nft change at a time, in order: a refresh already under way must not re-add the VIP after release(). */
  private set(hold: boolean): Promise<void> {
    const next = this.queue.then(async () => {
      if (hold && this.done) return;
      if (await this.nft(holdElementScript(this.o.vip, hold ? this.o.timeoutMs : undefined))) this.held = hold;
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async nft(script: string): Promise<boolean> {
    const [cmd, ...pre] = this.o.nft;
    const res = await execCapture(cmd!, [...pre, script], { timeoutMs: 5_000 }).catch((err: Error) => ({
      code: -1,
      stderr: err.message,
      stdout: '',
    }));
    if (res.code === 0) {
      if (this.failing) this.o.log.info(`SYN hold for ${this.o.vip}: nftables works again`);
      this.failing = false;
      return true;
    }
    if (!this.failing)
      this.o.log.warn(
        `SYN hold for ${this.o.vip}: nft failed (${(res.stderr || res.stdout).trim().split('\n')[0] || `exit ${res.code}`}); clients arriving before the master listens are refused, not held`,
      );
    this.failing = true;
    return false;
  }
}
