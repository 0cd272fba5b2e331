import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncFile } from '../lib/core/atomic.js';
import { masterInfo } from '../lib/moosefs/mfscli.js';
import { runningMasterPid } from '../lib/moosefs/mfsmaster.js';
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

/**
 * Stop whatever master runs on this DATA_PATH and empty the directory. By PID with SIGKILL, not a clean stop:
 * the wipe throws away the image a clean stop writes and fsyncs — 2 GB at 30M files, tens of seconds a round
 * (past stopMaster's 120 s under load) and disk traffic beside the next timed side.
 */
export async function stopAndWipe(master: LabMaster): Promise<void> {
  const pid = await runningMasterPid(master.dataPath);
  if (pid) {
    process.kill(pid, 'SIGKILL');
    await waitGone(pid, 60_000);
  }
  await fs.rm(master.dataPath, { recursive: true, force: true });
  await fs.mkdir(master.dataPath, { recursive: true, mode: 0o700 });
}

async function waitGone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  const alive = () =>
    fs.stat(`/proc/${pid}`).then(
      () => true,
      () => false,
    );
  while (await alive()) {
    if (Date.now() > deadline) throw new Error(`mfsmaster ${pid} still there ${ms / 1000} s after SIGKILL`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Peak RSS (VmHWM, MB) of a live process; undefined once it is gone. */
export async function peakRssMb(pid: number | undefined): Promise<number | undefined> {
  if (!pid) return undefined;
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kb ? Math.round(Number(kb) / 1024) : undefined;
}

/** Peak RSS of the master serving this DATA_PATH (it loaded the whole image: what the namespace needs in RAM). */
export async function masterPeakRssMb(master: LabMaster): Promise<number | undefined> {
  return peakRssMb(await runningMasterPid(master.dataPath));
}
