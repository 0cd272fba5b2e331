import fs from 'node:fs/promises';
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
import { baselineScript, expectServing, placeChain, scratchMaster, stopAndWipe } from '../scratch.js';

/**
 * Case 4: a restore drill of an image and its changelogs (1M; with --scale also up to 10M) — `mfs-jobs run drill`
 * (copy into a scratch DATA_PATH, `mfsmaster -a`, check it serves, stop, clean up) against issue 28's baseline,
 * `cp` of the same files + `mfsmaster -a`; `mfsmaster -a` on the files already in place is a third side, reported.
 */
export async function drillCase(ctx: BenchContext, chain: ChainInfo, id = 'drill'): Promise<CaseResult> {
  const bare = await scratchMaster(path.join(ctx.runDir, `${id}-bare`));
  const files = ['metadata_ml.mfs.back', ...chain.changelogs.map((c) => c.name)];
  // Issue 28's baseline: `cp` of the same files + `mfsmaster -a` (bench/baseline/drill-cp.sh).
  const restore: Side = {
    label: 'cp + mfsmaster -a',
    command: { cmd: baselineScript('drill-cp.sh'), args: [chain.dataPath, bare.dataPath, bare.configFile, ...files] },
    prepare: async () => {
      await fs.mkdir(bare.dataPath, { recursive: true, mode: 0o700 });
    },
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(bare, chain.last + 1);
    },
    cleanup: () => stopAndWipe(bare),
  };
  // The case's baseline until issue 28 (#8's target: ≤ 1.5×): `mfsmaster -a` on files already in place, flushed.
  const inPlace: Side = {
    label: 'mfsmaster -a, files in place',
    command: { cmd: 'mfsmaster', args: ['-c', bare.configFile, '-a', 'start'] },
    prepare: () => placeChain(chain, bare.dataPath),
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(bare, chain.last + 1);
    },
    cleanup: () => stopAndWipe(bare),
  };
  const result = {
    id,
    title: `drill, ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB)`,
    target: { text: '≤ 1.2× cp + mfsmaster -a (issue 28)', maxRatio: 1.2 },
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
  const [subject, baseline, placed] = await compare(ctx, [drill, restore, inPlace], { warmup: !ctx.quick });
  Object.assign(result.figures, timings.medians(warmedUp(ctx, !ctx.quick) ? 1 : 0));
  result.notes.push(
    `vs \`mfsmaster -a\` with the files already in place (${placed!.medianSeconds.toFixed(3)} s): ${(subject!.medianSeconds / placed!.medianSeconds).toFixed(2)}×`,
    'the drill also starts Node, copies the files (local metalogger) and scans the changelogs (the guard and the mfsmaster -v probe beside the copy), asks the master over its protocol (serving, version and counts in one answer; mfscli only with moosefs.generation pinned to 3.0), then kills it and removes the scratch beside the guard; the baseline copies the files with cp and runs mfsmaster -a; it is not asked, stopped or removed',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, drill);
}
