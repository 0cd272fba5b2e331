import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Lab } from '../lab/cluster.js';
import { runCli } from '../helpers/cli.js';

interface StatusJson {
  status: string;
  exitCode: number;
  summary: string;
  cluster: {
    masters: { name: string; answers: boolean; metadataVersion: number; generation: string }[];
    metaid: string | null;
  };
  restorePoints: { count: number; newest: { reachesVersion: number } | null; window: { toVersion: number } | null };
  rpo: { sources: { source: string; kind: string; status: string; behindVersions: number | null }[] };
  standby: { configured: boolean };
  lease: { configured: boolean; note: string };
  jobs: { job: string; nextRun: string | null; last: { status: string } | null; missedRuns: boolean }[];
  problems: { status: string; text: string }[];
}

async function status(config: string): Promise<{ code: number | null; json: StatusJson; text: string }> {
  const [json, text] = await Promise.all([
    runCli(['status', '--config', config, '--json']),
    runCli(['status', '--config', config]),
  ]);
  expect(json.code).toBe(text.code);
  return { code: json.code, json: JSON.parse(json.stdout) as StatusJson, text: text.stdout };
}

/** `mfs-jobs status` reads what the jobs recorded against a real master, metalogger and store. */
describe('status: am I safe right now?', () => {
  let lab: Lab;
  let config: string;

  beforeAll(async () => {
    lab = await Lab.start();
    await lab.makeChanges('status', 10);
    await lab.saveImage();
    // A metalogger downloads the image when it connects: restarted, it holds a real metadata_ml.mfs.back.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('status-after-image', 5);
    config = await lab.writeConfig({
      jobs: { backup: { sources: ['master'] }, verify: { lagVersionsWarn: 5, lagVersionsCrit: 20 } },
    });
    for (const job of ['check-master', 'backup', 'verify', 'check-standby']) {
      const run = await runCli(['run', job, '--config', config]);
      expect(`${job}: ${run.code}`).toBe(`${job}: 0`);
    }
  });
  afterAll(async () => {
    await lab?.stop();
  });

  test('healthy lab: OK, exit 0, the master, the restore point, every source and the next runs', async () => {
    const master = (await lab.master.info()).metadataVersion;
    const { code, json, text } = await status(config);
    expect(json.problems).toEqual([]);
    expect(json).toMatchObject({ status: 'OK', exitCode: 0 });
    expect(code).toBe(0);
    expect(json.cluster.masters).toEqual([
      expect.objectContaining({ name: 'master', answers: true, generation: '3.0' }),
    ]);
    expect(json.cluster.masters[0]!.metadataVersion).toBeGreaterThanOrEqual(master - 2);
    expect(json.restorePoints.count).toBe(1);
    expect(json.restorePoints.window!.toVersion).toBe(json.restorePoints.newest!.reachesVersion);
    expect(json.rpo.sources).toContainEqual(
      expect.objectContaining({ source: 'ml1', kind: 'metalogger', status: 'OK', behindVersions: 0 }),
    );
    expect(json.rpo.sources).toContainEqual(expect.objectContaining({ kind: 'snapshot', status: 'OK' }));
    expect(json.standby.configured).toBe(false);
    expect(json.lease).toMatchObject({ configured: false });
    expect(json.jobs.find((j) => j.job === 'verify')).toMatchObject({
      last: { status: 'OK' },
      missedRuns: false,
      nextRun: expect.stringMatching(/^\d{4}-/),
    });
    expect(json.jobs.find((j) => j.job === 'promote')).toMatchObject({ nextRun: null, last: null });
    expect(text.split('\n')[0]).toMatch(/^MFS STATUS OK - 1 restore point\(s\), newest reaches \d+/);
    for (const section of [
      'CLUSTER',
      'RESTORE POINTS  1 in ',
      'RPO ',
      'STANDBY ',
      'FAILOVER LEASE  not configured',
      'JOBS (UTC)',
    ])
      expect(text).toContain(section);
  });

  test('a stale metalogger: CRITICAL, exit 2, naming it; a job that stopped running is named too', async () => {
    await lab.metalogger!.stop();
    try {
      await lab.mount!.makeChanges('status-stale', 30);
      expect((await runCli(['run', 'verify', '--config', config])).code).toBe(2);
      const { code, json, text } = await status(config);
      expect(code).toBe(2);
      expect(json.status).toBe('CRITICAL');
      expect(json.summary).toMatch(/^verify: ml1: \d+ versions behind the master/);
      expect(json.rpo.sources.find((s) => s.source === 'ml1')).toMatchObject({ status: 'CRITICAL' });
      expect(json.rpo.sources.find((s) => s.source === 'ml1')!.behindVersions).toBeGreaterThan(20);
      expect(text).toMatch(/^MFS STATUS CRITICAL - verify: ml1: \d+ versions behind the master/);

      // check-master's last result from two hours ago: two runs of */5 missed.
      const file = path.join(lab.dir, 'state', 'state', 'check-master.json');
      const state = JSON.parse(await fs.readFile(file, 'utf8')) as { finishedAt: string };
      await fs.writeFile(
        file,
        JSON.stringify({ ...state, finishedAt: new Date(Date.now() - 7_200_000).toISOString() }),
      );
      const later = await status(config);
      expect(later.json.problems).toContainEqual({
        status: 'WARNING',
        text: expect.stringMatching(
          /^check-master last ran 2 h 0 min ago and has missed runs since \(schedule \*\/5 \* \* \* \*\)/,
        ),
      });
    } finally {
      await lab.metalogger!.start();
    }
  });

  test('no store: CRITICAL naming the missing snapshotStore; an empty one: CRITICAL naming its path', async () => {
    const none = await lab.writeConfig(
      { snapshotStore: undefined, stateDir: path.join(lab.dir, 'state-nostore') },
      'no-store.yaml',
    );
    let res = await status(none);
    expect(res.code).toBe(2);
    expect(res.json.restorePoints.count).toBe(0);
    expect(res.text.split('\n')[0]).toBe(
      `MFS STATUS CRITICAL - no snapshotStore in ${none}: no restore point outside the running cluster; check-master has never run: nothing it checks is known; backup has never run: nothing it checks is known (+1 more)`,
    );

    const emptyDir = path.join(lab.dir, 'empty-store');
    const empty = await lab.writeConfig(
      {
        snapshotStore: { path: emptyDir, compression: { type: 'none' } },
        stateDir: path.join(lab.dir, 'state-nostore'),
      },
      'empty-store.yaml',
    );
    res = await status(empty);
    expect(res.code).toBe(2);
    expect(res.json.problems[0]).toEqual({
      status: 'CRITICAL',
      text: `no restore point in the snapshot store ${emptyDir} (has backup run?)`,
    });
  });
});
