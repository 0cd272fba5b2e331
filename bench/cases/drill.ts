import path from 'node:path';
import { compare, expectExitZero, jobAvailable, notAvailable, type BenchContext, type CaseResult, type Side } from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import { expectServing, placeChain, scratchMaster, stopAndWipe } from '../scratch.js';

/**
 * Case 4: a restore drill of the 1M-file image and its changelogs — `mfs-jobs run drill` (copy into a
 * scratch DATA_PATH, `mfsmaster -a`, check it serves, stop, clean up) against bare `mfsmaster -a` on
 * the same files already in place.
 */
export async function drillCase(ctx: BenchContext, chain: ChainInfo): Promise<CaseResult> {
  const bare = await scratchMaster(path.join(ctx.runDir, 'drill-bare'));
  const restore: Side = {
    label: 'mfsmaster -a',
    command: { cmd: 'mfsmaster', args: ['-c', bare.configFile, '-a', 'start'] },
    prepare: () => placeChain(chain, bare.dataPath),
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(bare, chain.last + 1);
    },
    cleanup: () => stopAndWipe(bare),
  };
  const result = {
    id: 'drill',
    title: `drill, ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB)`,
    target: { text: '≤ 1.5× bare restore', maxRatio: 1.5 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('drill')) {
    const [baseline] = await compare(ctx, [restore], { warmup: !ctx.quick });
    return notAvailable({ ...result, baseline }, 'drill');
  }
  throw new Error('drill case: the job landed, its side is not written yet');
}
