import { promises as fs } from 'node:fs';
import path from 'node:path';
import { restoreAndStart } from '../../lib/moosefs/roll-forward.js';
import {
  createScratch,
  pickPorts,
  stopScratchMaster,
  writeScratchConfig,
  type Scratch,
  type ScratchPorts,
} from '../../lib/moosefs/scratchmaster.js';
import type { LabGeneration } from './generations.js';

/**
 * A scratch master set up exactly as `mfs-jobs drill` sets one up (createScratch, writeScratchConfig,
 * restoreAndStart), restored from the image and changelogs of `fromDataPath`. `copied` runs after the
 * copy, before the start (to read what the copy holds before the master writes beside it).
 */
export async function startScratchAsDrill(
  root: string,
  fromDataPath: string,
  lab: LabGeneration,
  copied?: (scratch: Scratch) => Promise<void>,
): Promise<{ scratch: Scratch; ports: ScratchPorts; startCode: number | null }> {
  const scratch = await createScratch(root, path.basename(root));
  const names = (await fs.readdir(fromDataPath)).filter((n) => /^(metadata\.mfs\.back|changelog\.\d+\.mfs)$/.test(n));
  for (const n of names) await fs.copyFile(path.join(fromDataPath, n), path.join(scratch.dataPath, n));
  await copied?.(scratch);
  const ports = await pickPorts({ matoml: 'auto', matocs: 'auto', matocl: 'auto' }, new Set(), 'test');
  await writeScratchConfig(scratch, ports, lab.generation);
  const binaries = {
    generation: lab.generation,
    mfsmaster: lab.mfsmaster,
    mfsmetarestore: lab.mfsmetarestore,
    mfscli: 'mfscli',
    key: 'test',
  };
  const files = {
    dataPath: scratch.dataPath,
    image: 'metadata.mfs.back',
    changelogs: names.filter((n) => n.startsWith('changelog')),
  };
  try {
    const start = await restoreAndStart(binaries, scratch.configFile, files, { timeoutMs: 60_000 });
    return { scratch, ports, startCode: start.code };
  } catch (err) {
    await stopScratchMaster(scratch).catch(() => undefined);
    throw err;
  }
}
