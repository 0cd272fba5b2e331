import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, LabMount, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { runCli, startCli } from '../helpers/cli.js';
import { FaultProxy } from '../lab/proxy.js';

/** The standby's mfsmaster is daemonised by promote (it must outlive mfs-jobs): stop it by its PID. */
async function killStandbyMaster(dataPath: string): Promise<void> {
  const pid = await runningMasterPid(dataPath);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  await waitFor(
    `standby mfsmaster ${pid} to exit`,
    async () => (await runningMasterPid(dataPath)) === undefined,
    30_000,
  ).catch(() => process.kill(pid, 'SIGKILL'));
}

async function asideDirs(dataPath: string): Promise<string[]> {
  return (await fs.readdir(dataPath)).filter((n) => n.startsWith('mfs-jobs-aside-')).sort();
}

describe('promote / demote on a loopback lab (real mfsmaster, metalogger, sshd)', () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  let expectedVersion: number;
  /** The lab master's version when it was killed: what the metalogger can give back. */
  let killedAt: number;

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    // The old master's DATA_PATH is not a source here (no ssh for it): the metalogger alone must do.
    const doc = lab.configDocument({ standby: standbySection, jobs: { promote: { fenceTimeoutSeconds: 1 } } });
    const ssh = doc.ssh;
    delete doc.ssh;
    doc.metaloggers = (doc.metaloggers as Record<string, unknown>[]).map((m) => ({ ...m, ssh }));
    config = path.join(lab.dir, 'promote.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
  });

  afterAll(async () => {
    if (standby) await killStandbyMaster(standby.dataPath);
    await lab?.stop();
  });

  test('refuses while the old master still answers on its own address, and starts nothing', async () => {
    await lab.makeChanges('before', 5);
    const version = (await lab.master.info()).metadataVersion;
    const res = await runCli(['run', 'promote', '--config', config]);
    expect(res.stdout).toContain(
      `MFS PROMOTE CRITICAL - refusing to promote: master (127.0.0.1:${lab.master.ports.cl}) answers at metadata version ${version}`,
    );
    expect(res.code).toBe(2);
    expect(await runningMasterPid(standby.dataPath)).toBeUndefined();
    expect(await fs.readdir(standby.dataPath)).toEqual([]);
  });

  // Issue 24: collecting runs beside the fence. Here it is done long before the fence refuses (a local
  // metalogger; the old master answers its status a second late, through a proxy): DATA_PATH must still not
  // have been written at all — not a staging directory made and removed again (its mtime says so) — and
  // nothing started or left behind.
  test('a refusal while the collection ran beside the fence: DATA_PATH and state untouched', async () => {
    const doc = YAML.parse(await fs.readFile(config, 'utf8'));
    const late = await FaultProxy.start({ host: '127.0.0.1', port: lab.master.ports.cl }, { delayMs: 600 });
    doc.masters = (doc.masters as Record<string, unknown>[]).map((m) => ({ ...m, cliPort: late.port }));
    doc.metaloggers = (doc.metaloggers as Record<string, unknown>[]).map((m) => ({
      ...m,
      ssh: undefined,
      local: true,
    }));
    const overlapConfig = path.join(lab.dir, 'overlap.yaml');
    await fs.writeFile(overlapConfig, YAML.stringify(doc), { mode: 0o600 });
    const stateDir = path.join(lab.dir, 'state');
    const tree = async (dir: string) => (await fs.readdir(dir, { recursive: true }).catch(() => [])).sort();
    const stateBefore = await tree(stateDir);
    const before = await fs.stat(standby.dataPath);
    const res = await runCli(['run', 'promote', '--config', overlapConfig, '--json']).finally(() => late.stop());
    const report = JSON.parse(res.stdout);
    expect(report.summary).toMatch(/^refusing to promote: master \(127\.0\.0\.1:\d+\) answers at metadata version/);
    expect(report.details.changed).toBe(false);
    // The collection had long finished: the local metalogger was listed while the master's answer was held.
    expect(report.details.fence[0].ms).toBeGreaterThanOrEqual(1_000);
    expect(res.code).toBe(2);
    const after = await fs.stat(standby.dataPath);
    expect({ mtime: after.mtimeMs, ctime: after.ctimeMs }).toEqual({ mtime: before.mtimeMs, ctime: before.ctimeMs });
    expect(await fs.readdir(standby.dataPath)).toEqual([]);
    expect(await runningMasterPid(standby.dataPath)).toBeUndefined();
    // The job's own records of this run (its result, its metric) and nothing else: no copy fetched, no lock left.
    const added = (await tree(stateDir)).filter((f) => !stateBefore.includes(f));
    expect(added.filter((f) => !/^state\/promote\.json$|\.log$/.test(f))).toEqual([]);
  });

  test('refuses when the configured virtual IP is not held here', async () => {
    const vipConfig = path.join(lab.dir, 'vip.yaml');
    const doc = YAML.parse(await fs.readFile(config, 'utf8'));
    doc.standby.vip = '192.0.2.77';
    await fs.writeFile(vipConfig, YAML.stringify(doc));
    const res = await runCli(['run', 'promote', '--config', vipConfig]);
    expect(res.stdout).toContain('MFS PROMOTE CRITICAL - virtual IP 192.0.2.77 is not held here: not promoting');
    expect(await fs.readdir(standby.dataPath)).toEqual([]);
  });

  test("after kill -9 of the master, promotes from the metalogger and serves the master's version", async () => {
    // A real image on the metalogger first (it downloads one when it connects), then more changes.
    await lab.makeChanges('imaged', 20);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 30);
    // The lab's own mount goes first: a FUSE mount whose master is dead takes minutes to unmount.
    // Its session's end is one more change, which the metalogger must have too.
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    killedAt = (await lab.master.info()).metadataVersion;
    expectedVersion = killedAt;
    await lab.master.kill9();

    const dry = await runCli(['run', 'promote', '--config', config, '--dry-run']);
    expect(dry.stdout).toContain(
      `MFS PROMOTE OK - dry run: would restore metadata version ${expectedVersion} from ml1`,
    );
    expect(await fs.readdir(standby.dataPath)).toEqual([]);

    const res = await runCli(['run', 'promote', '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(report.status).toBe('OK');
    expect(report.summary).toMatch(
      new RegExp(`^promoted: serving metadata version ${expectedVersion} in [\\d.]+ s from ml1; RPO 0 versions$`),
    );
    expect(report.details.plan.image).toMatchObject({ source: 'ml1', name: 'metadata_ml.mfs.back', empty: false });
    expect(report.details.plan.reached).toBe(expectedVersion);
    expect(report.details.sources.find((s: { name: string }) => s.name === 'ml1').error).toBeNull();
    expect(report.metrics.find((m: { name: string }) => m.name === 'rto_seconds').value).toBeGreaterThan(0);
    // Where a one-shot promotion's time went (issue 24): every phase, the checks before fencing among them.
    const phases = ['startupMs', 'checkMs', 'fenceMs', 'inventoryMs', 'fetchMs', 'placeMs', 'restoreMs'];
    for (const phase of phases) expect(report.details.timings[phase]).toBeGreaterThanOrEqual(0);
    expect(res.code).toBe(0);

    const info = await masterInfo({ host: '127.0.0.1', port: standby.ports.cl });
    expect(info.metadataVersion).toBe(expectedVersion);
    // Content check from a fresh mount on the promoted master.
    const mount = await LabMount.mount(
      path.join(lab.dir, 'mnt-standby'),
      { host: '127.0.0.1', port: standby.ports.cl },
      path.join(lab.dir, 'mfsmount-standby.log'),
    );
    try {
      expect((await fs.readdir(path.join(mount.dir, 'after-image'))).length).toBe(30);
      expect((await fs.readdir(path.join(mount.dir, 'imaged'))).length).toBe(20);
    } finally {
      await mount.unmount();
    }
    // The mount's session changes were changes too.
    expectedVersion = (await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion;
    const state = JSON.parse(await fs.readFile(path.join(lab.dir, 'state', 'state', 'promote.json'), 'utf8'));
    expect(state.details.rtoSeconds).toBeGreaterThan(0);
    const prom = await fs.readFile(path.join(lab.dir, 'textfile', 'mfs_jobs_promote.prom'), 'utf8');
    expect(prom).toMatch(/mfs_jobs_rto_seconds\{job="promote"\} [\d.]+/);
    expect(prom).toContain('mfs_jobs_rpo_versions{job="promote"} 0');
  });

  test('promote twice, even at once: one waits for the other, the second changes nothing', async () => {
    const pid = await runningMasterPid(standby.dataPath);
    const before = await fs.readdir(standby.dataPath);
    const [a, b] = [startCli(['run', 'promote', '--config', config]), startCli(['run', 'promote', '--config', config])];
    const results = await Promise.all([a.done, b.done]);
    for (const r of results) {
      expect(r.stdout).toContain(
        `MFS PROMOTE OK - mfsmaster (pid ${pid}) already serves metadata version ${expectedVersion}; nothing changed`,
      );
      expect(r.code).toBe(0);
    }
    expect(await runningMasterPid(standby.dataPath)).toBe(pid);
    expect(await fs.readdir(standby.dataPath)).toEqual(before);
  });

  test('demote leaves the master running while the VIP is held here (a promotion came after it)', async () => {
    // 127.0.0.1 is on lo: a VIP this machine certainly holds, without touching the host's network.
    const vipConfig = path.join(lab.dir, 'vip-held.yaml');
    const doc = YAML.parse(await fs.readFile(config, 'utf8'));
    doc.standby.vip = '127.0.0.1';
    await fs.writeFile(vipConfig, YAML.stringify(doc));
    const pid = await runningMasterPid(standby.dataPath);
    const res = await runCli(['run', 'demote', '--config', vipConfig]);
    expect(res.stdout).toContain(
      `MFS DEMOTE WARNING - virtual IP 127.0.0.1 is held here: not stopping mfsmaster (pid ${pid})`,
    );
    expect(res.code).toBe(1);
    expect(await runningMasterPid(standby.dataPath)).toBe(pid);
  });

  test('demote stops the promoted master cleanly and keeps its files; a second demote has nothing to do', async () => {
    const res = await runCli(['run', 'demote', '--config', config]);
    expect(res.stdout).toMatch(
      new RegExp(
        `MFS DEMOTE OK - stopped mfsmaster \\(pid \\d+\\) at metadata version ${expectedVersion} cleanly in [\\d.]+ s; metadata.mfs written, files kept in ${standby.dataPath}`,
      ),
    );
    expect(res.code).toBe(0);
    expect(await runningMasterPid(standby.dataPath)).toBeUndefined();
    const again = await runCli(['run', 'demote', '--config', config]);
    expect(again.stdout).toContain('MFS DEMOTE OK - no mfsmaster runs on');
  });

  test('promoting again moves the previous DATA_PATH aside (never deletes it)', async () => {
    const previous = (await fs.readdir(standby.dataPath)).filter((n) => !n.startsWith('mfs-jobs-aside-'));
    const asideBefore = await asideDirs(standby.dataPath);
    const res = await runCli(['run', 'promote', '--config', config]);
    // The standby's own changes since (the check mount's session) never reached the metalogger,
    // which follows the dead lab master: the restore gives back the version at the kill.
    expect(res.stdout).toContain(`MFS PROMOTE OK - promoted: serving metadata version ${killedAt}`);
    const asideAfter = await asideDirs(standby.dataPath);
    expect(asideAfter.length).toBe(asideBefore.length + 1);
    const newest = asideAfter[asideAfter.length - 1]!;
    expect((await fs.readdir(path.join(standby.dataPath, newest))).sort()).toEqual(expect.arrayContaining(previous));
    await killStandbyMaster(standby.dataPath);
  });
});
