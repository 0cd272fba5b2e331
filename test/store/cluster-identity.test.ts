import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { sealFile } from '../../lib/core/atomic.js';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { listSnapshots, snapshotId, type Manifest } from '../../lib/store/manifest.js';
import { finaliseSnapshot, makeStageDir, sha256File } from '../../lib/store/snapshot-store.js';
import { identityFile } from '../../lib/store/identity.js';
import { runCli } from '../helpers/cli.js';
import { imageBytes } from '../helpers/synthetic-snapshot.js';
import { Lab } from '../lab/cluster.js';
import { attackTest } from '../faults/results.js';
import { LabMaster } from '../lab/moosefs.js';

const FOREIGN = 0xdeadbeefdeadbeefn;
const FOREIGN_HEX = 'DEADBEEFDEADBEEF';
const FOREIGN_VERSION = 99_999_990;

/**
 * The case 1 against the real lab: a crafted snapshot of another filesystem (metaid
 * DEADBEEF…) at version 99999990 sits in the store. Before the cluster identity, `run promote
 * --dry-run` chose it over the metalogger's real filesystem, and prune refused every run.
 */
async function foreignSnapshot(store: string, at: Date): Promise<{ id: string }> {
  const stage = await makeStageDir(store, 'crafted');
  const v = FOREIGN_VERSION;
  await fs.writeFile(path.join(stage, 'metadata.mfs.back'), imageBytes(v, FOREIGN));
  await fs.writeFile(path.join(stage, 'changelog.0.mfs'), `${v}: 1|A(1)\n${v + 1}: 1|B(1)\n${v + 2}: 1|C(1)\n`);
  for (const f of await fs.readdir(stage)) await sealFile(path.join(stage, f));
  const file = async (name: string) => ({
    name,
    size: (await fs.stat(path.join(stage, name))).size,
    sha256: await sha256File(path.join(stage, name)),
    sourcePath: `/x/${name}`,
    sourceSize: 0,
    sourceMtimeMs: 0,
  });
  const manifest: Manifest = {
    formatVersion: 1,
    id: snapshotId(at, v + 3),
    source: { name: 'attacker', host: 'evil', role: 'master', dataPath: '/x' },
    image: { name: 'metadata.mfs.back', version: v, metaid: FOREIGN_HEX, empty: false },
    changelogs: { first: v, last: v + 2 },
    reachesVersion: v + 3,
    files: [
      { ...(await file('metadata.mfs.back')), role: 'image' },
      { ...(await file('changelog.0.mfs')), role: 'changelog', firstVersion: v, lastVersion: v + 2 },
    ],
    mfsJobsVersion: 'crafted',
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
  };
  await finaliseSnapshot(store, stage, manifest, {});
  return { id: manifest.id };
}

