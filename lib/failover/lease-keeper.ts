import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, StandbyConfig } from '../core/config.js';
import { describeError } from '../core/errors.js';
import { processAlive } from '../core/lock.js';
import type { Logger } from '../core/logger.js';
import { masterStatus } from '../moosefs/master.js';
import { askPeers, serveFailsafe, type FailsafeServer } from './failsafe.js';
import { Quorum, QuorumError } from './quorum.js';
import { standbyMasterPid } from './standby.js';
import { releaseVip } from './vip.js';

/**
 * The serving master's side of the quorum lease, run by `mfs-jobs daemon` (issue #25). Every
 * loopWaitSeconds: while this host's mfsmaster runs, hold `<prefix>/leader` (take it when absent, adopt
 * it when it names this host — promote took it — renew it, record the master's version for the lag
 * gate). Self-fencing: a watchdog that looks every 100 ms stops the master (SIGTERM, kill -9 after half a
 * retry timeout) and drops the VIP once the time it may serve is within retryTimeoutSeconds of its end —
 * so it is down before etcd can expire the lease and a standby can take the key. It may serve until:
 * the last renewal's send time + the TTL etcd gave, or (failsafe) the send time of the last ask every peer
 * confirmed + the TTL. The rule loop_wait + 2 x retry_timeout <= ttl (config.ts) leaves room for one
 * missed renewal and one retry before the stop — if nothing else holds the renewals: the leader report
 * (mfscli, then etcd) runs beside the loop, and failsafe asks run on the watchdog's clock, not the loop's.
 */
export interface KeeperState {
  holding: boolean;
  etcd: 'ok' | 'unreachable' | 'unknown';
  failsafeUntil?: number;
  fenced?: string;
}

export class LeaseKeeper {
  private held: { leaseId: string; validUntil: number } | undefined;
  private failsafeUntil = 0;
  private graceUntil = 0;
  /** Send time of the last renewal etcd answered (or when this master was first seen serving). */
  private renewedAt = 0;
  private reporting = false;
  private readonly besides = new Set<Promise<void>>();
  private lastAskAt = 0;
  private asksInFlight = 0;
  private servingPid: number | undefined;
  private fencing: Promise<void> | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private failsafe: FailsafeServer | undefined;
  readonly state: KeeperState = { holding: false, etcd: 'unknown' };

  private constructor(
    private readonly config: Config,
    private readonly standby: StandbyConfig,
    private readonly q: Quorum,
    private readonly log: Logger,
  ) {}

  static async start(config: Config, standby: StandbyConfig, log: Logger): Promise<LeaseKeeper | undefined> {
    const q = Quorum.open(config);
    if (!q) return undefined;
    const k = new LeaseKeeper(config, standby, q, log);
    k.failsafe = await serveFailsafe(config, { promoting: () => k.promotingReason(), log });
    k.loop = k.run();
    k.watchdog = setInterval(() => k.check(), 100);
    const { ttlSeconds, loopWaitSeconds, retryTimeoutSeconds } = config.quorum!.etcd;
    log.info('quorum: keeping the leader key while this master serves', {
      key: q.leaderKey,
      name: q.name,
      ttlSeconds,
      loopWaitSeconds,
      retryTimeoutSeconds,
    });
    return k;
  }

  private get ms() {
    const e = this.config.quorum!.etcd;
    return { ttl: e.ttlSeconds * 1000, loop: e.loopWaitSeconds * 1000, retry: e.retryTimeoutSeconds * 1000 };
  }

