import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { listSnapshots } from '../../lib/store/manifest.js';
import { runCli } from '../helpers/cli.js';
import { generatedImages, writeGeneratedChangelog } from '../helpers/generated.js';
import { seededRandom } from '../helpers/random.js';
import { writeSnapshot } from '../helpers/snapshot-fixture.js';
import { LabMaster } from '../lab/moosefs.js';

/** Integers in [lo, hi] from the shared seeded generator, so a failing sample can be replayed. */
function prng(seed: number): (lo: number, hi: number) => number {
  const random = seededRandom(seed);
  return (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
}

const HOUR = 3_600_000;
const NEWEST = 240_001; // the history holds lines 1..240000: a restore reaches 240001
const FILES = 300;

interface PruneReport {
  status: string;
  summary: string;
  details: {
    targets: {
      target: string;
      restorePoints: { name: string; version: number; retained: boolean; reaches: number }[];
      deleted: { name: string; bytes: number }[];
    }[];
  };
}

/**
 * Generated files at scale: 300 changelog_ml.N.mfs files with 240,000 versions, _back copies and
 * real images at random versions; random retention settings; then `mfsmaster -a` from every
 * retained image with what prune left. A sample of the property the unit test checks by chain logic.
 */
describe('prune on generated DATA_PATHs and stores, checked by mfsmaster -a', () => {
  let dir: string;
  let pool: string;
  let bounds: { name: string; first: number; last: number }[];
  let images: Map<number, string>;
  let restores = 0;

  async function restoreFrom(image: string, changelogs: string[]): Promise<number> {
    const scratch = await LabMaster.create(path.join(dir, `restore-${++restores}`), { bootstrap: false });
    try {
      await fs.copyFile(image, path.join(scratch.dataPath, 'metadata_ml.mfs.back'));
      for (const [i, c] of changelogs.entries())
        await fs.copyFile(c, path.join(scratch.dataPath, `changelog_ml.${i + 1}.mfs`));
      return (await scratch.start({ autoRestore: true })).metadataVersion;
    } finally {
      await scratch.stop();
      await fs.rm(scratch.dir, { recursive: true, force: true });
    }
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-prune-gen-'));
    pool = path.join(dir, 'pool');
    await fs.mkdir(pool);
    // Hourly rotated files of uneven size, the newest (.0) last; N counts down from the newest, as MooseFS names them.
    const rnd = prng(7);
    const cuts = new Set<number>();
    while (cuts.size < FILES - 1) cuts.add(rnd(2, NEWEST - 2));
    const edges = [1, ...[...cuts].sort((a, b) => a - b), NEWEST];
    bounds = edges
      .slice(0, -1)
      .map((first, i) => ({ name: `changelog_ml.${FILES - 1 - i}.mfs`, first, last: edges[i + 1]! - 1 }));
    for (const b of bounds) await writeGeneratedChangelog(path.join(pool, b.name), b.first, b.last);
    images = await generatedImages(dir, [20_000, 90_000, 150_000, 200_000, 230_000]);
  }, 120_000);

  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  /** A metalogger-like DATA_PATH: hardlinks to the pool, mtimes one hour apart, some images, _back copies. */
  async function makeDataPath(name: string, rnd: (lo: number, hi: number) => number): Promise<string> {
    const data = path.join(dir, name);
    await fs.mkdir(data);
    const now = Date.now();
    for (const [i, b] of bounds.entries()) {
      await fs.link(path.join(pool, b.name), path.join(data, b.name));
      const t = new Date(now - (bounds.length - i) * HOUR);
      await fs.utimes(path.join(data, b.name), t, t);
    }
    // Copies the metalogger fetched at connect: duplicates of two neighbouring rotated files.
    const at = rnd(1, bounds.length - 3);
    for (const [k, b] of [bounds[at]!, bounds[at + 1]!].entries())
      await fs.copyFile(path.join(pool, b.name), path.join(data, `changelog_ml_back.${1 - k}.mfs`));
    const chosen = [...images.keys()].filter(() => rnd(0, 1) === 1);
    if (chosen.length === 0) chosen.push(230_000);
    for (const [i, v] of chosen.sort((a, b) => b - a).entries()) {
      const file = path.join(data, i === 0 ? 'metadata_ml.mfs.back' : `metadata_ml.mfs.back.${i}`);
      await fs.copyFile(images.get(v)!, file);
      const t = new Date(now - ((NEWEST - v) / NEWEST) * bounds.length * HOUR);
      await fs.utimes(file, t, t);
    }
    return data;
  }

  async function prune(name: string, data: string, rules: Record<string, unknown>): Promise<PruneReport> {
    const config = path.join(dir, `${name}.yaml`);
    const doc = {
      stateDir: path.join(dir, 'state'),
      metaloggers: [{ name, host: '127.0.0.1', dataPath: data, local: true }],
      jobs: { prune: { snapshotStore: false, dataPaths: [name], minAgeMinutes: 0, ...rules } },
    };
    await fs.writeFile(config, YAML.stringify(doc));
    const res = await runCli(['run', 'prune', '--config', config, '--json']);
    // WARNING (1) is fine here: a random maxTotalSizeMB may be smaller than what the newest restore point needs.
    if (res.code !== 0 && res.code !== 1)
      throw new Error(`prune exited ${res.code}: ${res.stdout.slice(0, 2000)}${res.stderr.slice(-2000)}`);
    return JSON.parse(res.stdout) as PruneReport;
  }

  test.each([1, 2, 3, 4])(
    'sample %i: random images and retention; every retained image still restores to the newest version',
    async (seed) => {
      const rnd = prng(1000 + seed);
      const name = `sample${seed}`;
      const data = await makeDataPath(name, rnd);
      const rules = {
        keepRotated: rnd(0, 3),
        keepRestorePoints: rnd(1, 2),
        ...(rnd(0, 1) ? { maxAgeHours: rnd(10, bounds.length) } : {}),
        ...(rnd(0, 1) ? { maxTotalSizeMB: rnd(2, 12) } : {}),
      };
      const before = await fs.readdir(data);
      const report = await prune(name, data, rules);
      const target = report.details.targets[0]!;
      const left = await fs.readdir(data);
      expect(left.length + target.deleted.length).toBe(before.length);
      expect(target.deleted.length).toBeGreaterThan(0);
      const changelogs = left.filter((n) => n.startsWith('changelog')).map((n) => path.join(data, n));
      for (const rp of target.restorePoints.filter((r) => r.retained)) {
        expect(rp.reaches).toBe(NEWEST);
        expect(await restoreFrom(path.join(data, rp.name), changelogs)).toBe(NEWEST);
      }
    },
  );

  test('a store of 40 snapshots: old ones go whole, every retained one restores by itself and rolls forward to the newest', async () => {
    const store = path.join(dir, 'store');
    const versions = [...images.keys()];
    const now = Date.now();
    // Snapshot k: one of the images and the rotated files from its version to the end of "its hour".
    for (let k = 0; k < 40; k++) {
      const v = versions[Math.floor((k * versions.length) / 40)]!;
      const end = k === 39 ? NEWEST - 1 : Math.min(NEWEST - 1, v + 15_000 + k * 500);
      const files = bounds.filter((b) => b.last >= v && b.first <= end).map((b) => path.join(pool, b.name));
      await writeSnapshot({ store, image: images.get(v)!, changelogs: files, at: new Date(now - (40 - k) * 6 * HOUR) });
    }
    const config = path.join(dir, 'store.yaml');
    await fs.writeFile(
      config,
      YAML.stringify({
        stateDir: path.join(dir, 'state'),
        snapshotStore: { path: store },
        jobs: { prune: { maxAgeHours: 60, minAgeMinutes: 0 } },
      }),
    );
    const res = await runCli(['run', 'prune', '--config', config, '--json']);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout) as PruneReport;
    const { snapshots } = await listSnapshots(store, {});
    const deletedSnapshots = new Set(report.details.targets[0]!.deleted.map((d) => d.name.split('/')[0]));
    expect(deletedSnapshots.size).toBeGreaterThan(0);
    expect(snapshots.length).toBe(40 - deletedSnapshots.size);
    const poolFiles = snapshots.flatMap((s) =>
      s.manifest.files.filter((f) => f.role === 'changelog').map((f) => path.join(s.dir, f.name)),
    );
    const retained = report.details.targets[0]!.restorePoints.filter((r) => r.retained);
    // Each retained snapshot by itself (the oldest and the newest: the rest are the same shape), then the oldest rolled forward with the store's changelogs.
    const byVersion = [...retained].sort((a, b) => a.version - b.version);
    for (const rp of [byVersion[0]!, byVersion[byVersion.length - 1]!]) {
      const s = snapshots.find((x) => rp.name.startsWith(`${x.id}/`))!;
      expect(
        await restoreFrom(
          path.join(s.dir, s.manifest.image.name),
          s.manifest.files.filter((f) => f.role === 'changelog').map((f) => path.join(s.dir, f.name)),
        ),
      ).toBe(s.manifest.reachesVersion);
    }
    const oldest = retained.reduce((a, b) => (a.version <= b.version ? a : b));
    const s = snapshots.find((x) => oldest.name.startsWith(`${x.id}/`))!;
    expect(await restoreFrom(path.join(s.dir, s.manifest.image.name), poolFiles)).toBe(NEWEST);
  });
});