describe('one cluster identity for backup, import, prune and promote (real master, metalogger, sshd)', () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  let metaid: string;
  let archive: string;
  let foreignId: string;

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    await lab.makeChanges('a', 10);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('b', 10);
    metaid = (await readImageHeader(path.join(lab.master.dataPath, 'metadata.mfs.back'))).metaid;
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    config = await lab.writeConfig({
      standby: standbySection,
      jobs: { promote: { fenceTimeoutSeconds: 1 }, prune: { minAgeMinutes: 0 } },
    });
    // The attacker's archive: made in a store of its own and exported with the real CLI.
    const elsewhere = path.join(lab.dir, 'elsewhere');
    const elsewhereConfig = path.join(lab.dir, 'elsewhere.yaml');
    await fs.writeFile(
      elsewhereConfig,
      YAML.stringify({
        stateDir: path.join(lab.dir, 'elsewhere-state'),
        daemon: { socket: false },
        snapshotStore: { path: elsewhere },
      }),
      { mode: 0o600 },
    );
    foreignId = (await foreignSnapshot(elsewhere, new Date(Date.now() - 60_000))).id;
    archive = path.join(lab.dir, 'foreign.tar.gz');
    const exported = await runCli(['snapshot', 'export', foreignId, archive, '--config', elsewhereConfig]);
    expect(exported.stderr).toBe('');
  }, 120_000);

  afterAll(async () => {
    const pid = standby ? await runningMasterPid(standby.dataPath) : undefined;
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    await lab?.stop();
  });

  test('the first backup of the live master records its metaid in the state dir', async () => {
    expect(metaid).toMatch(/^[0-9A-F]{16}$/);
    const res = await runCli(['run', 'backup', '--config', config]);
    expect(res.stdout).toMatch(/^MFS BACKUP OK/);
    const recorded = JSON.parse(await fs.readFile(identityFile(path.join(lab.dir, 'state')), 'utf8'));
    expect(recorded).toMatchObject({ metaid, learntFrom: 'master' });
  }, 120_000);

  test("a backup of a live source of another filesystem than the cluster's is CRITICAL naming both ids (a recreated filesystem, or a config pointing elsewhere)", async () => {
    const doc = YAML.parse(await fs.readFile(config, 'utf8'));
    const other = path.join(lab.dir, 'other-cluster.yaml');
    await fs.writeFile(other, YAML.stringify({ ...doc, cluster: { metaid: 'abc' } }), { mode: 0o600 });
    const res = await runCli(['run', 'backup', '--config', other]);
    expect(res.stdout).toMatch(
      new RegExp(
        `^MFS BACKUP CRITICAL - master: snapshot \\S+ is of filesystem metaid ${metaid}, the cluster's is 0000000000000ABC \\(cluster\\.metaid in ${other.replace(/[.]/g, '\\.')}\\): promote and prune will not use it`,
      ),
    );
    expect(res.code).toBe(2);
  }, 120_000);

  attackTest(
    'cluster identity',
    'foreign metaid import refused by the identity',
    'import refuses the other filesystem naming both metaids and the identity file; --other-filesystem takes it',
    async () => {
      const refused = await runCli(['snapshot', 'import', archive, '--config', config]);
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toContain(
        `snapshot ${foreignId} is of filesystem metaid ${FOREIGN_HEX}, the cluster's is ${metaid} (${identityFile(path.join(lab.dir, 'state'))} (learnt from master`,
      );
      expect((await listSnapshots(path.join(lab.dir, 'snapshots'), {})).snapshots.map((s) => s.id)).not.toContain(
        foreignId,
      );
      const moved = await runCli(['snapshot', 'import', archive, '--other-filesystem', '--config', config]);
      expect(moved.stdout).toContain(`imported snapshot ${foreignId}`);
    },
  );

  attackTest(
    'cluster identity',
    'foreign snapshot in the store (drill, restore)',
    'a snapshot of another filesystem imported into the store is refused by drill and restore, naming both ids',
    async () => {
      const drill = await runCli(['run', 'drill', '--snapshot', foreignId, '--config', config]);
      expect(drill.stdout.split('\n')[0]).toContain(
        `snapshot ${foreignId}: image metadata.mfs.back is of filesystem metaid ${FOREIGN_HEX}, the cluster's is ${metaid}`,
      );
      expect(drill.stdout.split('\n')[0]).toMatch(
        /^MFS DRILL CRITICAL - .*: not used \(--other-filesystem to use it anyway\)/,
      );
      expect(drill.code).toBe(2);
      const restore = await runCli([
        'run',
        'restore',
        '--snapshot',
        foreignId,
        '--data-path',
        path.join(lab.dir, 'restored'),
        '--dry-run',
        '--config',
        config,
      ]);
      expect(restore.stdout.split('\n')[0]).toMatch(
        new RegExp(
          `^MFS RESTORE CRITICAL - snapshot ${foreignId}: image metadata\\.mfs\\.back is of filesystem metaid ${FOREIGN_HEX}, the cluster's is ${metaid} `,
        ),
      );
      expect(restore.code).toBe(2);
    },
    120_000,
  );

  attackTest(
    'cluster identity',
    'foreign snapshots in the store (prune)',
    "prune leaves the foreign snapshot alone with a warning naming it, and still prunes the cluster's chain",
    async () => {
      const res = await runCli(['run', 'prune', '--dry-run', '--config', config]);
      expect(res.stdout).toMatch(/^MFS PRUNE WARNING - /);
      expect(res.stdout).toContain(
        `snapshot ${foreignId} is of filesystem metaid ${FOREIGN_HEX}, the cluster's is ${metaid}`,
      );
      expect(res.stdout).toContain('left alone, not pruned');
      expect(res.stdout).not.toContain('refusing to prune');
      expect(res.code).toBe(1);
      // Without an identity, several filesystems in one store: a refusal that says how to settle it.
      const doc = YAML.parse(await fs.readFile(config, 'utf8'));
      const bare = path.join(lab.dir, 'bare.yaml');
      await fs.writeFile(bare, YAML.stringify({ ...doc, stateDir: path.join(lab.dir, 'bare-state') }), { mode: 0o600 });
      const unsure = await runCli(['run', 'prune', '--dry-run', '--config', bare]);
      expect(unsure.stdout).toContain(`metaid ${FOREIGN_HEX}: ${foreignId}`);
      expect(unsure.stdout).toContain('set cluster.metaid in the config');
    },
  );

  attackTest(
    'cluster identity',
    'foreign snapshot at version 99999990 (promote)',
    'promote never restores the foreign snapshot, however far it reaches; it names both ids and the file',
    async () => {
      // The master still answers: --force past the fence, --dry-run to change nothing.
      const res = await runCli(['run', 'promote', '--dry-run', '--force', '--config', config]);
      const version = (await lab.master.info()).metadataVersion;
      expect(res.stdout).toMatch(/^MFS PROMOTE OK - dry run: would restore metadata version \d+ from /);
      expect(res.stdout).not.toMatch(/would restore metadata version 99999/);
      expect(Number(/would restore metadata version (\d+)/.exec(res.stdout)![1])).toBeLessThanOrEqual(version + 1);
      expect(res.stdout).toContain(
        `snapshot:${foreignId}:metadata.mfs.back (${path.join(lab.dir, 'snapshots', 'snapshots', foreignId, 'metadata.mfs.back')}, version ${FOREIGN_VERSION}) is of filesystem metaid ${FOREIGN_HEX}, the cluster's is ${metaid}`,
      );
      expect(await fs.readdir(standby.dataPath)).toEqual([]);
    },
    120_000,
  );

  attackTest(
    'cluster identity',
    'foreign snapshot, no identity known (promote)',
    'without any identity the live metaloggers decide: an imported snapshot never outvotes them',
    async () => {
      const doc = YAML.parse(await fs.readFile(config, 'utf8'));
      const bare = path.join(lab.dir, 'bare-promote.yaml');
      await fs.writeFile(bare, YAML.stringify({ ...doc, stateDir: path.join(lab.dir, 'bare-promote-state') }), {
        mode: 0o600,
      });
      const res = await runCli(['run', 'promote', '--dry-run', '--force', '--config', bare]);
      expect(res.stdout).toMatch(/^MFS PROMOTE OK - dry run: would restore metadata version \d+ from /);
      expect(res.stdout).not.toMatch(/would restore metadata version 99999/);
      expect(res.stdout).toContain(
        `is of filesystem metaid ${FOREIGN_HEX}, the cluster's is ${metaid} (held by the live sources`,
      );
      // And a configured cluster.metaid of another filesystem: nothing of it anywhere, so nothing restored.
      const pinned = path.join(lab.dir, 'pinned.yaml');
      await fs.writeFile(pinned, YAML.stringify({ ...doc, cluster: { metaid: '0123456789ABCDEF' } }), { mode: 0o600 });
      const none = await runCli(['run', 'promote', '--dry-run', '--force', '--config', pinned]);
      expect(none.stdout).toMatch(
        new RegExp(
          `^MFS PROMOTE CRITICAL - no usable metadata image of metaid 0123456789ABCDEF \\(cluster\\.metaid in ${pinned.replace(/[.]/g, '\\.')}\\) on any source`,
        ),
      );
      expect(none.code).toBe(2);
    },
    120_000,
  );
});