  /** Why this host cannot promise a serving peer not to promote: its own master runs, or a promotion does. */
  private async promotingReason(): Promise<string | undefined> {
    const pid = await standbyMasterPid(this.standby);
    if (pid !== undefined) return `mfsmaster (pid ${pid}) runs here`;
    const lock = await fs.readFile(path.join(this.config.lockDir, 'failover.lock'), 'utf8').catch(() => undefined);
    const owner = lock ? (JSON.parse(lock) as { pid?: number; job?: string }) : undefined;
    if (owner?.pid && processAlive(owner.pid))
      return `${owner.job ?? 'a failover job'} (pid ${owner.pid}) is running here`;
    return undefined;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const began = Date.now();
      await this.tick().catch((err: unknown) => this.log.error(`quorum: ${describeError(err)}`));
      const wait = Math.max(0, this.ms.loop - (Date.now() - began));
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Until when this master may serve, by what it knows now. */
  allowedUntil(): number {
    return Math.max(this.held?.validUntil ?? 0, this.failsafeUntil, this.graceUntil);
  }

  private async tick(): Promise<void> {
    if (this.fencing) return;
    const pid = await standbyMasterPid(this.standby);
    if (pid === undefined) {
      this.servingPid = undefined;
      if (this.held) {
        // Stopped here (demote, an operator): the standby need not wait out the TTL.
        const { leaseId } = this.held;
        this.held = undefined;
        this.state.holding = false;
        await this.q.revoke(leaseId).catch(() => undefined);
        this.log.info('quorum: mfsmaster stopped here; leader key released', { key: this.q.leaderKey });
      }
      return;
    }
    if (this.servingPid !== pid) {
      // Just started (promote took the key first) or first seen: this tick must take or adopt the key.
      this.servingPid = pid;
      this.renewedAt = Date.now();
      this.graceUntil = this.renewedAt + this.ms.ttl;
    }
    const sentAt = Date.now();
    try {
      if (this.held) {
        const ttl = await this.q.keepAlive(this.held.leaseId);
        if (ttl > 0) this.held.validUntil = sentAt + ttl * 1000;
        else {
          this.log.warn('quorum: etcd says our lease has ended', { leaseId: this.held.leaseId });
          this.held = undefined;
        }
      }
      if (!this.held) await this.takeOrAdopt(sentAt);
      if (this.state.etcd === 'unreachable') this.log.info('quorum: etcd answers again');
      this.state.etcd = 'ok';
      this.renewedAt = sentAt;
      this.failsafeUntil = 0;
      this.graceUntil = 0;
      this.state.holding = this.held !== undefined;
      // Beside the loop, never in it: mfscli and an etcd that dies after the renewal would hold the next
      // renewal (and, chained to it, the failsafe ask) for up to two retry timeouts, past the stop.
      if (this.held && !this.reporting) {
        this.reporting = true;
        this.beside(this.reportVersion().finally(() => (this.reporting = false)));
      }
    } catch (err) {
      if (!(err instanceof QuorumError)) throw err;
      if (this.state.etcd !== 'unreachable') this.log.warn(`quorum: ${describeError(err)}`);
      this.state.etcd = 'unreachable';
    }
  }

  private async takeOrAdopt(sentAt: number): Promise<void> {
    const view = await this.q.leader();
    if (view.holder === this.q.name && view.leaseId) {
      const ttl = await this.q.keepAlive(view.leaseId);
      if (ttl > 0) {
        this.held = { leaseId: view.leaseId, validUntil: sentAt + ttl * 1000 };
        this.log.info('quorum: leader key adopted', { key: this.q.leaderKey, leaseId: view.leaseId });
        return;
      }
    }
    if (view.holder && view.holder !== this.q.name) {
      // Another master holds the key while ours runs: ours is the one that must go.
      await this.selfFence(`${view.holder} holds ${this.q.leaderKey} while mfsmaster runs here`);
      return;
    }
    const leaseId = await this.q.grant();
    if (await this.q.takeIfAbsent(leaseId)) {
      this.held = { leaseId, validUntil: sentAt + this.ms.ttl };
      this.log.info('quorum: leader key taken', { key: this.q.leaderKey, leaseId });
    } else {
      await this.q.revoke(leaseId).catch(() => undefined);
    }
  }

  private async reportVersion(): Promise<void> {
    const { cliHost: host, cliPort: port } = this.standby;
    const status = await masterStatus({
      host,
      port,
      bin: this.config.mfscliBin,
      timeoutMs: this.ms.retry,
      generation: this.config.moosefs.generation,
    }).catch(() => undefined);
    if (status?.metadataVersion) await this.q.report(status.metadataVersion).catch(() => undefined);
  }

  /**
   * With failsafe, from the watchdog: ask the peers while etcd is out of reach, or once no renewal sent in
   * the last loopWait + half a retry timeout has been answered — whatever held it (etcd, an election after a
   * member rejoins, a loaded machine). Not sooner: an answer makes the peer promise not to promote. One ask every
   * min(loopWait, retry/2) while that lasts, each bounded by the retry timeout and not waiting for the one
   * before: one slow answer (the peer fsyncs its promise first) leaves the next ask time before the stop.
   */
  private maybeAskPeers(now: number): void {
    if (!this.config.quorum?.failsafe || this.servingPid === undefined) return;
    const overdue = this.state.etcd === 'unreachable' || now - this.renewedAt >= this.ms.loop + this.ms.retry / 2;
    const every = Math.min(this.ms.loop, this.ms.retry / 2);
    if (!overdue || now - this.lastAskAt < every || this.asksInFlight > this.ms.retry / every) return;
    this.lastAskAt = now;
    this.asksInFlight++;
    this.beside(
      this.failsafeRound(now)
        .catch((err: unknown) => void this.log.error(`quorum: failsafe: ${describeError(err)}`))
        .finally(() => this.asksInFlight--),
    );
  }

  /** Work running beside the loop (a report, an ask): each bounded by a retry timeout, waited for by close(). */
  private beside(work: Promise<void>): void {
    this.besides.add(work);
    void work.finally(() => this.besides.delete(work)).catch(() => undefined);
  }

  /** Ask every peer once; all confirm: serve on until `sentAt` (before the ask left) + the TTL. */
  private async failsafeRound(sentAt: number): Promise<void> {
    const peers = this.config.masters;
    const answers = await askPeers(this.config, peers, this.ms.retry);
    if (this.fencing || this.servingPid === undefined) return;
    if (answers.every((a) => a.confirmed)) {
      if (this.failsafeUntil === 0)
        this.log.warn(
          'quorum: etcd slow or unreachable; failsafe: every other master confirms it is not promoting, serving on',
          { peers: peers.map((p) => p.name) },
        );
      this.failsafeUntil = Math.max(this.failsafeUntil, sentAt + this.ms.ttl);
    } else
      this.log.warn(
        `quorum: failsafe not confirmed: ${answers
          .filter((a) => !a.confirmed)
          .map((a) => a.detail)
          .join('; ')}`,
      );
    this.state.failsafeUntil = this.failsafeUntil;
  }

  /** The watchdog: fence once the time left to serve is within one retry timeout. */
  private check(): void {
    if (this.servingPid === undefined || this.fencing || this.stopped) return;
    const now = Date.now();
    this.maybeAskPeers(now);
    if (now >= this.allowedUntil() - this.ms.retry) {
      const why =
        this.state.etcd === 'unreachable'
          ? 'etcd unreachable and no failsafe confirmation'
          : 'the leader lease could not be renewed';
      void this.selfFence(`${why} within ${this.config.quorum!.etcd.ttlSeconds} s`);
    }
  }

  /** Stop this host's mfsmaster (kill -9 if it does not go in half a retry timeout), drop the VIP. */
  selfFence(why: string): Promise<void> {
    this.fencing ??= (async () => {
      const pid = this.servingPid ?? (await standbyMasterPid(this.standby));
      this.log.error(`quorum: self-fencing: ${why}: stopping mfsmaster${pid ? ` (pid ${pid})` : ''}`, { pid });
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        const until = Date.now() + this.ms.retry / 2;
        while (processAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        if (processAlive(pid)) {
          this.log.error(`quorum: mfsmaster (pid ${pid}) still running: kill -9`);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      if (this.standby.vip) {
        const released = await releaseVip(this.standby.vip).catch((e: unknown) => [`failed: ${describeError(e)}`]);
        this.log.error('quorum: self-fenced', { vip: this.standby.vip, released });
      }
      this.state.fenced = `${new Date().toISOString()}: ${why}`;
      this.held = undefined;
      this.state.holding = false;
      this.servingPid = undefined;
      this.failsafeUntil = 0;
      this.graceUntil = 0;
    })().finally(() => (this.fencing = undefined));
    return this.fencing;
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([...this.besides]);
    await this.failsafe?.close();
    this.q.close();
  }
}
