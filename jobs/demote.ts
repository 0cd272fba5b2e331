import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { jobOptionsSchema } from '../lib/core/config.js';
import { defineJob } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import { processAlive } from '../lib/core/lock.js';
import { binariesFor } from '../lib/moosefs/generations/binaries.js';
import { generationNamed } from '../lib/moosefs/generations/index.js';
import { masterStatus } from '../lib/moosefs/master.js';
import { mfsmasterErrorLine, stopMaster } from '../lib/moosefs/mfsmaster.js';
import { requireStandby, standbyMasterPid } from '../lib/failover/standby.js';
import { vipHeld } from '../lib/failover/vip.js';

const options = jobOptionsSchema({ stopTimeoutSeconds: z.number().positive().default(600) });
/** The command line (flags and help: its card in lib/core/job-cards.ts). */
const args = z.strictObject({ force: z.boolean().optional() });

/**
 * The other failover hook: ucarp's down-script, keepalived's notify_backup / notify_fault. A clean
 * `mfsmaster stop` writes metadata.mfs; every file stays in DATA_PATH (the next promote moves it aside).
 */
export default defineJob({
  ...CARDS.demote,
  options,
  args,
  lockName: 'failover',
  lockWaitSeconds: 900,
  async run(ctx) {
    const { config } = ctx;
    const standby = requireStandby(config);
    const pid = await standbyMasterPid(standby);
    if (pid === undefined)
      return {
        status: 'OK',
        summary: `no mfsmaster runs on ${standby.dataPath}; nothing to do`,
        details: { changed: false },
      };
    // keepalived gives no ordering of notify scripts: when the VIP is back here, a promotion came after this demotion.
    if (standby.vip && !ctx.args.force && (await vipHeld(standby.vip, ctx.signal))) {
      return {
        status: 'WARNING',
        summary: `virtual IP ${standby.vip} is held here: not stopping mfsmaster (pid ${pid}); --force stops it anyway`,
        details: { pid, changed: false },
      };
    }
    const status = await masterStatus({
      host: standby.cliHost,
      port: standby.cliPort,
      bin: config.mfscliBin,
      timeoutMs: 3_000,
      generation: config.moosefs.generation,
    }).catch(() => undefined);
    const version = status?.metadataVersion;
    // Stopped the way its own generation is (1.6.4 takes `-s`; the word `stop` would restart it).
    const generation =
      status?.generation ??
      (config.moosefs.generation === 'auto' ? undefined : generationNamed(config.moosefs.generation));
    const bin = generation ? binariesFor(config, generation).mfsmaster : standby.mfsmasterBin;
    const at = version === undefined ? '' : ` at metadata version ${version}`;
    if (ctx.dryRun)
      return {
        status: 'OK',
        summary: `dry run: would stop mfsmaster (pid ${pid})${at}`,
        details: { pid, changed: false },
      };
    const res = await stopMaster({
      configFile: standby.masterConfig,
      bin,
      generation,
      timeoutMs: ctx.options.stopTimeoutSeconds * 1000,
    });
    const deadline = Date.now() + 10_000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (processAlive(pid)) {
      return {
        status: 'CRITICAL',
        summary: `mfsmaster (pid ${pid}) still runs after "mfsmaster stop": ${mfsmasterErrorLine(res.output)}`,
        details: { pid, changed: false },
      };
    }
    const image = await fs.stat(path.join(standby.dataPath, 'metadata.mfs')).catch(() => undefined);
    const kept = image ? 'metadata.mfs written, ' : '';
    return {
      status: 'OK',
      summary: `stopped mfsmaster (pid ${pid})${at} cleanly in ${(res.durationMs / 1000).toFixed(2)} s; ${kept}files kept in ${standby.dataPath}`,
      details: { pid, metadataVersion: version ?? null, changed: true, stopSeconds: res.durationMs / 1000 },
      metrics: [metric('stop_seconds', res.durationMs / 1000)],
    };
  },
});
