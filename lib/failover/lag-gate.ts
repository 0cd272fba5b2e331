import type { SettledPlan } from './collect.js';
import type { LeaderReport } from './quorum.js';

/**
 * The lag gate (issue #25; Patroni's maximum_lag_on_failover, moosefs issue #151: a promoted metalogger
 * months behind): a restore point further behind than the limits from the newest version anything saw —
 * any source's files, or the leader key's last report of what its master served — is refused.
 */
export interface LagLimits {
  maximumLagVersions?: number;
  maximumLagSeconds?: number;
}

export interface LagVerdict {
  ok: boolean;
  lagVersions: number;
  /** undefined: no timestamps to tell (a limit in seconds then refuses: the age cannot be shown). */
  lagSeconds?: number;
  /** What the lag is measured from. */
  newest: { version: number; by: string };
  why: string;
}

export interface LagInput {
  reached: number;
  /** Unix time of the restore point's last change (its last changelog line), when known. */
  reachedTimestamp?: number;
  newest: number;
  /** Unix time of the newest line any source holds. */
  newestTimestamp?: number;
  report?: LeaderReport;
}

/** Pure: the verdict for one restore point (no limits: always ok). */
export function lagGate(input: LagInput, limits: LagLimits): LagVerdict {
  const fromReport = input.report && input.report.metadataVersion > input.newest;
  const newest = fromReport
    ? { version: input.report!.metadataVersion, by: `the leader key's last report (${input.report!.holder})` }
    : { version: input.newest, by: 'the sources' };
  const lagVersions = Math.max(0, newest.version - input.reached);
  const times = [
    input.newestTimestamp,
    input.report && input.report.metadataVersion > input.reached ? Math.floor(input.report.at / 1000) : undefined,
  ];
  const newestTime = Math.max(0, ...times.filter((t): t is number => t !== undefined));
  const lagSeconds =
    lagVersions === 0
      ? 0
      : input.reachedTimestamp !== undefined && newestTime > 0
        ? Math.max(0, newestTime - input.reachedTimestamp)
        : undefined;
  const over: string[] = [];
  if (limits.maximumLagVersions !== undefined && lagVersions > limits.maximumLagVersions) {
    over.push(`${lagVersions} versions behind (maximumLagVersions ${limits.maximumLagVersions})`);
  }
  if (limits.maximumLagSeconds !== undefined && lagVersions > 0) {
    if (lagSeconds === undefined)
      over.push(
        `${lagVersions} versions behind and its age cannot be told ` +
          `(no timestamps; maximumLagSeconds ${limits.maximumLagSeconds})`,
      );
    else if (lagSeconds > limits.maximumLagSeconds)
      over.push(`${lagSeconds} s behind (maximumLagSeconds ${limits.maximumLagSeconds})`);
  }
  const at = `restore point ${input.reached}, newest ${newest.version} by ${newest.by}`;
  return {
    ok: over.length === 0,
    lagVersions,
    lagSeconds,
    newest,
    why: over.length ? `${over.join(', ')}: ${at}` : `within the lag limits: ${at}`,
  };
}

/** The gate's input from promote's settled plan (and the leader report, when a quorum is configured). */
export function lagInputOf(settled: SettledPlan, report: LeaderReport | undefined): LagInput {
  const { plan, group } = settled.choice;
  const last = plan.steps.at(-1);
  // The last step reaches its file's end: that file's newest line is the restore point's time.
  const reachedTimestamp = last && last.segment.last + 1 === plan.reached ? last.changelog.lastTimestamp : undefined;
  const stamps = group.changelogs.map((c) => c.lastTimestamp).filter((t): t is number => t !== undefined);
  return {
    reached: plan.reached,
    reachedTimestamp,
    newest: plan.newest,
    newestTimestamp: stamps.length ? Math.max(...stamps) : undefined,
    report,
  };
}
