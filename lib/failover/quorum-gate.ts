import type { Config } from '../core/config.js';
import { describeError } from '../core/errors.js';
import { failsafePromise } from './failsafe.js';
import type { FenceAnswer } from './fence.js';
import { lagGate, lagInputOf, type LagLimits, type LagVerdict } from './lag-gate.js';
import type { SettledPlan } from './collect.js';
import { powerFence, type PowerFenceResult } from './power-fence.js';
import { acquireLeader, Quorum, type LeaderView } from './quorum.js';

/**
 * Promote's side of issue #25, in the order promote asks: the power-fence hook for every old master whose
 * state probing could not establish, then the leader key (a create-if-absent transaction, waiting at most
 * one TTL for an ending lease), then — at plan time — the lag gate. Each says its decision and why.
 */
export interface QuorumDetails {
  /** What the fence decided and why, one line each (also in `lines`). */
  decision: string;
  powerFence: PowerFenceResult[];
  key?: string;
  holder?: string | null;
  ttlSeconds?: number | null;
  previous?: LeaderView | null;
  waitedMs?: number;
}

export interface HeldLease {
  /** Keep it (the daemon adopts and renews it once mfsmaster serves): stop renewing from here. */
  stop(): Promise<void>;
  /** Not promoting after all: end the lease now. */
  release(): Promise<void>;
}

export type QuorumFence =
  | { refused: string; lines: string[]; details: QuorumDetails; lease?: undefined }
  | { refused?: undefined; lines: string[]; details: QuorumDetails; lease?: HeldLease };

export async function quorumFence(
  config: Config,
  answers: readonly FenceAnswer[],
  o: { signal?: AbortSignal; dryRun?: boolean },
): Promise<QuorumFence> {
  const power = await powerFence(config, answers, o.signal);
  const lines = power.map((p) => `power fence: ${p.detail}`);
  const failed = power.filter((p) => !p.fenced);
  const details: QuorumDetails = { decision: '', powerFence: power };
  if (failed.length > 0) {
    const names = failed.map((p) => p.master).join(', ');
    details.decision = `refused: the state of ${names} cannot be established and fence.command failed`;
    return {
      refused: `${failed.map((p) => p.detail).join('; ')} (its state could not be established)`,
      lines,
      details,
    };
  }
  const q = Quorum.open(config);
  if (!q) {
    details.decision = power.length
      ? `fenced by fence.command: ${power.map((p) => p.master).join(', ')}`
      : 'no quorum configured: fencing by probes alone';
    return { lines, details };
  }
  // A promise given to a serving master (failsafe) lasts one TTL: wait it out, as for an ending lease; a
  // master that still asks renews it, and then this refuses.
  const { ttlSeconds, retryTimeoutSeconds, loopWaitSeconds } = config.quorum!.etcd;
  const promiseWaitUntil = Date.now() + (ttlSeconds + retryTimeoutSeconds) * 1000;
  let promise = await failsafePromise(config);
  while (promise && promise.until < promiseWaitUntil && !o.signal?.aborted) {
    await new Promise((r) => setTimeout(r, Math.max(50, promise!.until - Date.now() + 50)));
    promise = await failsafePromise(config);
  }
  if (promise) {
    q.close();
    const until = new Date(promise.until).toISOString();
    details.decision = `refused: failsafe promise to ${promise.from} until ${until}`;
    return {
      refused:
        `${promise.from} serves in failsafe mode (etcd unreachable) ` +
        `and this host promised it not to promote until ${until}`,
      lines,
      details,
    };
  }
  if (o.dryRun) {
    const view = await q.leader().catch((err: unknown) => ({ error: describeError(err) }));
    q.close();
    details.decision =
      'error' in view
        ? `dry run: etcd unreachable (${view.error})`
        : `dry run: key ${view.holder ? `held by ${view.holder}` : 'free'}`;
    return { lines: [...lines, `quorum: ${details.decision}`], details };
  }
  const got = await acquireLeader(q, { maxWaitMs: (ttlSeconds + retryTimeoutSeconds) * 1000, signal: o.signal });
  details.key = q.leaderKey;
  details.waitedMs = got.waitedMs;
  if (!got.acquired) {
    q.close();
    details.holder = got.holder ?? null;
    details.ttlSeconds = got.ttlSeconds ?? null;
    details.decision =
      got.why === 'held'
        ? `refused: ${got.holder} holds the leader key on a live lease`
        : 'refused: no etcd quorum from here';
    const why = got.why === 'held' ? got.detail : `no etcd quorum from here: ${got.detail}`;
    return {
      refused: `${why} (quorum: a master is fenced only when its lease has ended)`,
      lines: [...lines, `quorum: ${why}`],
      details,
    };
  }
  details.holder = q.name;
  details.ttlSeconds = ttlSeconds;
  details.previous = got.previous ?? null;
  const prev = got.previous?.holder;
  details.decision = prev
    ? `fenced by the quorum: ${prev}'s lease ended (it stops serving before its lease ends), ` +
      `key taken after ${(got.waitedMs / 1000).toFixed(1)} s`
    : got.adopted
      ? 'the leader key already names this host'
      : 'fenced by the quorum: the leader key was free (no master held it)';
  lines.push(
    `quorum: ${q.leaderKey} held by ${q.name} (lease ${got.leaseId}, TTL ${ttlSeconds} s): ${details.decision}`,
  );
  // Renewed from here while the promotion runs (a restore may take longer than a TTL).
  const timer = setInterval(() => void q.keepAlive(got.leaseId).catch(() => undefined), loopWaitSeconds * 1000);
  let done = false;
  const finish = async (revoke: boolean) => {
    if (done) return;
    done = true;
    clearInterval(timer);
    if (revoke) await q.revoke(got.leaseId).catch(() => undefined);
    else await q.keepAlive(got.leaseId).catch(() => undefined);
    q.close();
  };
  return { lines, details, lease: { stop: () => finish(false), release: () => finish(true) } };
}

/** The lag gate at plan time, with the leader key's last report when a quorum is configured. */
export async function lagCheck(
  config: Config,
  settled: SettledPlan,
  limits: LagLimits,
): Promise<LagVerdict & { line?: string }> {
  // No limits: no gate, nothing asked, nothing said (promote's report as before).
  if (limits.maximumLagVersions === undefined && limits.maximumLagSeconds === undefined) {
    return { ...lagGate(lagInputOf(settled, undefined), {}), line: undefined };
  }
  const q = Quorum.open(config);
  const report = q ? await q.lastReport().catch(() => undefined) : undefined;
  q?.close();
  const verdict = lagGate(lagInputOf(settled, report), limits);
  return { ...verdict, line: `lag gate: ${verdict.why}` };
}
