import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMaster } from '../../lib/moosefs/mfsmaster.js';
import {
  compare,
  expectExitZero,
  finish,
  jobAvailable,
  jobReport,
  mfsJobs,
  notAvailable,
  writeJobsConfig,
  type BenchContext,
  type CaseResult,
  type Side,
} from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import { expectServing, masterPeakRssMb, scratchMaster, stopAndWipe } from '../scratch.js';

/**
 * Case 2: check a metalogger's long changelog set — `mfs-jobs run verify` (image header, every line
 * parsed, versions contiguous, lag against a master serving the chain's end) against `wc -l` on the
 * same files, the least any tool can do: read every byte once.
 */
export async function verifyCase(ctx: BenchContext, chain: ChainInfo, id = 'verify'): Promise<CaseResult> {
  const files = chain.changelogs.map((c) => path.join(chain.dataPath, c.name));
  const wc: Side = { label: 'wc -l', command: { cmd: 'wc', args: ['-l', ...files] }, check: expectExitZero };
  const nodeCount: Side = {
    label: 'Node newline count',
    command: {
      cmd: process.execPath,
      args: [fileURLToPath(new URL('../node-line-count.js', import.meta.url)), ...files],
    },
    check: expectExitZero,
  };
  const lines = chain.last - chain.first + 1;
  const result = {
    id,
    title: `verify, ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB, ${(lines / 1e6).toFixed(1)}M lines)`,
    target: { text: '≤ 5× wc -l', maxRatio: 5 },
    figures: { changelogMb: Math.round(chain.changelogBytes / 2 ** 20), lines } as Record<string, number | string>,
    notes: [
      'both read from the page cache (the files were just generated or read): a cold cache makes both disk-bound',
      'verify scans a local DATA_PATH of >= 64 MB in worker threads, a file per core (issue #28); wc -l and the ' +
        'Node newline count use one core',
    ],
  };
  if (!jobAvailable('verify')) {
    const [baseline] = await compare(ctx, [wc]);
    return notAvailable({ ...result, baseline }, 'verify');
  }
  // The master serves the chain's end, so verify finds the metalogger 0 versions behind.
  const master = await scratchMaster(path.join(ctx.runDir, `${id}-master`));
  await fs.copyFile(chain.finalImage, path.join(master.dataPath, 'metadata.mfs'));
  const started = await startMaster({ configFile: master.configFile, autoRestore: false });
  try {
    if (started.code !== 0)
      throw new Error(`master for the verify case did not start: ${started.output.trim().split('\n').pop()}`);
    await expectServing(master, chain.last + 1);
    result.figures.mfsmasterPeakRssMb = (await masterPeakRssMb(master)) ?? '-';
    const config = await writeJobsConfig(ctx, id, {
      masters: [{ name: 'master', host: master.cliHost, cliPort: master.ports.cl, dataPath: master.dataPath }],
      // The generated image is as old as the cache: a long META_DOWNLOAD_FREQ keeps its age from mattering.
      metaloggers: [
        { name: 'ml', host: '127.0.0.1', dataPath: chain.dataPath, local: true, metaDownloadFreqHours: 100_000 },
      ],
    });
    const statuses = new Set<string>();
    const verify: Side = {
      label: 'mfs-jobs run verify',
      command: mfsJobs('run', 'verify', '--config', config, '--json'),
      check: (sample) => {
        const report = jobReport(sample);
        const figures = (report.details.sources as Record<string, { restorableVersion?: number }> | undefined)?.ml;
        if (figures?.restorableVersion !== undefined && figures.restorableVersion !== chain.last + 1) {
          throw new Error(
            `verify says ml restores to ${figures.restorableVersion}, expected ${chain.last + 1}: ${report.summary}`,
          );
        }
        statuses.add(`${report.status}: ${report.summary}`);
      },
    };
    const [subject, baseline, floor] = await compare(ctx, [verify, wc, nodeCount]);
    result.figures.verifyResult = [...statuses].join(' / ').slice(0, 300);
    return finish(ctx, { ...result, status: 'measured', subject, baseline, otherBaselines: [floor!] }, verify);
  } finally {
    await stopAndWipe(master);
  }
}
