import path from 'node:path';
import { scanChangelogFile } from '../../lib/moosefs/changelog.js';
import { masterStatus } from '../../lib/moosefs/master.js';
import { SCRATCH_HOST, stopScratchMaster, type Scratch } from '../../lib/moosefs/scratchmaster.js';
import { selfChangesSince } from '../../lib/moosefs/self-changes.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration } from '../lab/generations.js';
import { waitFor } from '../lab/proc.js';
import { startScratchAsDrill } from '../lab/scratch.js';

/**
 * MooseFS 4.x writes `IDLE()` after 30 s without a change — and, its clock of the last change starting
 * at 0, within a second of every start. A restored 4.59.2 master therefore serves one version past what
 * its restore reached before anyone touches it (a drill once failed on exactly that race: "restored
 * metadata version 79, but the chain's newest version is 78"). The real master, waited out: its own
 * changelog accounts for the extra version, and nothing else would.
 */
describe('a restored MooseFS 4.59.2 master changes its metadata by itself', () => {
  const lab4 = labGeneration('4.59.2');
  let lab: Lab;
  let scratch: Scratch;
  let port: number;
  beforeAll(async () => {
    lab = await Lab.start({ lab: lab4, metalogger: false, sshd: false });
    await lab.makeChanges('before', 5);
    await lab.saveImage();
    await lab.makeChanges('after', 5);
  }, 60_000);
  afterAll(async () => {
    if (scratch) await stopScratchMaster(scratch).catch(() => undefined);
    await lab?.stop();
  });

  test("IDLE() within seconds of the start; selfChangesSince puts the restore back at the chain's newest", async () => {
    let expected = 0;
    const started = await startScratchAsDrill(path.join(lab.dir, 'scratch'), lab.master.dataPath, lab4, async (sc) => {
      // What the copy reaches (the live master writes its own IDLE() too, so its version of a moment ago will not do).
      expected = (await scanChangelogFile(path.join(sc.dataPath, 'changelog.0.mfs'))).last!;
    });
    scratch = started.scratch;
    expect(started.startCode).toBe(0);
    port = started.ports.matocl;
    const target = { host: SCRATCH_HOST, port, generation: '4' as const, timeoutMs: 2_000 };
    // The master's own change arrives by itself: nobody but this test knows its port.
    const served = await waitFor('the restored master to change by itself', async () => {
      const v = (await masterStatus(target)).metadataVersion!;
      return v > expected ? v : undefined;
    });
    const own = await selfChangesSince(scratch.dataPath, lab4.generation, expected, served);
    expect(own).toEqual({ restoredVersion: expected, ops: Array(served - expected).fill('IDLE') });
    // The same versions do not count as the master's own for 3.0, which writes no IDLE().
    expect(await selfChangesSince(scratch.dataPath, labGeneration().generation, expected, served)).toBeUndefined();
    // A version the changelog does not hold is not accounted for.
    expect(await selfChangesSince(scratch.dataPath, lab4.generation, expected, served + 1)).toBeUndefined();
  }, 60_000);
});
