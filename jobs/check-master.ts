import { z } from 'zod';
import { jobOptionsSchema } from '../lib/core/config.js';
import { describeError } from '../lib/core/errors.js';
import { defineJob, type Metric } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import { dataPathOf, masterStatus, masterVersion, targetOf, type MasterStatus } from '../lib/moosefs/master.js';

/** "serves metadata version 145"; a 1.x master serves without saying its version. */
function serves(s: MasterStatus): string {
  return s.metadataVersion !== undefined
    ? `serves metadata version ${s.metadataVersion}`
    : `serves (MooseFS ${s.softwareVersion}, which does not report its metadata version)`;
}

/** Is the master up, and at which metadata version? The smallest useful check, and the framework's proof. */
export default defineJob({
  ...CARDS['check-master'],
  options: jobOptionsSchema({ cliTimeoutSeconds: z.number().positive().default(10) }),
  async run(ctx) {
    const { config, options } = ctx;
    if (config.masters.length === 0)
      return { status: 'UNKNOWN', summary: 'no masters configured (masters: in the config)' };
    const answers = await Promise.all(
      config.masters.map(async (m) => {
        try {
          const target = targetOf(config, m, { timeoutMs: options.cliTimeoutSeconds * 1000, signal: ctx.signal });
          const info = await masterStatus(target);
          // A 1.x master does not report its version: its DATA_PATH says it, when mfs-jobs may read it.
          const dataPath = info.metadataVersion === undefined ? dataPathOf(config, m, ctx.signal) : undefined;
          if (!dataPath) return { name: m.name, info };
          const withVersion = await masterVersion(target, dataPath).catch((err: unknown) => {
            ctx.log.warn(`${m.name}: metadata version not read from its DATA_PATH`, { error: describeError(err) });
            return info;
          });
          return { name: m.name, info: withVersion };
        } catch (err) {
          return { name: m.name, error: describeError(err) };
        }
      }),
    );
    const up = answers.filter((a): a is { name: string; info: MasterStatus } => 'info' in a);
    const lines = answers.map((a) =>
      'info' in a && a.info
        ? `${a.name}: ${serves(a.info)} (MooseFS ${a.info.softwareVersion})`
        : `${a.name}: ${'error' in a ? a.error : ''}`,
    );
    const metrics: Metric[] = up.flatMap((a) =>
      a.info.metadataVersion === undefined
        ? []
        : [metric('metadata_version', a.info.metadataVersion, { labels: { master: a.name } })],
    );
    metrics.push(metric('masters_up', up.length));
    const details = { masters: answers };
    if (up.length === 0)
      return {
        status: 'CRITICAL',
        summary: `no master answers: ${answers.map((a) => ('error' in a ? a.error : '')).join('; ')}`,
        details,
        metrics,
        lines,
      };
    if (up.length > 1) {
      return {
        status: 'WARNING',
        summary: `${up.length} masters answer at once (${up.map((a) => `${a.name}@${a.info.metadataVersion ?? a.info.softwareVersion}`).join(', ')}): only one should run`,
        details,
        metrics,
        lines,
      };
    }
    const only = up[0]!;
    return { status: 'OK', summary: `${only.name} ${serves(only.info)}`, details, metrics, lines };
  },
});
