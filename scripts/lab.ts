/**
 * `npm run lab [-- --keep] [-- --job NAME ...] [-- --moosefs VERSION]`: start the embedded lab (real
 * mfsmaster, mfsmetalogger where the generation has one, FUSE mount and sshd on loopback), give the
 * master a real metadata image, write an mfs-jobs config for it, and run the jobs against it with the
 * real `mfs-jobs` executable. --moosefs picks a generation built by scripts/build-moosefs.sh (1.5.12,
 * 1.6.4, 1.6.27, 4.59.2; default Debian's 3.0.117). Without --keep everything is stopped and removed at
 * the end; with --keep it stays up until Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { Lab } from '../test/lab/cluster.js';
import { labGeneration, type LabVersion } from '../test/lab/generations.js';
import { MFS_JOBS_BIN } from '../test/helpers/cli.js';

const argv = process.argv.slice(2);
const keep = argv.includes('--keep');
const jobs = argv.flatMap((a, i) => (a === '--job' && argv[i + 1] ? [argv[i + 1]!] : []));
const toRun = jobs.length ? jobs : ['check-master', 'backup', 'verify', 'drill'];
const moosefs = argv.flatMap((a, i) => (a === '--moosefs' && argv[i + 1] ? [argv[i + 1]!] : []))[0] ?? '3.0.117';

const lab = await Lab.start({ lab: labGeneration(moosefs as LabVersion) });
let failed = 0;
try {
  console.log(
    `lab: MooseFS ${moosefs} master on 127.0.0.1:${lab.master.ports.cl}, ${lab.metalogger ? 'metalogger, ' : ''}mount ${lab.mount?.dir ?? '(none)'}, sshd on 127.0.0.1:${lab.sshd?.port}`,
  );
  if (lab.mount) await lab.makeChanges('lab-demo', 50);
  const version = await lab.saveImage();
  if (lab.mount) await lab.makeChanges('lab-demo-2', 20);
  console.log(`lab: master saved a real metadata.mfs.back at version ${version}; 20 more changes since`);
  const config = await lab.writeConfig();
  console.log(`lab: config ${config}\n`);
  for (const job of toRun) {
    console.log(`$ mfs-jobs run ${job} --config ${config}`);
    const res = spawnSync(process.execPath, [MFS_JOBS_BIN, 'run', job, '--config', config], { stdio: 'inherit' });
    console.log(`(exit ${res.status})\n`);
    if (res.status !== 0) failed++;
  }
  if (keep) {
    console.log(
      `lab: kept running in ${lab.dir}. Try: MFS_JOBS_CONFIG=${config} ${MFS_JOBS_BIN} list-jobs   (Ctrl-C stops the lab)`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
  }
} finally {
  await lab.stop();
  console.log('lab: stopped and removed');
}
process.exit(failed ? 1 : 0);
