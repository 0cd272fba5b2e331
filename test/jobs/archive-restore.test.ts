import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Lab } from '../lab/cluster.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { LabMaster, LabMount } from '../lab/moosefs.js';
import { LabS3 } from '../lab/s3.js';
import { withoutStore } from '../helpers/store-loss.js';
import { runCli, startCli } from '../helpers/cli.js';
import { sleep } from '../lab/proc.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';

/**
 * The archive's promise, against the real thing: a master, a metalogger and a mount on loopback, files
 * written continuously while `mfs-jobs run archive --follow` seals segments (zstd, sealed with the store
 * key) and pushes each to an S3 copy (Ceph RGW); the master and the metalogger are killed together
 * (kill -9) and their DATA_PATHs deleted. From the store alone — one snapshot plus the archive — and then
 * from the S3 copy alone, `restore --to-time` five seconds before the kill rebuilds a DATA_PATH; a fresh
 * master on it and a fresh mount show every file whose creation was acknowledged before that moment, and
 * none made more than 1.5 s after it.
 */
interface PromoteReport {
  status: string;
  summary: string;
  lines: string[];
}

describe.each<LabVersion>(['3.0.117'])('archive on MooseFS %s: master and metalogger lost together', (version) => {
  let lab: Lab;
  let config: string;
  let store: string;
  let s3: LabS3 | undefined;
  let target = 0;
  let kill = 0;
  let settings: Record<string, unknown>;
  const acked: { name: string; at: number }[] = [];

  const cli = (args: string[]) => runCli([...args, '--config', config, '--json'], { timeoutMs: 120_000 });

  beforeAll(async () => {
    // The SDK's notice about its own future Node requirement, as the CLI silences it (lib/store/copy/s3.ts).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    lab = await Lab.start({ lab: labGeneration(version), metalogger: true, mount: true });
    s3 = await LabS3.start(path.join(lab.dir, 's3'));
    const credentialsFile = await s3.writeCredentials(path.join(lab.dir, 's3-credentials.json'));
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: LabS3.ACCESS_KEY, secretAccessKey: LabS3.SECRET_KEY },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'archive' }));
    client.destroy();
    const keyFile = path.join(lab.dir, 'store.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    store = path.join(lab.dir, 'store');
    const copy = { name: 'offsite-s3', type: 's3', endpoint: s3.endpoint, bucket: 'archive', prefix: 'mfs/' };
    settings = {
      snapshotStore: {
        path: store,
        compression: 'zstd',
        encryption: { keyFile },
        copies: [{ ...copy, forcePathStyle: true, credentialsFile, timeoutSeconds: 5 }],
      },
      jobs: { archive: { segmentSeconds: 1, pollSeconds: 0.2 } },
    };
    config = await lab.writeConfig(settings);
  }, 120_000);

  afterAll(async () => {
    await s3?.stop();
    await lab?.stop();
  });

  /** Restore to `target` into a fresh DATA_PATH, serve it, and read the files back through a fresh mount. */
  async function restoreAndCheck(name: string, from: string[]): Promise<void> {
    const restored = await LabMaster.create(path.join(lab.dir, name), { bootstrap: false, ports: lab.master.ports });
    const at = new Date(target).toISOString();
    const res = await cli(['restore', ...from, '--to-time', at, '--data-path', restored.dataPath]);
    expect({ code: res.code, out: res.stdout.slice(0, 2000) }).toMatchObject({ code: 0 });
    await restored.start({ autoRestore: true });
    await checkFiles(name, restored, target);
  }

  /**
   * Through a fresh mount of `restored`: every file acknowledged before `upTo` is there; `cut`: none
   * acknowledged more than 1.5 s after it.
   */
  async function checkFiles(name: string, restored: LabMaster, upTo: number, cut = true): Promise<void> {
    const where = { host: restored.cliHost, port: restored.ports.cl };
    const mount = await LabMount.mount(path.join(lab.dir, `${name}-mnt`), where, path.join(lab.dir, `${name}-mnt.log`));
    try {
      const present = new Set(await fs.readdir(path.join(mount.dir, 'live')));
      const missing = acked.filter((f) => f.at < upTo && !present.has(f.name)).map((f) => f.name);
      expect(missing).toEqual([]);
      const tooNew = acked.filter((f) => f.at > upTo + 1_500 && present.has(f.name)).map((f) => f.name);
      if (cut) expect(tooNew).toEqual([]);
    } finally {
      await mount.unmount();
      await restored.stop();
    }
  }

  test('every file acknowledged 5 s before the kill is restored from the snapshot and the archive', async () => {
    await lab.makeChanges('before', 20);
    await lab.saveImage();
    const backup = await cli(['run', 'backup']);
    expect(backup.code).toBe(0);

    const follow = startCli(['run', 'archive', '--follow', '--config', config]);
    try {
      // Files written continuously, each one's acknowledgement noted (metadata only: no chunkserver needed).
      const dir = path.join(lab.mount!.dir, 'live');
      await fs.mkdir(dir);
      const stopAt = Date.now() + 14_000;
      for (let i = 0; Date.now() < stopAt; i++) {
        await fs.writeFile(path.join(dir, `f${i}`), '');
        acked.push({ name: `f${i}`, at: Date.now() });
        await sleep(20);
      }
      kill = Date.now();
      await Promise.all([lab.master.kill9(), lab.metalogger!.kill9()]);
      await fs.rm(lab.master.dataPath, { recursive: true, force: true });
      await fs.rm(lab.metalogger!.dataPath, { recursive: true, force: true });
      await sleep(500);
    } finally {
      follow.child.kill('SIGTERM');
    }
    const followed = await follow.done;
    expect(followed.signal).toBeNull();

    target = kill - 5_000;
    expect(acked.filter((f) => f.at < target).length).toBeGreaterThan(100);
    await restoreAndCheck('restored', ['--latest']);
  }, 180_000);

  test('the same from the S3 copy alone (each segment was pushed as it was sealed)', async () => {
    expect(target).toBeGreaterThan(0);
    await withoutStore(store, () => restoreAndCheck('restored-s3', ['--from', 'copy:offsite-s3']));
  }, 120_000);

  /** `run promote` onto a fresh standby (in `dir`) with everything written before; the report and the standby. */
  async function promote(dir: string): Promise<{ standby: LabMaster; report: PromoteReport }> {
    const standby = await LabMaster.create(path.join(lab.dir, dir), {
      bootstrap: false,
      ports: lab.master.ports,
    });
    const promoteConfig = await lab.writeConfig(
      {
        ...settings,
        standby: {
          dataPath: standby.dataPath,
          masterConfig: standby.configFile,
          cliHost: '127.0.0.1',
          cliPort: standby.ports.cl,
        },
        jobs: { ...(settings.jobs as object), promote: { fenceTimeoutSeconds: 1 } },
      },
      `${dir}.yaml`,
    );
    const res = await runCli(['run', 'promote', '--config', promoteConfig, '--json'], { timeoutMs: 120_000 });
    return { standby, report: JSON.parse(res.stdout) as PromoteReport };
  }
  async function killStandby(dir: string): Promise<void> {
    const pid = await runningMasterPid(path.join(lab.dir, dir, 'data'));
    if (pid) process.kill(pid, 'SIGKILL');
  }

  test('promote with the metaloggers gone: the standby serves the newest snapshot rolled on through the archive', async () => {
    expect(kill).toBeGreaterThan(0);
    try {
      const { standby, report } = await promote('standby');
      expect(`${report.status}: ${report.summary}`).toMatch(/^OK: promoted: serving metadata version \d+/);
      expect(report.lines.join('\n')).toMatch(/archive:store/);
      // The snapshot was taken before the files were written: they came from the archive, up to its end.
      await checkFiles('promoted', standby, kill - 2_000, false);
    } finally {
      await killStandby('standby');
    }
  }, 180_000);

  test("promote with the store lost too: the S3 copy's snapshot rolled on through the copy's archive", async () => {
    expect(kill).toBeGreaterThan(0);
    try {
      const { standby, report } = await withoutStore(store, () => promote('standby-copy'));
      expect(`${report.status}: ${report.summary}`).toMatch(/^OK: promoted: serving metadata version \d+/);
      const lines = report.lines.join('\n');
      expect(lines).toMatch(/archive:copy:offsite-s3/);
      expect(lines).not.toMatch(/archive:store/);
      // Only the copy held anything: its snapshot predates the files, its segments brought them.
      await checkFiles('promoted-copy', standby, kill - 2_000, false);
    } finally {
      await killStandby('standby-copy');
    }
  }, 180_000);
});
