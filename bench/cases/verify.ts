import { compare, expectExitZero, jobAvailable, notAvailable, type BenchContext, type CaseResult, type Side } from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import path from 'node:path';

/**
 * Case 2: check a metalogger's long changelog set — `mfs-jobs run verify` (every line parsed,
 * versions contiguous, image header, lag against a master serving the chain's end) against `wc -l`
 * on the same files, the least any tool can do: read every byte once.
 */
export async function verifyCase(ctx: BenchContext, chain: ChainInfo): Promise<CaseResult> {
  const files = chain.changelogs.map((c) => path.join(chain.dataPath, c.name));
  const wc: Side = { label: 'wc -l', command: { cmd: 'wc', args: ['-l', ...files] }, check: expectExitZero };
  const result = {
    id: 'verify',
    title: `verify, ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB, ${chain.last - chain.first + 1} lines)`,
    target: { text: '≤ 3× wc -l', maxRatio: 3 },
    figures: { changelogMb: chain.changelogBytes / 2 ** 20, lines: chain.last - chain.first + 1 } as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('verify')) {
    const [baseline] = await compare(ctx, [wc]);
    return notAvailable({ ...result, baseline }, 'verify');
  }
  throw new Error('verify case: the job landed, its side is not written yet');
}
