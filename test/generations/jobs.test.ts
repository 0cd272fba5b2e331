import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { listSnapshots } from '../../lib/store/manifest.js';
import { verifySnapshot } from '../../lib/store/snapshot-store.js';
import { execCapture } from '../../lib/core/exec.js';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { processesIn } from '../lab/proc.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';

/**
 * The focused suite on every MooseFS generation mfs-jobs serves besides Debian's 3.0.117 (which runs
 * the full per-job suite): a real lab of that generation — its own mfsmaster, its metalogger where
 * it has one, a FUSE mount (1.6.4's for 1.5.12, whose own does not build), sshd — and the real
 * `mfs-jobs` executable against it: check-master, backup, drill, verify.
 */
const VERSIONS: LabVersion[] = ['1.5.12', '1.6.4', '1.6.27', '4.59.2'];

describe.each(VERSIONS)('MooseFS %s', (version) => {
  let lab: Lab;
  let config: string;
  let versionAfter: number;
  const gen = () => lab.generation.generation;

  /**
   * 1.5 and 1.6.4 masters change their metadata by themselves about twice a minute (FREEINODES,
   * EMPTYRESERVED), and 4.x writes IDLE() after 30 s without a change: a version read a moment ago
   * may have moved on by a few.
   */
  const nearly = (actual: number) => {
    const slack = !gen().hasMetalogger ? 4 : gen().selfChanges.includes('IDLE') ? 1 : 0;
    expect(actual).toBeGreaterThanOrEqual(versionAfter);
    expect(actual - versionAfter).toBeLessThanOrEqual(slack);
  };

  /** Changes through the mount; 1.5.12 has no client here, so only its own housekeeping changes anything. */
  const change = async (prefix: string, count: number) =>
    lab.mount ? lab.makeChanges(prefix, count) : (await lab.master.info()).metadataVersion;

  beforeAll(async () => {
    lab = await Lab.start({ lab: labGeneration(version) });
    await change('before-image', 20);
    await lab.saveImage();
    if (lab.metalogger) {
      // A metalogger downloads the image when it connects: a restart gives it a real one.
      await lab.metalogger.stop();
      await lab.metalogger.start();
    }
    versionAfter = await change('after-image', 10);
    config = await lab.writeConfig({ jobs: { verify: { cutLineRetrySeconds: 0 } } });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  });

  test("check-master: the master answers in its own protocol; a 1.x master's version comes from its DATA_PATH", async () => {
    const res = await runCli(['run', 'check-master', '--config', config]);
    // 1.5.12's housekeeping may add a version meanwhile.
    nearly(Number(/serves metadata version (\d+)/.exec(res.stdout)?.[1]));
    expect(res.code).toBe(0);
    // Without a way into its DATA_PATH a 1.x master still counts as serving, and says it reports no version.
    if (!gen().reportsMetadataVersion) {
      const cfg = await lab.writeConfig({ ssh: undefined }, 'no-ssh.yaml');
      const bare = await runCli(['run', 'check-master', '--config', cfg]);
      expect(bare.stdout).toContain(
        `MFS CHECK-MASTER OK - master serves (MooseFS ${version === '1.5.12' ? '1.5' : version}, which does not report its metadata version)`,
      );
      await fs.rm(cfg);
    }
  });

  test('backup: the image of this generation and the changelogs that roll it forward, verified', async () => {
    const header = await readImageHeader(path.join(lab.master.dataPath, 'metadata.mfs.back'));
    expect(header.magic).toBe(gen().imageMagic);
    const res = await runCli(['run', 'backup', '--config', config]);
    expect(res.stdout).toMatch(
      new RegExp(
        `^MFS BACKUP OK - master: snapshot \\d{8}T\\d{6}Z-v\\d+: metadata\\.mfs\\.back version ${header.version} \\+ \\d+ changelog`,
      ),
    );
    expect(res.code).toBe(0);
    const [snap] = (await listSnapshots(path.join(lab.dir, 'snapshots'), {})).snapshots;
    nearly(snap!.manifest.reachesVersion);
    // The drill below restores this snapshot: it must serve exactly what the chain reaches.
    versionAfter = snap!.manifest.reachesVersion;
    expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
  });

  test("drill: the snapshot restored by this generation's own restore, served at the chain's newest version", async () => {
    const res = await runCli(['run', 'drill', '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(`${report.status}: ${report.summary}`).toMatch(/^OK: /);
    expect(report.details.restoredVersion).toBe(versionAfter);
    expect(report.details.moosefs).toBe(`MooseFS ${version === '1.5.12' ? '1.5' : version}`);
    expect(report.lines.join('\n')).toContain(`scratch master (MooseFS`);
    expect(res.code).toBe(0);
    // The scratch master is found by its lock (1.6.5+ leave it empty: the kernel's lock table names it) and stopped.
    expect(await processesIn(path.join(lab.dir, 'state', 'drill'))).toEqual([]);
    // Every generation's scratch master was open to root only (nftables), and the table is gone with it.
    expect(report.lines).toContain(
      `scratch master: its ports on loopback take connections from uid 0 only (nftables table ${report.details.scratchGuard})`,
    );
    expect((await execCapture('nft', ['list', 'tables'])).stdout).not.toContain(report.details.scratchGuard);
  });

  test('drill from the DATA_PATH itself (a metalogger where there is one, else the master)', async () => {
    const from = lab.metalogger ? 'ml1' : 'master';
    const res = await runCli(['run', 'drill', '--from', from, '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(`${report.status}: ${report.summary}`).toMatch(/^OK: /);
    expect(report.details.restoredVersion).toBeGreaterThanOrEqual(versionAfter - 1);
    expect(await processesIn(path.join(lab.dir, 'state', 'drill'))).toEqual([]);
  });

  test("prune: the snapshot store and the master's DATA_PATH, planned over this generation's files; the newest snapshot survives and verifies", async () => {
    // A second restore point: more changes, a new image, another backup.
    await change('second-image', 5);
    await lab.saveImage();
    expect((await runCli(['run', 'backup', '--config', config])).code).toBe(0);
    const store = path.join(lab.dir, 'snapshots');
    const cfg = await lab.writeConfig(
      {
        snapshotStore: { path: store, retention: { keepLast: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0 } },
        jobs: { prune: { dataPaths: ['master'], minAgeMinutes: 0, keepRestorePoints: 1 } },
      },
      'prune.yaml',
    );
    const res = await runCli(['run', 'prune', '--config', cfg, '--json']);
    const report = JSON.parse(res.stdout);
    // WARNING at most: an older restore point whose changelogs stop before the newer image is reported, not an error.
    expect(`${report.status}: ${report.summary}`).toMatch(/^(OK|WARNING): /);
    expect(report.summary).not.toMatch(/refusing/);
    const { snapshots } = await listSnapshots(store, {});
    expect(snapshots.length).toBeGreaterThanOrEqual(1);
    expect(await verifySnapshot(snapshots[snapshots.length - 1]!.dir, undefined, {})).toEqual([]);
    // What prune left still restores: the newest snapshot drills OK.
    const drill = JSON.parse((await runCli(['run', 'drill', '--config', config, '--json'])).stdout);
    expect(`${drill.status}: ${drill.summary}`).toMatch(/^OK: /);
  });

  test('verify: metaloggers fresh, gap-free and not behind (where the generation has them)', async () => {
    // The image just saved restarted the master: let the metalogger reconnect and catch up first.
    await change('verify', 1);
    const res = await runCli(['run', 'verify', '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    if (!lab.metalogger) {
      // Before 1.6.5 there is no metalogger: the snapshot store is what verify checks.
      expect(report.summary).not.toMatch(/ml1/);
      return;
    }
    expect(`${report.status}: ${report.summary}`).toMatch(/^OK: /);
  });

  test('binaries that cannot read the image are refused before anything starts, naming the key', async () => {
    // This generation's snapshot, restored with the binaries of the other image format.
    const other =
      gen().imageMagic === 'MFSM 1.5'
        ? { generation: '4', prefixes: { '4': labGeneration('4.59.2').prefix } }
        : { generation: '1.6', prefixes: { '1.6': labGeneration('1.6.4').prefix } };
    const cfg = await lab.writeConfig({ moosefs: other }, 'wrong-binaries.yaml');
    const res = await runCli(['run', 'drill', '--config', cfg]);
    expect(res.stdout).toMatch(
      new RegExp(
        `^MFS DRILL CRITICAL - snapshot \\S+: metadata\\.mfs\\.back is a "${gen().imageMagic}" image .*but moosefs\\.generation is ${other.generation.replace('.', '\\.')} .*refusing to restore it with those binaries`,
      ),
    );
    expect(res.code).toBe(2);
    await fs.rm(cfg);
  });

  test('the config names the generation: a pinned generation that does not match the master is refused, naming the key', async () => {
    const wrong = version.startsWith('1.') ? '4' : '1.6';
    const cfg = await lab.writeConfig({ moosefs: { generation: wrong, prefixes: {} } }, 'wrong-generation.yaml');
    const res = await runCli(['run', 'check-master', '--config', cfg]);
    expect(res.stdout).toMatch(
      new RegExp(
        `^MFS CHECK-MASTER CRITICAL - no master answers: .*but moosefs\\.generation is ${wrong.replace('.', '\\.')}`,
      ),
    );
    expect(res.code).toBe(2);
    await fs.rm(cfg);
  });

  // Last: it kills the lab's master.
  test('promote after kill -9 of the master: a standby of this generation restores the newest chain its own way and serves; demote stops it cleanly', async () => {
    const standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false, lab: lab.generation });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    const cfg = await lab.writeConfig(
      { standby: standbySection, jobs: { promote: { fenceTimeoutSeconds: 1 } } },
      'promote.yaml',
    );
    try {
      await change('before-kill', 5);
      // What the metalogger (or, before 1.6.5, the dead master's own DATA_PATH) holds is what can come back.
      if (lab.metalogger) await waitMetaloggerCaughtUp(lab.master, lab.metalogger);
      const dead = (await lab.master.info()).metadataVersion;
      await lab.master.kill9();
      const res = await runCli(['run', 'promote', '--config', cfg, '--json']);
      const report = JSON.parse(res.stdout);
      expect(`${report.status}: ${report.summary}`).toMatch(/^OK: promoted: serving metadata version \d+/);
      expect(report.details.restoreCommand).toBe(
        gen().restore === 'mfsmetarestore' ? 'mfsmetarestore' : 'mfsmaster -a',
      );
      expect(report.details.moosefs).toBe(version === '1.5.12' ? '1.5' : version);
      // 1.5.12's housekeeping may have added a version the kill -9 caught mid-flight.
      expect(report.details.metadataVersion).toBeGreaterThanOrEqual(version === '1.5.12' ? dead - 2 : dead);
      // 1.x keeps client sessions beside the image (1.5.12 here has no client, so no sessions file).
      if (gen().sessionsFiles.length && lab.mount)
        expect(report.lines.join('\n')).toContain('sessions.mfs restored beside the image');
      const demote = await runCli(['run', 'demote', '--config', cfg]);
      expect(demote.stdout).toMatch(/^MFS DEMOTE OK - stopped mfsmaster \(pid \d+\)/);
      expect(await runningMasterPid(standby.dataPath)).toBeUndefined();
      // A clean stop: the master wrote metadata.mfs, the image the next start (or restore) begins from.
      expect((await readImageHeader(path.join(standby.dataPath, 'metadata.mfs'))).magic).toBe(gen().imageMagic);
    } finally {
      const pid = await runningMasterPid(standby.dataPath);
      if (pid) process.kill(pid, 'SIGKILL');
    }
  });
});
