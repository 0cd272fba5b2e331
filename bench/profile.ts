import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MFS_JOBS_BIN, REPO_ROOT } from '../test/helpers/cli.js';
import type { Side } from './measure.js';
import { timeCommand } from './measure.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  /** `function (file:line)`, or V8's `(idle)`, `(garbage collector)`, `(program)`. */
  where: string;
  percent: number;
  ms: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Self time by function, highest first. */
  top: ProfileEntry[];
  /** Self time by module: our lib/ and jobs/ files, each npm package, node internals, idle. */
  byModule: ProfileEntry[];
}

function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  // Our compiled files, by their dist/ path: the line numbers a profile gives are the .js file's.
  const ours = url.indexOf('/dist/');
  return ours >= 0 ? url.slice(ours + 1) : url;
}

function ranked(map: Map<string, number>, total: number, count: number, msPerHit: number): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([where, hits]) => ({
      where,
      percent: Math.round((hits / total) * 1000) / 10,
      ms: Math.round(hits * msPerHit),
    }));
}

/** Self time per function and per module from a V8 `.cpuprofile` (what `node --cpu-prof` writes). */
export function summarizeProfile(profile: CpuProfile, file: string, count = 12): ProfileSummary {
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    total += hits;
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url
      ? `${functionName || '(anonymous)'} (${moduleOf(url, functionName)}:${lineNumber + 1})`
      : functionName;
    byFunction.set(where, (byFunction.get(where) ?? 0) + hits);
    const mod = moduleOf(url, functionName);
    byModule.set(mod, (byModule.get(mod) ?? 0) + hits);
  }
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const msPerHit = total ? totalMs / total : 0;
  return {
    file,
    totalMs: Math.round(totalMs),
    top: ranked(byFunction, total, count, msPerHit),
    byModule: ranked(byModule, total, count, msPerHit),
  };
}

/**
 * One extra run of an mfs-jobs side under `node --cpu-prof` (not counted in the figures): where
 * the main thread spends its time — our code, a package, or `(idle)` waiting on I/O and children.
 */
export async function profileSide(side: Side, outDir: string): Promise<ProfileSummary> {
  if (side.command.cmd !== MFS_JOBS_BIN) throw new Error(`profile: ${side.label} is not an mfs-jobs command`);
  await fs.mkdir(outDir, { recursive: true });
  const before = new Set(await fs.readdir(outDir));
  await side.prepare?.();
  try {
    const sample = await timeCommand(
      {
        ...side.command,
        cmd: process.execPath,
        args: ['--cpu-prof', '--cpu-prof-dir', outDir, MFS_JOBS_BIN, ...side.command.args],
      },
      { rss: false },
    );
    await side.check?.(sample);
  } finally {
    await side.cleanup?.();
  }
  const written = (await fs.readdir(outDir)).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (!written.length) throw new Error(`profile: node wrote no .cpuprofile into ${outDir}`);
  const file = path.join(outDir, written.sort().pop()!);
  return summarizeProfile(JSON.parse(await fs.readFile(file, 'utf8')) as CpuProfile, path.relative(REPO_ROOT, file));
}
