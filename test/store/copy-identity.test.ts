import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { MANIFEST, snapshotId, type Manifest } from '../../lib/store/manifest.js';
import { runCli } from '../helpers/cli.js';
import { attackTest } from '../faults/results.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { processesIn } from '../lab/proc.js';

interface Report {
  status: string;
  summary: string;
  lines?: string[];
  details: { plan?: { image: { source: string }; reached: number } };
}

/**
 * Issue #23 case 5, the readers' side: which restore points drill, restore and promote take from a copy
 * (the lab's real OpenSSH sshd as an SFTP copy) and from a local DATA_PATH, against the cluster identity
 * that backup recorded. Another filesystem's snapshot lies in the copy (pushed there by a real backup of a
 * second master), and a DATA_PATH of that filesystem is configured as a source; attack (B) forges a copy
 * snapshot of the cluster's own filesystem one version ahead of the live master.
 */
describe("the cluster identity for drill, restore and promote; a copy only as promote's last resort (real master, metalogger, sshd)", () => {
  let lab: Lab;
  let other: LabMaster;
  let copyDir: string;
  let scratch: string;
  let config: string;
  let metaid: string;
  let otherMetaid: string;
  let otherId: string;
  const standbys: LabMaster[] = [];

  const copy = () => ({
    name: 'offsite',
    type: 'sftp',
    host: '127.0.0.1',
    port: lab.sshd!.port,
    user: 'root',
    identityFile: lab.sshd!.clientKey,
    knownHosts: lab.sshd!.knownHosts,
    path: copyDir,
    timeoutSeconds: 5,
    retention: { keepLast: 10, keepHourly: 0, keepDaily: 0, keepWeekly: 0 },
  });
  const write = async (name: string, doc: Record<string, unknown>) => {
    const file = path.join(lab.dir, name);
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return file;
  };
  const json = (stdout: string) => JSON.parse(stdout) as Report;
  const copyIds = async () => (await fs.readdir(path.join(copyDir, 'snapshots'))).sort();

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    await lab.makeChanges('a', 10);
    await lab.saveImage();
    // The metalogger downloads the saved image when it connects again: a live restore point of its own.
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('b', 10);
    metaid = (await readImageHeader(path.join(lab.master.dataPath, 'metadata.mfs.back'))).metaid;
    copyDir = path.join(lab.dir, 'offsite');
    scratch = path.join(lab.dir, 'scratch');
    config = await lab.writeConfig({
      snapshotStore: {
        path: path.join(lab.dir, 'snapshots'),
        compression: { type: 'none' },
        retention: { keepLast: 10 },
        copies: [copy()],
      },
      jobs: { drill: { scratchDir: scratch } },
    });
    const ours = await runCli(['run', 'backup', '--config', config]);
    expect(ours.stdout).toMatch(/^MFS BACKUP OK/);

    // Another filesystem (its own metaid), backed up by its own config into the same copy.
    other = await LabMaster.create(path.join(lab.dir, 'other'));
    await other.start();
    await other.restart();
    otherMetaid = (await readImageHeader(path.join(other.dataPath, 'metadata.mfs.back'))).metaid;
    expect(otherMetaid).not.toBe(metaid);
    const before = await copyIds();
    const otherConfig = await write('other.yaml', {
      timezone: 'UTC',
      stateDir: path.join(lab.dir, 'other-state'),
      daemon: { socket: false },
      masters: [{ name: 'other', host: '127.0.0.1', local: true, dataPath: other.dataPath, cliPort: other.ports.cl }],
      snapshotStore: {
        path: path.join(lab.dir, 'other-store'),
        compression: { type: 'none' },
        retention: { keepLast: 10 },
        copies: [copy()],
      },
    });
    const theirs = await runCli(['run', 'backup', '--config', otherConfig]);
    expect(theirs.stdout).toMatch(/^MFS BACKUP OK/);
    otherId = (await copyIds()).find((id) => !before.includes(id))!;
    expect(otherId).toBeDefined();
    await other.stop();
  }, 180_000);

  afterAll(async () => {
    for (const s of standbys) {
      const pid = await runningMasterPid(s.dataPath);
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    }
    for (const pid of await processesIn(scratch).catch(() => [] as number[])) process.kill(pid, 'SIGKILL');
    await other?.stop().catch(() => undefined);
    await lab?.stop();
  }, 60_000);

  attackTest(
    'cluster identity',
    "another filesystem's snapshot in a copy (restore)",
    'restore --from copy: refuses a snapshot of another filesystem in one line naming it and both ids; --other-filesystem takes it',
    async () => {
      const target = path.join(lab.dir, 'restored');
      const args = [
        'run',
        'restore',
        '--from',
        'copy:offsite',
        '--snapshot',
        otherId,
        '--data-path',
        target,
        '--dry-run',
        '--config',
        config,
      ];
      const refused = await runCli(args);
      expect(refused.stdout.split('\n')[0]).toBe(
        `MFS RESTORE CRITICAL - snapshot ${otherId} of copy offsite: image metadata.mfs.back is of filesystem metaid ${otherMetaid}, the cluster's is ${metaid} (${path.join(lab.dir, 'state', 'cluster-identity.json')} (learnt from master at ${(JSON.parse(await fs.readFile(path.join(lab.dir, 'state', 'cluster-identity.json'), 'utf8')) as { at: string }).at})): not used (--other-filesystem to use it anyway)`,
      );
      expect(refused.code).toBe(2);
      const taken = await runCli([...args, '--other-filesystem']);
      expect(taken.stdout).toMatch(
        new RegExp(`^MFS RESTORE OK - dry run: would restore snapshot ${otherId} of copy offsite into ${target}`),
      );
      expect(taken.stdout).toContain(`is of filesystem metaid ${otherMetaid}, the cluster's is ${metaid}`);
      expect(taken.stdout).toContain('used anyway (--other-filesystem)');
      // The cluster's own snapshot of the same copy passes without a word about identity.
      const own = (await copyIds()).find((id) => id !== otherId)!;
      const fine = await runCli([
        'run',
        'restore',
        '--from',
        'copy:offsite',
        '--snapshot',
        own,
        '--data-path',
        target,
        '--dry-run',
        '--config',
        config,
      ]);
      expect(fine.stdout).toMatch(/^MFS RESTORE OK - dry run/);
      expect(fine.stdout).not.toContain('filesystem metaid');
      await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);
    },
    120_000,
  );

  attackTest(
    'cluster identity',
    "another filesystem's snapshot in a copy (drill)",
    'drill --from copy: refuses a snapshot of another filesystem; with --other-filesystem it restores and serves it',
    async () => {
      const args = ['run', 'drill', '--from', 'copy:offsite', '--snapshot', otherId, '--config', config];
      const refused = await runCli(args);
      expect(refused.stdout.split('\n')[0]).toMatch(
        new RegExp(
          `^MFS DRILL CRITICAL - snapshot ${otherId} of copy offsite: image metadata\\.mfs\\.back is of filesystem metaid ${otherMetaid}, the cluster's is ${metaid} .*: not used \\(--other-filesystem to use it anyway\\)`,
        ),
      );
      expect(refused.code).toBe(2);
      const taken = await runCli([...args, '--other-filesystem']);
      expect(taken.stdout).toMatch(
        new RegExp(
          `^MFS DRILL \\w+ - (.* — )?snapshot ${otherId} of copy offsite restored to metadata version \\d+ and served`,
        ),
      );
      expect(taken.stdout).toContain('used anyway (--other-filesystem)');
    },
    180_000,
  );

  attackTest(
    'cluster identity',
    'a DATA_PATH of another filesystem (restore, drill)',
    'restore and drill --from a local DATA_PATH of another filesystem refuse it; restore --other-filesystem takes it',
    async () => {
      const doc = YAML.parse(await fs.readFile(config, 'utf8')) as Record<string, unknown>;
      const withOther = await write('local-dir.yaml', {
        ...doc,
        metaloggers: [
          ...(doc.metaloggers as unknown[]),
          { name: 'otherfs', host: '127.0.0.1', local: true, dataPath: other.dataPath },
        ],
      });
      const target = path.join(lab.dir, 'restored-local');
      const args = ['run', 'restore', '--from', 'otherfs', '--data-path', target, '--dry-run', '--config', withOther];
      const refused = await runCli(args);
      expect(refused.stdout.split('\n')[0]).toMatch(
        new RegExp(
          `^MFS RESTORE CRITICAL - metalogger otherfs \\(${other.dataPath}\\): image metadata\\.mfs is of filesystem metaid ${otherMetaid}, the cluster's is ${metaid} .*: not used \\(--other-filesystem to use it anyway\\)$`,
        ),
      );
      expect(refused.code).toBe(2);
      const taken = await runCli([...args, '--other-filesystem']);
      expect(taken.stdout).toMatch(/^MFS RESTORE OK - dry run: would restore metalogger otherfs/);
      const drill = await runCli(['run', 'drill', '--from', 'otherfs', '--config', withOther]);
      expect(drill.stdout.split('\n')[0]).toMatch(
        new RegExp(
          `^MFS DRILL CRITICAL - .*is of filesystem metaid ${otherMetaid}, the cluster's is ${metaid} .*: not used`,
        ),
      );
      expect(drill.code).toBe(2);
    },
    120_000,
  );

  attackTest(
    'cluster identity',
    'copy snapshot with no cluster identity known (restore)',
    "with no cluster identity anywhere (fresh state dir, no cluster.metaid, a 3.0 master that does not report its metaid), a copy's snapshot is refused; a metalogger's DATA_PATH is used",
    async () => {
      const doc = YAML.parse(await fs.readFile(config, 'utf8')) as Record<string, unknown>;
      const bare = await write('bare.yaml', { ...doc, stateDir: path.join(lab.dir, 'bare-state') });
      const own = (await copyIds()).find((id) => id !== otherId)!;
      const target = path.join(lab.dir, 'restored-bare');
      const args = [
        'run',
        'restore',
        '--from',
        'copy:offsite',
        '--snapshot',
        own,
        '--data-path',
        target,
        '--dry-run',
        '--config',
        bare,
      ];
      const refused = await runCli(args);
      expect(refused.stdout.split('\n')[0]).toBe(
        `MFS RESTORE CRITICAL - snapshot ${own} of copy offsite: image metadata.mfs.back is of filesystem metaid ${metaid} and the cluster's metaid is not known (no cluster.metaid in ${bare}, none recorded in ${path.join(lab.dir, 'bare-state', 'cluster-identity.json')}; masters: master does not report one): a copy is writable by others: not used (--other-filesystem to use it anyway)`,
      );
      expect(refused.code).toBe(2);
      expect((await runCli([...args, '--other-filesystem'])).stdout).toMatch(/^MFS RESTORE OK - dry run/);
      const local = await runCli([
        'run',
        'restore',
        '--from',
        'ml1',
        '--data-path',
        target,
        '--dry-run',
        '--config',
        bare,
      ]);
      expect(local.stdout).toMatch(/^MFS RESTORE OK - dry run: would restore metalogger ml1/);
    },
    120_000,
  );

  /**
   * Attack (B): with the local store empty, a plain image of the cluster's own filesystem with its version
   * patched to one past the live master's, under a manifest that lists it, placed in the copy as its newest
   * snapshot. Before, promote chose it (it reached furthest) over the live metalogger.
   */
  attackTest(
    'cluster identity',
    'forged copy snapshot one version ahead (promote, store empty)',
    'promote with the store empty and a live metalogger never considers the copy: it restores from the live sources, not the forged version',
    async () => {
      // The master dies first: the version it reached is final, and the forgery is one past it.
      await lab.mount?.unmount();
      const live = (await lab.master.info()).metadataVersion;
      await lab.master.kill9();
      const forgedVersion = live + 1;
      const image = Buffer.from(await fs.readFile(path.join(lab.master.dataPath, 'metadata.mfs.back')));
      image.writeBigUInt64BE(BigInt(forgedVersion), 8);
      const id = snapshotId(new Date(Date.now() + 60_000), forgedVersion);
      const own = (await copyIds()).find((i) => i !== otherId)!;
      const real = JSON.parse(await fs.readFile(path.join(copyDir, 'snapshots', own, MANIFEST), 'utf8')) as Manifest;
      const file = {
        name: 'metadata.mfs.back',
        role: 'image' as const,
        size: image.length,
        sha256: createHash('sha256').update(image).digest('hex'),
        sourcePath: '/x/metadata.mfs.back',
        sourceSize: image.length,
        sourceMtimeMs: 0,
      };
      const forged: Manifest = {
        ...real,
        id,
        image: { ...real.image, name: 'metadata.mfs.back', version: forgedVersion, metaid },
        changelogs: {},
        reachesVersion: forgedVersion,
        files: [file],
      };
      await fs.mkdir(path.join(copyDir, 'snapshots', id));
      await fs.writeFile(path.join(copyDir, 'snapshots', id, 'metadata.mfs.back'), image);
      await fs.writeFile(path.join(copyDir, 'snapshots', id, MANIFEST), JSON.stringify(forged));

      const standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
      standbys.push(standby);
      const doc = YAML.parse(await fs.readFile(config, 'utf8')) as Record<string, unknown>;
      const store = doc.snapshotStore as Record<string, unknown>;
      const promoteConfig = await write('promote.yaml', {
        ...doc,
        snapshotStore: { ...store, path: path.join(lab.dir, 'empty-store') },
        standby: {
          dataPath: standby.dataPath,
          masterConfig: standby.configFile,
          cliHost: '127.0.0.1',
          cliPort: standby.ports.cl,
        },
        jobs: { ...(doc.jobs as object), promote: { fenceTimeoutSeconds: 1, clientsWaitSeconds: 0 } },
      });
      const res = await runCli(['run', 'promote', '--config', promoteConfig, '--json']);
      const report = json(res.stdout);
      expect(report.summary).toMatch(/^promoted: serving metadata version \d+/);
      expect(report.details.plan!.image.source).not.toMatch(/^copy:/);
      expect(report.details.plan!.reached).toBeLessThanOrEqual(live);
      expect((report.lines ?? []).join('\n')).not.toContain('fetched');
      const served = (await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion;
      expect(served).toBeLessThanOrEqual(live);
      expect(served).not.toBe(forgedVersion);
      await fs.rm(path.join(copyDir, 'snapshots', id), { recursive: true });
    },
    180_000,
  );

  test("with no live source answering and the store empty, promote still takes the copy's newest snapshot of the cluster's filesystem", async () => {
    const standby = await LabMaster.create(path.join(lab.dir, 'standby2'), { bootstrap: false });
    standbys.push(standby);
    const doc = YAML.parse(await fs.readFile(config, 'utf8')) as Record<string, unknown>;
    const store = doc.snapshotStore as Record<string, unknown>;
    // The old master's machine is gone (its SSH refuses) and no metalogger is left.
    const masters = (doc.masters as Record<string, unknown>[]).map((m) => ({ ...m, ssh: { port: 1 } }));
    const ownIds = (await copyIds()).filter((i) => i !== otherId);
    const newestOther = path.join(copyDir, 'snapshots', otherId);
    const promoteConfig = await write('promote-copy.yaml', {
      ...doc,
      masters,
      metaloggers: [],
      snapshotStore: { ...store, path: path.join(lab.dir, 'empty-store-2') },
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      jobs: {
        ...(doc.jobs as object),
        promote: { fenceTimeoutSeconds: 1, clientsWaitSeconds: 0, sourceTimeoutSeconds: 3 },
      },
    });
    // The copy's newest is the other filesystem's: move it away so the copy's newest is the cluster's.
    await fs.rename(newestOther, `${newestOther}.away`);
    try {
      const res = await runCli(['run', 'promote', '--config', promoteConfig, '--json']);
      const report = json(res.stdout);
      expect(report.summary).toMatch(/^promoted: serving metadata version \d+/);
      expect(report.details.plan!.image.source).toBe(`copy:offsite:${ownIds.at(-1)}`);
    } finally {
      await fs.rename(`${newestOther}.away`, newestOther);
    }
  }, 180_000);
});
