import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compare, expectExitZero, jobAvailable, notAvailable, sshClientOptions, type BenchContext, type CaseResult, type Side } from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import { expectServing, scratchMaster, stopAndWipe } from '../scratch.js';

/** bench/baseline/promote.sh in the repository (this file runs from dist/bench/cases/). */
const BASELINE_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bench/baseline/promote.sh');

/**
 * Case 3: turn the standby into the master from a metalogger reached over the loopback sshd —
 * `mfs-jobs run promote` against the recipe's up-script (bench/baseline/promote.sh: scp the
 * metalogger's image and changelogs, `mfsmaster -a`). Both end with a master serving the chain's end.
 */
export async function promoteCase(ctx: BenchContext, chain: ChainInfo): Promise<CaseResult> {
  const standby = await scratchMaster(path.join(ctx.runDir, 'promote-script'));
  const script: Side = {
    label: 'recipe script (scp + mfsmaster -a)',
    command: {
      cmd: BASELINE_SCRIPT,
      args: [`root@${ctx.sshd.host}`, chain.dataPath, standby.dataPath, standby.configFile, '-P', String(ctx.sshd.port), ...sshClientOptions(ctx)],
    },
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(standby, chain.last + 1);
    },
    cleanup: () => stopAndWipe(standby),
  };
  const result = {
    id: 'promote',
    title: `promote, ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB) over loopback`,
    target: { text: '≤ 1.3× recipe script', maxRatio: 1.3 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('promote')) {
    const [baseline] = await compare(ctx, [script], { warmup: !ctx.quick });
    return notAvailable({ ...result, baseline }, 'promote');
  }
  throw new Error('promote case: the job landed, its side is not written yet');
}
