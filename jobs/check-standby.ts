import { z } from 'zod';
import { jobOptionsSchema } from '../lib/core/config.js';
import { defineJob, worst, type Metric } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import { lastClientsBack } from '../lib/failover/clients-watch.js';
import { checkFault } from '../lib/failover/keepalived-fault.js';
import { checkReadiness, type Finding } from '../lib/failover/readiness.js';
import { requireStandby } from '../lib/failover/standby.js';

const options = jobOptionsSchema({
  /** Time to open and list one source (promote's own sourceTimeoutSeconds is the failover's budget). */
  sourceTimeoutSeconds: z.number().positive().default(10),
  cliTimeoutSeconds: z.number().positive().default(10),
  /** How far behind the live master a promotion now may start before this is a WARNING / CRITICAL. */
  lagVersionsWarn: z.number().int().min(0).default(100),
  lagVersionsCrit: z.number().int().min(0).default(1000),
  lagSecondsWarn: z.number().min(0).default(300),
  lagSecondsCrit: z.number().min(0).default(1800),
  /** standby.mirror: its state unchanged this long while a source has newer changes is a WARNING. */
  mirrorStaleSeconds: z.number().positive().default(120),
});

/** checkStandby and the generation's own check can both find a missing LOCK_FILE: say it once. */
function unique(findings: readonly Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => !seen.has(f.text) && seen.add(f.text));
}

/**
 * Readiness before failure: run on the standby every few minutes, it proves that `promote` would succeed
 * now — or names, before the outage, the setting that would make it refuse (lib/failover/readiness.ts).
 */
export default defineJob({
  ...CARDS['check-standby'],
  options,
  async run(ctx) {
    const { config, options: o } = ctx;
    // The daemon schedules it everywhere; a machine that is no standby has nothing to prove.
    if (!config.standby) {
      const summary = `no standby configured on this machine (standby: in ${config.file}): nothing to check`;
      return { status: 'OK', summary };
    }
    const standby = requireStandby(config);
    const r = await checkReadiness(config, standby, {
      sourceTimeoutMs: o.sourceTimeoutSeconds * 1000,
      cliTimeoutMs: o.cliTimeoutSeconds * 1000,
      lag: {
        versionsWarn: o.lagVersionsWarn,
        versionsCrit: o.lagVersionsCrit,
        secondsWarn: o.lagSecondsWarn,
        secondsCrit: o.lagSecondsCrit,
      },
      mirrorStaleMs: o.mirrorStaleSeconds * 1000,
      signal: ctx.signal,
    });
    // keepalived held in FAULT after a refusal (issue #24): released here when its reason is gone.
    const fault = r.serving ? undefined : await checkFault(config, standby, { timeoutMs: o.cliTimeoutSeconds * 1000 });
    const clients = await lastClientsBack(config.stateDir);
    const findings = unique([...r.findings, ...(fault?.findings ?? [])]);
    const notes = [...r.notes, ...(fault?.notes ?? [])];
    const lines = [...findings.map((f) => `${f.status}: ${f.text}`), ...notes, ...(clients ? [clients.line] : [])];
    const { plan, lag } = r;
    const details = {
      findings,
      serving: r.serving ?? null,
      generation: r.generation?.name ?? null,
      binaries: r.binaries ? { mfsmaster: r.binaries.mfsmaster, key: r.binaries.key } : null,
      master: r.master ?? null,
      promotion: plan
        ? {
            version: plan.reached,
            newest: plan.newest,
            image: `${plan.image.source}:${plan.image.name}`,
            lag: lag ?? null,
          }
        : null,
      freeBytes: r.freeBytes ?? null,
      neededBytes: r.neededBytes ?? null,
      lastPromotionClients: clients?.details ?? null,
    };
    const metrics: Metric[] = [
      metric('standby_problems', findings.filter((f) => f.status !== 'OK').length),
      ...(r.master ? [metric('master_metadata_version', r.master.version)] : []),
      ...(plan ? [metric('promotion_version', plan.reached)] : []),
      ...(lag
        ? [metric('promotion_lag_versions', lag.versions, { warn: o.lagVersionsWarn, crit: o.lagVersionsCrit })]
        : []),
      ...(lag?.seconds !== undefined
        ? [metric('promotion_lag_seconds', lag.seconds, { warn: o.lagSecondsWarn, crit: o.lagSecondsCrit })]
        : []),
      ...(r.freeBytes !== undefined ? [metric('standby_free_bytes', r.freeBytes)] : []),
      ...(standby.keepalivedTrackFile && fault ? [metric('keepalived_fault_held', fault.held)] : []),
    ];
    if (r.serving) {
      const at = r.serving.version !== undefined ? `, metadata version ${r.serving.version}` : '';
      const summary = `this machine's mfsmaster serves (pid ${r.serving.pid}${at}): it is the master, not standing by`;
      // Its hook scripts run at the next failover all the same (notify_backup, the down-script).
      const hooks = findings.filter((f) => f.setting.startsWith('standby.hookScripts.'));
      const why = hooks.map((f) => `; ${f.text}`).join('');
      return { status: worst('OK', ...hooks.map((f) => f.status)), summary: summary + why, details, metrics, lines };
    }
    const status = worst(...findings.map((f) => f.status));
    if (status !== 'OK') {
      const why = findings
        .filter((f) => f.status === status)
        .map((f) => f.text)
        .join('; ');
      const summary = `a promotion now would ${status === 'CRITICAL' ? 'fail' : 'need attention'}: ${why}`;
      return { status, summary, details, metrics, lines };
    }
    const seconds = lag?.seconds !== undefined ? ` / ${lag.seconds} s` : '';
    const behind = lag ? `, ${lag.versions} version(s)${seconds} behind ${r.master!.name}` : '';
    const binaries = `${r.binaries?.mfsmaster ?? 'mfsmaster'} (${r.generation?.label ?? 'generation unknown'})`;
    const version = plan?.reached ?? '?';
    const summary = `ready: a promotion now would restore metadata version ${version}${behind} with ${binaries}`;
    return { status, summary, details, metrics, lines };
  },
});
