import path from 'node:path';
import { DirHandle } from '../core/dirhandle.js';
import type { Config, StandbyConfig } from '../core/config.js';
import { restoringBinaries, type Binaries } from '../moosefs/generations/binaries.js';
import { masterStatus } from '../moosefs/master.js';
import { RESTORED_SESSIONS } from '../moosefs/datapath.js';
import { sessionsFilesFor } from '../moosefs/generations/index.js';
import { isChangelogName, readImageHeader } from '../moosefs/metadata.js';
import { restoreAndStart, type RestoreResult } from '../moosefs/roll-forward.js';
import type { SettledPlan, Staging } from './collect.js';
import type { RestorePlan } from './restore-plan.js';
import { checkGenerationConfig, writeChainSegment, type Placement } from './standby.js';
import { readMfsConfig } from '../moosefs/mfsmaster.js';

/** The restore itself on the standby: the chosen files under master names, then the restore command. */

/** Staged files under master names; a changelog with a later hole or a cut-off line is trimmed to its run. */
export async function preparePlacements(
  plan: RestorePlan,
  settled: SettledPlan,
  staging: Staging,
  signal: AbortSignal,
): Promise<{ files: Placement[]; reachedTimestamp?: number }> {
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
  const sessions = await stageSessions(plan, settled, staging, signal);
  if (sessions) files.push({ from: sessions, name: RESTORED_SESSIONS });
  return { files, reachedTimestamp };
}

/**
 * A 1.x image's client sessions from the image's own source (snapshot or DATA_PATH), when it has them:
 * without them a 1.6.4 master leaves every mount from before the failover with "Input/output error".
 */
async function stageSessions(
  plan: RestorePlan,
  settled: SettledPlan,
  staging: Staging,
  signal: AbortSignal,
): Promise<string | undefined> {
  const { magic } = await readImageHeader(settled.imageStaged!, { checkEnding: false });
  const dir = plan.image.local ? path.dirname(plan.image.path) : path.posix.dirname(plan.image.path);
  for (const name of sessionsFilesFor(magic)) {
    const at = plan.image.local ? path.join(dir, name) : path.posix.join(dir, name);
    // Not in the inventory: its size (the read's bound) is asked now; a missing file is simply not there.
    const size = await staging
      .sizeOf({ source: plan.image.source, path: at, local: plan.image.local })
      .catch(() => undefined);
    if (size === undefined) continue;
    const staged = await staging
      .fetch({ source: plan.image.source, name, path: at, local: plan.image.local, size }, signal)
      .catch(() => undefined);
    if (staged) return staged;
  }
  return undefined;
}

/**
 * Restore and start the standby's master the way the staged image's generation does (see
 * lib/moosefs/roll-forward.ts), from the files placed under master names in its DATA_PATH.
 */
export async function restoreStandby(
  config: Config,
  standby: StandbyConfig,
  placements: readonly Placement[],
  o: { timeoutMs: number; signal?: AbortSignal },
): Promise<RestoreResult & { binaries: Binaries }> {
  const image = placements[0]!.name;
  // Read through a descriptor opened O_NOFOLLOW: DATA_PATH's owner may have swapped the name for a link.
  const data = await DirHandle.open(standby.dataPath, 'standby.dataPath');
  const header = await data.withFile(image, (file) => readImageHeader(file)).finally(() => data.close());
  const binaries = await restoringBinaries(config, header.magic, `${standby.dataPath}/${image}`, standby.mfsmasterBin);
  checkGenerationConfig(config, standby, binaries.generation, await readMfsConfig(standby.masterConfig));
  const target = {
    host: standby.cliHost,
    port: standby.cliPort,
    bin: config.mfscliBin,
    generation: config.moosefs.generation,
  };
  const ready = () =>
    masterStatus({ ...target, timeoutMs: 1_000 }).then(
      () => true,
      () => false,
    );
  const files = {
    dataPath: standby.dataPath,
    image,
    changelogs: placements
      .slice(1)
      .map((p) => p.name)
      .filter(isChangelogName),
  };
  const res = await restoreAndStart(binaries, standby.masterConfig, files, {
    ...o,
    ready,
    method: standby.restoreMethod,
  });
  return { ...res, binaries };
}
