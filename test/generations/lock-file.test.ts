import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readMfsConfig, runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration } from '../lab/generations.js';
import { LabMaster } from '../lab/moosefs.js';

/**
 * MooseFS 1.6.4 (before 1.6.5) keeps its PID at LOCK_FILE, wherever mfsmaster.cfg points it. Promote used to
 * require `LOCK_FILE = <DATA_PATH>/.mfsmaster.lock` and refused at failover time (issue 24: "found
 * …/run/masterB.lock"), a setting no check had complained about before. Now promote, demote and
 * check-standby read it from the cfg the same way (lib/moosefs/mfsmaster.ts, masterLockFiles); only a cfg
 * without any LOCK_FILE is refused — by check-standby first.
 */
describe("MooseFS 1.6.4: the standby's LOCK_FILE outside its DATA_PATH", () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  let lockFile: string;

  beforeAll(async () => {
    lab = await Lab.start({ lab: labGeneration('1.6.4') });
    await lab.makeChanges('before-image', 10);
    await lab.saveImage();
    await lab.makeChanges('after-image', 10);
    lockFile = path.join(lab.dir, 'standby', 'run', 'masterB.lock');
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), {
      bootstrap: false,
      lab: lab.generation,
      extra: { LOCK_FILE: lockFile },
    });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    config = await lab.writeConfig(
      { standby: standbySection, jobs: { promote: { fenceTimeoutSeconds: 1 } } },
      'lock-file.yaml',
    );
  }, 120_000);

  afterAll(async () => {
    const pid = standby ? await runningMasterPid(standby.dataPath, await readMfsConfig(standby.configFile)) : undefined;
    if (pid) process.kill(pid, 'SIGKILL');
    await lab?.stop();
  });

  test('check-standby: ready with LOCK_FILE elsewhere; a cfg without LOCK_FILE is CRITICAL, naming it', async () => {
    // No metalogger before 1.6.5: the snapshot store (filled by backup) is what a promotion would start from.
    const backup = await runCli(['run', 'backup', '--config', config]);
    expect(backup.code).toBe(0);
    const ready = await runCli(['run', 'check-standby', '--config', config]);
    expect(ready.stdout).toMatch(
      /^MFS CHECK-STANDBY OK - ready: a promotion now would restore metadata version \d+, \d+ version\(s\)/,
    );
    expect(ready.stdout).toContain(`with ${lab.generation.mfsmaster} (MooseFS 1.6 (before 1.6.5))`);
    expect(ready.code).toBe(0);

    const noLock = path.join(lab.dir, 'standby', 'mfsmaster-nolock.cfg');
    await fs.writeFile(noLock, (await fs.readFile(standby.configFile, 'utf8')).replace(/^LOCK_FILE = .*\n/m, ''));
    const doc = path.join(lab.dir, 'no-lock.yaml');
    await fs.writeFile(doc, (await fs.readFile(config, 'utf8')).replace(standby.configFile, noLock));
    const refused = await runCli(['run', 'check-standby', '--config', doc]);
    expect(refused.stdout).toContain(
      `MFS CHECK-STANDBY CRITICAL - a promotion now would fail: ${doc}: standby.masterConfig ${noLock}: MooseFS 1.6 (before 1.6.5) needs LOCK_FILE set`,
    );
    expect(refused.code).toBe(2);
  });

  // Last: it kills the lab's master.
  test('promote after kill -9 of the master restores and serves with LOCK_FILE elsewhere; demote finds the master there and stops it', async () => {
    await lab.master.kill9();
    const res = await runCli(['run', 'promote', '--config', config, '--json']);
    const report = JSON.parse(res.stdout) as { status: string; summary: string; details: { restoreCommand: string } };
    expect(`${report.status}: ${report.summary}`).toMatch(/^(OK|WARNING): promoted: serving metadata version \d+/);
    expect(report.details.restoreCommand).toBe('mfsmetarestore');
    const pid = Number((await fs.readFile(lockFile, 'utf8')).trim());
    expect(await runningMasterPid(standby.dataPath, await readMfsConfig(standby.configFile))).toBe(pid);
    const demote = await runCli(['run', 'demote', '--config', config]);
    expect(demote.stdout).toMatch(new RegExp(`^MFS DEMOTE OK - stopped mfsmaster \\(pid ${pid}\\)`));
  });
});
