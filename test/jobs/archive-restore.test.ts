import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Lab } from '../lab/cluster.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { LabMaster, LabMount } from '../lab/moosefs.js';
import { runCli, startCli } from '../helpers/cli.js';
import { sleep, waitFor } from '../lab/proc.js';

/**
 * The archive's promise, against the real thing: a master, a metalogger and a mount on loopback, files
 * written continuously while `mfs-jobs run archive --follow` seals segments (zstd, sealed with the store
 * key); the master and the metalogger are killed together (kill -9) and their DATA_PATHs deleted. From
 * the store alone — one hourly snapshot plus the archive — `restore --latest --to-time` five seconds
 * before the kill rebuilds a DATA_PATH; a fresh master on it and a fresh mount show every file whose
 * creation was acknowledged before that moment, and none made more than a second after it.
 */
describe.each<LabVersion>(['3.0.117'])(
  'archive on MooseFS %s: lose master and metalogger together, restore from the store',
  (version) => {
    let lab: Lab;
    let config: string;
    const acked: { name: string; at: number }[] = [];
    const toStop: { stop(): Promise<void> }[] = [];

    const cli = (args: string[]) => runCli([...args, '--config', config, '--json'], { timeoutMs: 120_000 });

    beforeAll(async () => {
      lab = await Lab.start({ lab: labGeneration(version), metalogger: true, mount: true });
      const keyFile = path.join(lab.dir, 'store.key');
      await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
      config = await lab.writeConfig({
        snapshotStore: { path: path.join(lab.dir, 'store'), compression: 'zstd', encryption: { keyFile } },
        jobs: { archive: { segmentSeconds: 1, pollSeconds: 0.2 } },
      });
    }, 120_000);

    afterAll(async () => {
      for (const s of toStop.reverse()) await s.stop().catch(() => undefined);
      await lab?.stop();
    });

    test('every file acknowledged 5 s before the kill is restored from the snapshot and the archive', async () => {
      await lab.makeChanges('before', 20);
      await lab.saveImage();
      const backup = await cli(['run', 'backup']);
      expect(backup.code).toBe(0);

      const follow = startCli(['run', 'archive', '--follow', '--config', config]);
      let kill = 0;
      try {
        // Files written continuously, each one's acknowledgement time noted (metadata only: no chunkserver needed).
        const dir = path.join(lab.mount!.dir, 'live');
        await fs.mkdir(dir);
        const stopAt = Date.now() + 14_000;
        for (let i = 0; Date.now() < stopAt; i++) {
          const name = `f${i}`;
          await fs.writeFile(path.join(dir, name), '');
          acked.push({ name, at: Date.now() });
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
      expect(followed.signal ?? followed.code).not.toBe('SIGKILL');

      const target = kill - 5_000;
      const restored = await LabMaster.create(path.join(lab.dir, 'restored'), {
        bootstrap: false,
        ports: lab.master.ports,
      });
      const res = await cli([
        'restore',
        '--latest',
        '--to-time',
        new Date(target).toISOString(),
        '--data-path',
        restored.dataPath,
      ]);
      expect({ code: res.code, out: res.stdout.slice(0, 2000) }).toMatchObject({ code: 0 });
      await restored.start({ autoRestore: true });
      toStop.push(restored);
      const mount = await LabMount.mount(
        path.join(lab.dir, 'mnt2'),
        { host: restored.cliHost, port: restored.ports.cl },
        path.join(lab.dir, 'mnt2.log'),
      );
      toStop.push({ stop: () => mount.unmount() });
      const present = new Set(await fs.readdir(path.join(mount.dir, 'live')));
      const missing = acked.filter((f) => f.at < target && !present.has(f.name)).map((f) => f.name);
      expect(missing).toEqual([]);
      const tooNew = acked.filter((f) => f.at > target + 1_500 && present.has(f.name)).map((f) => f.name);
      expect(tooNew).toEqual([]);
      expect(acked.filter((f) => f.at < target).length).toBeGreaterThan(100);
    }, 180_000);
  },
);
