import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Etcd3, IOptions } from 'etcd3';
import type { Config, QuorumConfig } from '../core/config.js';
import { describeError, MfsJobsError } from '../core/errors.js';

/**
 * The quorum lease (issue #25): `<prefix>/leader` names the master allowed to serve, attached to an etcd
 * lease of `ttlSeconds`. etcd does the consensus (a linearizable read or a transaction needs a majority of
 * its members); this file only asks it, every call bounded by a deadline. As Patroni does it: the holder
 * renews, a candidate takes the key only by a create-if-absent transaction, so it gets it only once the
 * holder's lease has ended — and the holder stops serving before that (lease-keeper.ts).
 */

/** etcd could not answer (no quorum from here, a dead member, TLS refused); `subject` is the endpoints. */
export class QuorumError extends MfsJobsError {}

export interface LeaderView {
  /** Who holds the key; undefined: nobody (absent). */
  holder?: string;
  leaseId?: string;
  /** The lease's remaining TTL as etcd counts it, seconds. */
  ttlSeconds?: number;
}

/** What the holder's daemon last recorded about its master (the lag gate's reference). */
export interface LeaderReport {
  holder: string;
  metadataVersion: number;
  /** ms since the epoch, the daemon's clock when it read the version. */
  at: number;
}

/** This host's name in the leader key: quorum.name, else the short hostname. */
export function quorumName(config: Config): string {
  return config.quorum?.name ?? os.hostname().split('.')[0]!;
}

const MAX_VALUE_BYTES = 1024;

// etcd3 (gRPC and protobufjs, with cockatiel) costs ≈ 0.28 s of CPU to load, and every `run promote` imports this
// file: it loads only when a quorum is configured (start-up, issue #28). Both are CommonJS, so open() stays sync.
const requireLazily = createRequire(import.meta.url);

export class Quorum {
  private constructor(
    /** One client per endpoint, each request sent to all at once: a member cut off from its majority only times out. */
    private readonly clients: Etcd3[],
    readonly q: QuorumConfig,
    readonly name: string,
  ) {}

