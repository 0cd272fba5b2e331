import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { processAlive } from '../../lib/core/lock.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, LabMount, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { runCli, startCli } from '../helpers/cli.js';

const NO_SCHEDULES = Object.fromEntries(
  ['backup', 'check-master', 'drill', 'prune', 'verify'].map((j) => [j, { enabled: false }]),
);

/**
 * A warm standby (standby.mirror): the standby's daemon keeps the metalogger's newest image and the
 * changelogs after it in <stateDir>/mirror, so that promote takes the image from there and
 * fetches only the lines written since. Real master, metalogger over a real sshd, real daemon.
 */
describe('warm standby: the daemon mirrors the metalogger, promote fetches only what is new', () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  let daemon: ReturnType<typeof startCli> | undefined;
  const logOf = (d: ReturnType<typeof startCli>) => d.out.stdout + d.out.stderr;
  const mirrorDir = () => path.join(lab.dir, 'state', 'mirror', 'ml1');

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
      mirror: true,
      mirrorIntervalSeconds: 0.5,
    };
    const doc = lab.configDocument({
      standby: standbySection,
      jobs: { ...NO_SCHEDULES, promote: { fenceTimeoutSeconds: 1 } },
    });
    const ssh = doc.ssh;
    delete doc.ssh;
    doc.metaloggers = (doc.metaloggers as Record<string, unknown>[]).map((m) => ({ ...m, ssh }));
    config = path.join(lab.dir, 'warm.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
  }, 60_000);

  afterAll(async () => {
    if (daemon) {
      daemon.child.kill('SIGTERM');
      await daemon.done;
    }
    const pid = standby ? await runningMasterPid(standby.dataPath) : undefined;
    if (pid) {
      process.kill(pid, 'SIGTERM');
      await waitFor('standby mfsmaster to exit', async () => !processAlive(pid), 30_000).catch(() =>
        process.kill(pid, 'SIGKILL'),
      );
    }
    await lab?.stop();
  });

  test('the mirror follows the metalogger: its image by version and metaid, its changelog growing line by line, private', async () => {
    await lab.makeChanges('imaged', 200);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 30);
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    const d = startCli(['daemon', '--config', config]);
    daemon = d;
    await waitFor(
      'the daemon to listen',
      async () => logOf(d).includes('hand-off socket listening') || d.child.exitCode !== null,
    );
    if (d.child.exitCode !== null) throw new Error(`daemon exited: ${logOf(d)}`);
    const version = (await lab.master.info()).metadataVersion;
    await waitFor(
      'the mirror to reach the master',
      async () =>
        new RegExp(
          `mirror up to date: ml1: image \\d+, changelogs to ${version - 1}\\b|changelogs to ${version}\\b`,
        ).test(logOf(d)),
      30_000,
    );
    const names = (await fs.readdir(mirrorDir())).sort();
    expect(names).toHaveLength(2);
    expect(names[0]).toMatch(/^changelog-\d+\.mfs$/);
    expect(names[1]).toMatch(/^image-\d+-[0-9A-F]+\.mfs$/);
    for (const n of names) expect((await fs.stat(path.join(mirrorDir(), n))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.dirname(mirrorDir()))).mode & 0o777).toBe(0o700);
    // Before any failure, the state dir says where a promotion would start.
    const status = JSON.parse(await fs.readFile(path.join(lab.dir, 'state', 'state', 'mirror.json'), 'utf8'));
    expect(status.sources.ml1.newestVersion).toBeGreaterThanOrEqual(version - 1);
    expect(status.sources.ml1.imageVersion).toBeGreaterThan(1);
    // The metalogger's changelog and the mirror's hold the same bytes.
    const [changelog] = names;
    const mirrored = await fs.readFile(path.join(mirrorDir(), changelog!));
    const source = await fs.readFile(path.join(lab.metalogger!.dataPath, 'changelog_ml.0.mfs'));
    expect(source.subarray(0, mirrored.length).equals(mirrored)).toBe(true);
  }, 90_000);

  test('after kill -9 of the master, promote takes the image from the mirror and fetches only the new lines; nothing is lost', async () => {
    await lab.makeChanges('last-minute', 15);
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    const version = (await lab.master.info()).metadataVersion;
    await lab.master.kill9();
    const imageBytes = (await fs.stat(path.join(lab.metalogger!.dataPath, 'metadata_ml.mfs.back'))).size;
    const res = await runCli(['run', 'promote', '--config', config, '--json']);
    const report = JSON.parse(res.stdout);
    expect(report.summary).toMatch(
      new RegExp(`^promoted: serving metadata version ${version} in [\\d.]+ s from ml1; RPO 0 versions$`),
    );
    expect(res.code).toBe(0);
    expect(report.details.handedOff).toBe(true);
    console.log(
      `promote: ${report.details.mirroredBytes} bytes from the mirror, ${report.details.fetchedBytes} fetched; timings (ms) ${JSON.stringify(report.details.timings)}`,
    );
    // The image came from the mirror; of the changelog only what was written after the last pass.
    expect(report.details.mirroredBytes).toBeGreaterThanOrEqual(imageBytes);
    expect(report.details.fetchedBytes).toBeLessThan(report.details.mirroredBytes - imageBytes + 1);
    const changelogBytes = (await fs.stat(path.join(lab.metalogger!.dataPath, 'changelog_ml.0.mfs'))).size;
    expect(report.details.fetchedBytes).toBeLessThan(changelogBytes);
    expect(report.details.fetchedBytes + report.details.mirroredBytes).toBeGreaterThanOrEqual(
      imageBytes + changelogBytes,
    );
    expect(report.details.fence[0].detail).toMatch(/the daemon's watch|connection refused/);
    // A fresh mount of the promoted master sees everything.
    const mount = await LabMount.mount(
      path.join(lab.dir, 'mnt-standby'),
      { host: '127.0.0.1', port: standby.ports.cl },
      path.join(lab.dir, 'mfsmount-standby.log'),
    );
    try {
      expect((await fs.readdir(path.join(mount.dir, 'imaged'))).length).toBe(200);
      expect((await fs.readdir(path.join(mount.dir, 'last-minute'))).length).toBe(15);
    } finally {
      await mount.unmount();
    }
    expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBeGreaterThanOrEqual(
      version,
    );
    // The mirror stays where it is (outside DATA_PATH), and rests while this machine is the master.
    expect(await fs.readdir(path.dirname(mirrorDir()))).toEqual(['ml1']);
    // The master started from the linked image and was stopped cleanly: it never wrote into that image.
    const image = (await fs.readdir(mirrorDir())).find((n) => n.startsWith('image-'))!;
    expect(await runCli(['run', 'demote', '--config', config], { env: { MFS_JOBS_NO_HAND_OFF: '1' } })).toMatchObject({
      code: 0,
    });
    expect(
      (await fs.readFile(path.join(mirrorDir(), image))).equals(
        await fs.readFile(path.join(lab.metalogger!.dataPath, 'metadata_ml.mfs.back')),
      ),
    ).toBe(true);
    expect((await fs.stat(path.join(mirrorDir(), image))).mtime.toISOString()).toBe('2000-01-01T00:00:00.000Z');
    // Nor into the changelog it was given through a link: the mirror's copy is still the metalogger's bytes.
    const changelog = (await fs.readdir(mirrorDir())).find((n) => n.startsWith('changelog-'))!;
    const mirroredLog = await fs.readFile(path.join(mirrorDir(), changelog));
    expect(
      mirroredLog.equals(
        (await fs.readFile(path.join(lab.metalogger!.dataPath, 'changelog_ml.0.mfs'))).subarray(0, mirroredLog.length),
      ),
    ).toBe(true);
  }, 90_000);
});
