import path from 'node:path';
import type { StandbyConfig } from '../core/config.js';
import { execCapture } from '../core/exec.js';
import { startMaster } from '../moosefs/mfsmaster.js';
import type { SettledPlan, Staging } from './collect.js';
import type { RestorePlan } from './restore-plan.js';
import { writeChainSegment, type Placement } from './standby.js';

/** The restore itself on the standby: the chosen files under master names, then the restore command. */

/** Staged files under master names; a changelog with a later hole or a cut-off line is trimmed to its run. */
export async function preparePlacements(plan: RestorePlan, settled: SettledPlan, staging: Staging, signal: AbortSignal): Promise<{ files: Placement[]; reachedTimestamp?: number }> {
  const files: Placement[] = [{ from: settled.imageStaged!, name: 'metadata.mfs.back' }];
  let reachedTimestamp: number | undefined;
  for (const [i, step] of plan.steps.entries()) {
    let from = await staging.fetch(step.changelog, signal);
    let lastTimestamp = step.changelog.lastTimestamp;
    if (!step.changelog.clean) {
      const trimmed = `${from}.run`;
      lastTimestamp = (await writeChainSegment(from, trimmed, step.segment)).lastTimestamp;
      from = trimmed;
    }
    if (i === plan.steps.length - 1) reachedTimestamp = lastTimestamp;
    files.push({ from, name: `changelog.${plan.steps.length - i}.mfs` });
  }
  return { files, reachedTimestamp };
}

export async function startMasterFor(standby: StandbyConfig, timeoutMs: number) {
  if (standby.restoreMethod === 'mfsmaster-a') return startMaster({ configFile: standby.masterConfig, bin: standby.mfsmasterBin, autoRestore: true, timeoutMs });
  // MooseFS before 1.7: mfsmetarestore rebuilds metadata.mfs, then a plain start.
  const bin = path.join(path.dirname(standby.mfsmasterBin), 'mfsmetarestore').replace(/^\.\//, '');
  const started = Date.now();
  const res = await execCapture(bin, ['-a', '-d', standby.dataPath], { timeoutMs });
  const output = res.stdout + res.stderr;
  // 1.7+ keeps a stub that only says it is gone, and exits 0.
  if (/has been removed/.test(output)) return { code: 1, output: `${output.trim()} (set standby.restoreMethod: mfsmaster-a)`, durationMs: Date.now() - started };
  if (res.code !== 0) return { code: res.code, output, durationMs: Date.now() - started };
  const start = await startMaster({ configFile: standby.masterConfig, bin: standby.mfsmasterBin, autoRestore: false, timeoutMs });
  return { ...start, durationMs: Date.now() - started };
}