  /** A client for config.quorum, or undefined when none is configured (today's behaviour). */
  static open(config: Config): Quorum | undefined {
    const q = config.quorum;
    if (!q) return undefined;
    const { etcd } = q;
    const read = (file: string, key: string) => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new QuorumError(key, `quorum.etcd.${key} ${file}: ${describeError(err)}`);
      }
    };
    // No retries and no circuit breaker (etcd3's defaults, via cockatiel, its own dependency): a breaker opened
    // by the timeouts of an election kept a healthy member from being asked for seconds, past the lease.
    const { noop } = requireLazily('cockatiel') as typeof import('cockatiel');
    const { Etcd3 } = requireLazily('etcd3') as typeof import('etcd3');
    const options: Omit<IOptions, 'hosts'> = {
      dialTimeout: etcd.retryTimeoutSeconds * 1000,
      faultHandling: { host: () => noop, global: noop },
    };
    if (etcd.caFile) {
      options.credentials = {
        rootCertificate: read(etcd.caFile, 'caFile'),
        ...(etcd.certFile && etcd.keyFile
          ? { certChain: read(etcd.certFile, 'certFile'), privateKey: read(etcd.keyFile, 'keyFile') }
          : {}),
      };
    }
    return new Quorum(
      etcd.endpoints.map((hosts) => new Etcd3({ ...options, hosts })),
      q,
      quorumName(config),
    );
  }

  get ttlSeconds(): number {
    return this.q.etcd.ttlSeconds;
  }
  get leaderKey(): string {
    return `${this.q.etcd.prefix}/leader`;
  }
  get reportKey(): string {
    return `${this.q.etcd.prefix}/leader-report`;
  }
  private get subject(): string {
    return this.q.etcd.endpoints.join(',');
  }

  /** Call options: every request ends by its deadline (default: one retry timeout). */
  private opts(timeoutMs = this.q.etcd.retryTimeoutSeconds * 1000) {
    return { deadline: new Date(Date.now() + timeoutMs) };
  }

  /**
   * `f` against every endpoint at once; the first answer wins. Safe for what is asked here: linearizable
   * reads, a keep-alive, transactions whose compare makes a second success impossible.
   */
  private async call<T>(what: string, f: (client: Etcd3) => Promise<T>): Promise<T> {
    try {
      return await Promise.any(this.clients.map((c) => f(c)));
    } catch (err) {
      const first =
        err instanceof AggregateError
          ? (err.errors.map(describeError).find((m) => !/CANCELLED/.test(m)) ?? describeError(err.errors[0]))
          : describeError(err);
      throw new QuorumError(this.subject, `etcd ${this.subject}: ${what}: ${first}`);
    }
  }

  /** Who holds the leader key and for how long yet (a linearizable read: needs etcd's majority). */
  async leader(timeoutMs?: number): Promise<LeaderView> {
    const o = this.opts(timeoutMs);
    const res = await this.call('reading the leader key', (c) => c.get(this.leaderKey).options(o).exec());
    const kv = res.kvs[0];
    if (!kv) return {};
    const holder = kv.value.subarray(0, MAX_VALUE_BYTES).toString('utf8');
    const leaseId = kv.lease;
    if (!leaseId || leaseId === '0') return { holder };
    const ttl = await this.call('reading the lease', (c) =>
      c.leaseClient.leaseTimeToLive({ ID: leaseId }, this.opts(timeoutMs)),
    );
    return { holder, leaseId, ttlSeconds: Math.max(0, Number(ttl.TTL)) };
  }

  /** A new lease of ttlSeconds (not yet attached to anything). */
  async grant(timeoutMs?: number): Promise<string> {
    const o = this.opts(timeoutMs);
    const grants = this.clients.map((c) => c.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, o).then((r) => r.ID));
    const first = await this.call('granting a lease', (c) => grants[this.clients.indexOf(c)]!);
    // Every other member that granted one too: its lease is not used, end it.
    for (const g of grants)
      void g
        .then(
          (id) => (id === first ? undefined : this.revoke(id)),
          () => undefined,
        )
        .catch(() => undefined);
    return first;
  }

  /** Put the leader key on `leaseId` if and only if the key is absent: true when this call took it. */
  async takeIfAbsent(leaseId: string, timeoutMs?: number): Promise<boolean> {
    const o = this.opts(timeoutMs);
    const all = this.clients.map((c) =>
      c
        .if(this.leaderKey, 'Create', '==', 0)
        .then(c.put(this.leaderKey).value(this.name).lease(leaseId))
        .options(o)
        .commit(),
    );
    // Sent to every member: one of them may succeed after another answered "exists" (our own put): any success counts.
    const first = await this.call('taking the leader key', (c) => all[this.clients.indexOf(c)]!);
    if (first.succeeded) return true;
    const settled = await Promise.allSettled(all);
    return settled.some((r) => r.status === 'fulfilled' && r.value.succeeded);
  }

  /**
   * One keep-alive of `leaseId`: the TTL etcd now gives it (0: the lease has ended). Measured from before
   * the request left: the lease is valid at least that long after `sentAt`.
   */
  async keepAlive(leaseId: string, timeoutMs?: number): Promise<number> {
    const options = this.opts(timeoutMs);
    return this.call('renewing the lease', async (c) => {
      const stream = await c.leaseClient.leaseKeepAlive(options);
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error('no keep-alive answer before the deadline')),
            options.deadline.getTime() - Date.now(),
          );
          stream.on('data', (d: { TTL: string }) => (clearTimeout(timer), resolve(d)));
          stream.on('error', (e: Error) => (clearTimeout(timer), reject(e)));
          stream.write({ ID: leaseId });
        });
        return Math.max(0, Number(res.TTL));
      } finally {
        stream.end();
      }
    });
  }

  /** End a lease now (its key goes with it): a master that stopped serving need not make others wait a TTL. */
  async revoke(leaseId: string, timeoutMs?: number): Promise<void> {
    const o = this.opts(timeoutMs);
    await this.call('revoking the lease', (c) => c.leaseClient.leaseRevoke({ ID: leaseId }, o));
  }

  /** Record the master's version, only while the leader key is ours (a transaction on its value). */
  async report(metadataVersion: number, timeoutMs?: number): Promise<boolean> {
    const value = JSON.stringify({ holder: this.name, metadataVersion, at: Date.now() } satisfies LeaderReport);
    const o = this.opts(timeoutMs);
    const res = await this.call('recording the leader report', (c) =>
      c.if(this.leaderKey, 'Value', '==', this.name).then(c.put(this.reportKey).value(value)).options(o).commit(),
    );
    return res.succeeded;
  }

  /** The holder's last report, validated (a value of the wrong shape or size is no report). */
  async lastReport(timeoutMs?: number): Promise<LeaderReport | undefined> {
    const o = this.opts(timeoutMs);
    const res = await this.call('reading the leader report', (c) => c.get(this.reportKey).options(o).exec());
    const raw = res.kvs[0]?.value;
    if (!raw || raw.length > MAX_VALUE_BYTES) return undefined;
    try {
      const r = JSON.parse(raw.toString('utf8')) as Partial<LeaderReport>;
      const ok = typeof r.holder === 'string' && Number.isSafeInteger(r.metadataVersion) && Number.isFinite(r.at);
      return ok ? (r as LeaderReport) : undefined;
    } catch {
      return undefined;
    }
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

export type Acquired =
  | { acquired: true; leaseId: string; waitedMs: number; previous?: LeaderView; adopted: boolean }
  | {
      acquired: false;
      why: 'held' | 'unreachable';
      waitedMs: number;
      holder?: string;
      ttlSeconds?: number;
      detail: string;
    };

/**
 * Take the leader key for this host: at once when absent, after at most `maxWaitMs` when a lease is
 * ending (it can only end: nobody renews a lease for long without its holder serving). A key of our own
 * name (this host's daemon or an earlier promote) is ours already. Refused: held by a live lease at the
 * end of the wait, or etcd has no quorum from here.
 */
export async function acquireLeader(q: Quorum, o: { maxWaitMs: number; signal?: AbortSignal }): Promise<Acquired> {
  const began = Date.now();
  let leaseId: string | undefined;
  let previous: LeaderView | undefined;
  let last: LeaderView;
  try {
    for (;;) {
      last = await q.leader();
      previous ??= last.holder ? last : undefined;
      if (last.holder === q.name && last.leaseId)
        return { acquired: true, leaseId: last.leaseId, waitedMs: Date.now() - began, previous, adopted: true };
      if (!last.holder) {
        leaseId ??= await q.grant();
        if (await q.takeIfAbsent(leaseId))
          return { acquired: true, leaseId, waitedMs: Date.now() - began, previous, adopted: false };
        continue;
      }
      const left = o.maxWaitMs - (Date.now() - began);
      if (left <= 0 || o.signal?.aborted) break;
      await new Promise((r) => setTimeout(r, Math.min(250, left)));
    }
  } catch (err) {
    if (leaseId) await q.revoke(leaseId).catch(() => undefined);
    return { acquired: false, why: 'unreachable', waitedMs: Date.now() - began, detail: describeError(err) };
  }
  if (leaseId) await q.revoke(leaseId).catch(() => undefined);
  const waited = ((Date.now() - began) / 1000).toFixed(1);
  const left = `${last.ttlSeconds ?? '?'} s left after waiting ${waited} s`;
  const detail = `${q.leaderKey} is held by ${last.holder} on a live lease (${left})`;
  return {
    acquired: false,
    why: 'held',
    waitedMs: Date.now() - began,
    holder: last.holder,
    ttlSeconds: last.ttlSeconds,
    detail,
  };
}

export interface QuorumStatus {
  configured: boolean;
  /** etcd answered (a majority from here). */
  reachable?: boolean;
  key?: string;
  holder?: string | null;
  ttlSeconds?: number | null;
  self?: string;
  report?: LeaderReport | null;
  error?: string;
  /** One line for a status table. */
  line: string;
  /** The fencing decision a promotion from this host would meet now, and why. */
  decision?: string;
}

/** For `status`/`verify`: who holds the leader key, the lease's remaining TTL, the holder's last report. */
export async function quorumStatus(config: Config): Promise<QuorumStatus> {
  let q: Quorum | undefined;
  try {
    q = Quorum.open(config);
    if (!q) return { configured: false, line: 'quorum: not configured' };
    const view = await q.leader();
    const report = (await q.lastReport()) ?? null;
    const holder = view.holder ?? null;
    const line = holder
      ? `quorum: ${q.leaderKey} held by ${holder}${holder === q.name ? ' (this host)' : ''}, ` +
        `lease ${view.ttlSeconds ?? '?'} s left`
      : `quorum: ${q.leaderKey} is free (no master holds it)`;
    const decision = !holder
      ? 'a promotion here would take the free key'
      : holder === q.name
        ? 'this host holds the key: its master may serve'
        : `a promotion here would wait at most ${q.ttlSeconds} s for ${holder}'s lease to end, and refuse while ` +
          `${holder} renews it`;
    return {
      configured: true,
      reachable: true,
      key: q.leaderKey,
      holder,
      ttlSeconds: view.ttlSeconds ?? null,
      self: q.name,
      report,
      line,
      decision,
    };
  } catch (err) {
    const error = describeError(err);
    return {
      configured: true,
      reachable: false,
      error,
      line: `quorum: etcd unreachable from here: ${error}`,
      decision: 'a promotion here would be refused: no etcd majority from here',
    };
  } finally {
    q?.close();
  }
}
