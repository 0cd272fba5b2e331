import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncFile } from '../lib/core/atomic.js';
import { masterInfo } from '../lib/moosefs/mfscli.js';
import { runningMasterPid, stopMaster } from '../lib/moosefs/mfsmaster.js';
import { REPO_ROOT } from '../test/helpers/cli.js';
import { LabMaster } from '../test/lab/moosefs.js';
import type { ChainInfo } from './generate.js';

/** A shell script of bench/baseline/: what operators run today, measured beside mfs-jobs. */
export const baselineScript = (name: string): string => path.join(REPO_ROOT, 'bench', 'baseline', name);

/**
 * A master config on free loopback ports with an empty DATA_PATH: the restore target of the
 * promote and drill baselines (and the standby of the promote case).
 */
export async function scratchMaster(dir: string): Promise<LabMaster> {
  return LabMaster.create(dir, { bootstrap: false });
}

/**
 * Copy a chain's image and changelogs into DATA_PATH, as the restore will find them — and flushed:
 * "already in place" means on disk, not 700 MB of dirty pages the kernel writes back while the timed
 * restore reads (measured: that made a bare 10M-file `mfsmaster -a` 25% slower than one from clean pages).
 */
export async function placeChain(chain: ChainInfo, dataPath: string): Promise<void> {
  await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
  for (const name of ['metadata_ml.mfs.back', ...chain.changelogs.map((c) => c.name)]) {
    await fs.copyFile(path.join(chain.dataPath, name), path.join(dataPath, name));
    await fsyncFile(path.join(dataPath, name));
  }
}

/** The restored master must serve the chain's end: metadata version last + 1. */
export async function expectServing(master: LabMaster, version: number): Promise<void> {
  const info = await masterInfo({ host: master.cliHost, port: master.ports.cl, timeoutMs: 10_000 });
  if (info.metadataVersion !== version)
    throw new Error(`restored master serves version ${info.metadataVersion}, expected ${version}`);
}

/** Stop whatever master runs on this DATA_PATH (clean stop, then by PID), and empty the directory. */
export async function stopAndWipe(master: LabMaster): Promise<void> {
  if (await runningMasterPid(master.dataPath)) await stopMaster({ configFile: master.configFile, timeoutMs: 120_000 });
  const pid = await runningMasterPid(master.dataPath);
  if (pid) process.kill(pid, 'SIGKILL');
  await fs.rm(master.dataPath, { recursive: true, force: true });
  await fs.mkdir(master.dataPath, { recursive: true, mode: 0o700 });
}
