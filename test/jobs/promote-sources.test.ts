import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli } from '../helpers/cli.js';
import { writeSnapshot } from '../helpers/snapshot-fixture.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';

/** Copy some of a DATA_PATH's files into a new directory: a source that holds exactly these. */
async function copySource(from: string, to: string, keep: (name: string) => boolean): Promise<string[]> {
  await fs.mkdir(to, { recursive: true, mode: 0o700 });
  const names = (await fs.readdir(from)).filter(keep);
  for (const n of names) await fs.copyFile(path.join(from, n), path.join(to, n));
  return names;
}

describe('promote chooses among real sources (snapshot store, metalogger copies, a stray filesystem)', () => {
  let lab: Lab;
  let standby: LabMaster;
  let storeSnapshot: string;
  let killedAt: number;
  let metaid: string;

  async function promoteWith(
    name: string,
    sources: { metaloggers: Record<string, unknown>[]; snapshotStore?: boolean; standby?: Record<string, unknown> },
  ) {
    const doc = lab.configDocument({
      masters: [{ name: 'master', host: '127.0.0.1', cliPort: lab.master.ports.cl, dataPath: lab.master.dataPath }],
      metaloggers: sources.metaloggers.map((m) => ({ host: '127.0.0.1', local: true, ...m })),
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
        ...sources.standby,
      },
      jobs: { promote: { fenceTimeoutSeconds: 1 } },
    });
    if (!sources.snapshotStore) delete doc.snapshotStore;
    const file = path.join(lab.dir, `${name}.yaml`);
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    const res = await runCli(['run', 'promote', '--config', file, '--json']);
    return { res, report: JSON.parse(res.stdout) };
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: false });
    await lab.makeChanges('a', 10);
    await lab.saveImage();
    // Image only: the metalogger copies must supply the changelogs.
    storeSnapshot = (
      await writeSnapshot({
        store: path.join(lab.dir, 'snapshots'),
        image: path.join(lab.master.dataPath, 'metadata.mfs.back'),
        changelogs: [],
      })
    ).id;
    metaid = (await readImageHeader(path.join(lab.master.dataPath, 'metadata.mfs.back'))).metaid;
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('b', 10);
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    killedAt = (await lab.master.info()).metadataVersion;
    await lab.master.kill9();
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
  });

  afterEach(async () => {
    const pid = await runningMasterPid(standby.dataPath);
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    await waitFor('standby master to exit', async () => (await runningMasterPid(standby.dataPath)) === undefined);
  });

  afterAll(async () => {
    await lab?.stop();
  });

  test("combines the snapshot store's image with another source's changelogs", async () => {
    await copySource(lab.metalogger!.dataPath, path.join(lab.dir, 'ml-tail'), (n) => n.startsWith('changelog'));
    const { res, report } = await promoteWith('combine', {
      metaloggers: [{ name: 'ml-tail', dataPath: path.join(lab.dir, 'ml-tail') }],
      snapshotStore: true,
    });
    expect(report.status).toBe('OK');
    expect(report.details.plan.image.source).toBe(`snapshot:${storeSnapshot}`);
    expect(report.details.plan.changelogs.map((c: { source: string }) => c.source)).toEqual(
      expect.arrayContaining(['ml-tail']),
    );
    expect(report.details.plan.reached).toBe(killedAt);
    expect(report.details.sourcesUsed).toEqual([`snapshot:${storeSnapshot}`, 'ml-tail']);
    expect(res.code).toBe(0);
    expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBe(killedAt);
  });

  test('trims a changelog whose last line is cut (mfsmaster -a would silently skip the whole file)', async () => {
    const dir = path.join(lab.dir, 'ml-cut');
    await copySource(lab.metalogger!.dataPath, dir, (n) => !n.startsWith('.'));
    const current = path.join(dir, 'changelog_ml.0.mfs');
    const text = await fs.readFile(current, 'latin1');
    await fs.writeFile(current, text.slice(0, -5), 'latin1');
    const { report } = await promoteWith('cut', { metaloggers: [{ name: 'ml-cut', dataPath: dir }] });
    // The cut line was never complete: the restore reaches the line before it, and says that change is lost.
    expect(report.status).toBe('WARNING');
    expect(report.summary).toContain(
      `ml-cut:changelog_ml.0.mfs ended mid-line: changes after version ${killedAt - 2} were still in its writer's buffer and are lost`,
    );
    expect(report.details.plan.reached).toBe(killedAt - 1);
    expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBe(killedAt - 1);
    for (const name of (await fs.readdir(standby.dataPath)).filter((n) => /^changelog\.\d+\.mfs$/.test(n))) {
      expect((await fs.readFile(path.join(standby.dataPath, name), 'latin1')).endsWith('\n')).toBe(true);
    }
  });

  test('never mixes in files of another filesystem (metaid): uses the right one and says so', async () => {
    const stray = await LabMaster.create(path.join(lab.dir, 'stray-master'));
    await stray.start();
    await stray.stop();
    const strayDir = path.join(lab.dir, 'stray');
    await fs.mkdir(strayDir, { mode: 0o700 });
    await fs.copyFile(path.join(stray.dataPath, 'metadata.mfs'), path.join(strayDir, 'metadata.mfs.back'));
    const strayMetaid = (await readImageHeader(path.join(strayDir, 'metadata.mfs.back'))).metaid;
    expect(strayMetaid).not.toBe(metaid);

    const { res, report } = await promoteWith('stray', {
      metaloggers: [
        { name: 'ml1', dataPath: lab.metalogger!.dataPath },
        { name: 'stray', dataPath: strayDir },
      ],
    });
    expect(report.status).toBe('WARNING');
    expect(report.summary).toContain(`other filesystems seen and not used: metaid ${strayMetaid} on stray`);
    expect(report.details.plan.metaid).toBe(metaid);
    expect(report.details.sourcesUsed).toEqual(['ml1']);
    expect(res.code).toBe(1);
    expect((await readImageHeader(path.join(standby.dataPath, 'metadata.mfs.back'))).metaid).toBe(metaid);
    expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBe(killedAt);
  });

  test('restoreMethod mfsmetarestore on a MooseFS that has none says so and starts nothing', async () => {
    const { res, report } = await promoteWith('metarestore', {
      metaloggers: [{ name: 'ml1', dataPath: lab.metalogger!.dataPath }],
      standby: { restoreMethod: 'mfsmetarestore' },
    });
    expect(report.status).toBe('CRITICAL');
    expect(report.summary).toBe(
      'mfsmetarestore failed: mfsmetarestore has been removed in version 1.7, use mfsmaster -a instead (standby.restoreMethod forces mfsmetarestore: set it to auto)',
    );
    expect(res.code).toBe(2);
    expect(await runningMasterPid(standby.dataPath)).toBeUndefined();
  });
});
