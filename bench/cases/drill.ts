import path from 'node:path';
import {
  compare,
  expectExitZero,
  FigureSamples,
  finish,
  jobAvailable,
  jobReport,
  metricValue,
  mfsJobs,
  notAvailable,
  writeJobsConfig,
  warmedUp,
  type BenchContext,
  type CaseResult,
  type Side,
} from '../bench-case.js';
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
    target: { text: '≤ 1.2× bare restore (issue 28)', maxRatio: 1.2 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('drill')) {
    const [baseline] = await compare(ctx, [restore], { warmup: !ctx.quick });
    return notAvailable({ ...result, baseline }, 'drill');
  }
  const config = await writeJobsConfig(ctx, 'drill', {
    metaloggers: [{ name: 'ml', host: '127.0.0.1', dataPath: chain.dataPath, local: true }],
  });
  const timings = new FigureSamples();
  const drill: Side = {
    label: 'mfs-jobs run drill --from ml',
    command: mfsJobs('run', 'drill', '--from', 'ml', '--config', config, '--json'),
    check: (sample) => {
      const report = jobReport(sample);
      const restored = metricValue(report, 'restored_version');
      if (restored !== chain.last + 1)
        throw new Error(`drill restored version ${restored}, expected ${chain.last + 1}: ${report.summary}`);
      timings.add({
        rtoSeconds: metricValue(report, 'rto_seconds'),
        ...((report.details.timings ?? {}) as Record<string, unknown>),
      });
    },
  };
  const [subject, baseline] = await compare(ctx, [drill, restore], { warmup: !ctx.quick });
  Object.assign(result.figures, timings.medians(warmedUp(ctx, !ctx.quick) ? 1 : 0));
  result.notes.push(
    'the drill also starts Node, copies the files (local metalogger) and scans the changelogs (the guard and the mfsmaster -v probe beside the copy), asks the master over its protocol (serving, version and counts in one answer; mfscli only with moosefs.generation pinned to 3.0), then kills it and removes the scratch beside the guard; the bare restore starts from files already in place, flushed, and is not asked, stopped or removed',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, drill);
}
