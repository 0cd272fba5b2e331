import { promises as fs } from 'node:fs';
import path from 'node:path';
import { masterStatus } from '../../lib/moosefs/master.js';
import { restoreAndStart } from '../../lib/moosefs/restore.js';
import { createScratch, masterPidIn, pickPorts, SCRATCH_HOST, stopScratchMaster, writeScratchConfig, type Scratch } from '../../lib/moosefs/scratchmaster.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { LabMount } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { recordFaults, tearDownFaults, type Started } from './results.js';

/**
 * A local user against the drill (#16 case 8): during a drill the restored namespace is served by a
 * scratch mfsmaster on 127.0.0.1, which any local process can reach. Set up exactly as `mfs-jobs
 * drill` sets it up (writeScratchConfig, restoreAndStart), then mounted the way an attacker would,
 * with the real mfsmount. The export mfs-jobs used before (`127.0.0.1 / ro`) is put back at the end
 * and the master told to reload it: the same mount then works, so the test can tell the attack.
 */
describe.each<LabVersion>(['3.0.117', '4.59.2'])('a local user and the drill\'s scratch master (MooseFS %s)', (version) => {
  const lab = labGeneration(version);
  let cluster: Lab;
  let scratch: Scratch | undefined;
  const started: Started[] = [];

  beforeAll(async () => {
    cluster = await Lab.start({ lab, metalogger: false, sshd: false });
    started.push(cluster);
    await cluster.makeChanges('secret-name', 3);
    await cluster.saveImage();
  }, 120_000);

  afterAll(async () => {
    await tearDownFaults([...started.reverse(), scratch && (() => stopScratchMaster(scratch!))]);
  });

  test('cannot mount the restored namespace ("Password is needed"); with the old open export it could', async () => {
    const sc = await createScratch(path.join(cluster.dir, 'drill'), 'drill');
    scratch = sc;
    const names = (await fs.readdir(cluster.master.dataPath)).filter((n) => /^(metadata\.mfs\.back|changelog\.\d+\.mfs)$/.test(n));
    for (const n of names) await fs.copyFile(path.join(cluster.master.dataPath, n), path.join(scratch.dataPath, n));
    const ports = await pickPorts({ matoml: 'auto', matocs: 'auto', matocl: 'auto' }, new Set(), 'test');
    await writeScratchConfig(scratch, ports, lab.generation);
    const exportsText = await fs.readFile(path.join(scratch.dir, 'mfsexports.cfg'), 'utf8');
    expect(exportsText).toMatch(/^127\.0\.0\.1\t\/\tro,md5pass=[0-9a-f]{32}\n$/);
    const binaries = { generation: lab.generation, mfsmaster: lab.mfsmaster, mfsmetarestore: lab.mfsmetarestore, mfscli: 'mfscli', key: 'test' };
    const files = { dataPath: scratch.dataPath, image: 'metadata.mfs.back', changelogs: names.filter((n) => n.startsWith('changelog')) };
    const start = await restoreAndStart(binaries, scratch.configFile, files, { timeoutMs: 60_000 });
    expect(start.code).toBe(0);
    // The drill itself still gets its answer: the client protocol's info needs no export.
    expect((await masterStatus({ host: SCRATCH_HOST, port: ports.matocl, timeoutMs: 3_000 })).softwareVersion).toBeTruthy();

    const target = { host: SCRATCH_HOST, port: ports.matocl };
    const refused = await LabMount.mount(path.join(scratch.dir, 'attacker-mnt'), target, path.join(cluster.dir, 'attacker-mount.log'), { lab, attempts: 2 }).then(
      (m) => m,
      (err: Error) => err,
    );
    if (!(refused instanceof Error)) started.push(refused);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(/Password is needed/);

    // The export mfs-jobs wrote before this fix, reloaded (SIGHUP): the same attacker mounts and reads the names.
    await fs.writeFile(path.join(scratch.dir, 'mfsexports.cfg'), `${SCRATCH_HOST}\t/\tro\n`);
    process.kill((await masterPidIn(scratch.dataPath))!, 'SIGHUP');
    const mount = await waitFor('the old export to take', () => LabMount.mount(path.join(sc.dir, 'attacker-mnt2'), target, path.join(cluster.dir, 'attacker-mount2.log'), { lab, attempts: 1 }).catch(() => undefined), 30_000);
    started.push(mount);
    expect((await fs.readdir(path.join(scratch.dir, 'attacker-mnt2'))).some((n) => n.startsWith('secret-name'))).toBe(true);
    await mount.unmount();
    started.pop();
    recordFaults({ area: 'local attacker', fault: `mount the drill's scratch master (MooseFS ${version})`, injected: 1, survived: 1, dataLost: 0, lostRestorePoints: 0, note: 'Password is needed; the old export mounted' });
  }, 120_000);
});
