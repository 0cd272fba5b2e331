import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { sleep } from '../lab/proc.js';

/**
 * Incremental restore points (issue #26), against a real master, metalogger and mount: with the archive
 * configured and caught up, hourly backups after the first keep no new image — each run records that its
 * restore point is the stored image rolled forward through the archive — until the roll-forward passes
 * `imageChanges`; `restore --to-time` to a moment between the runs gives the master's metadata at that
 * moment (`mfsmetadump`, line for line); an archive that lags behind the new image, or has a hole, makes
 * backup store a full image again.
 */
interface SourceReport {
  result: string;
  snapshot?: string;
  archiveReaches?: number;
  rollForward?: number;
  notes: string[];
}

async function metadump(image: string): Promise<string[]> {
  const res = await execCapture('mfsmetadump', [image], { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`mfsmetadump ${image}: exit ${res.code}: ${res.stderr.trim().slice(0, 300)}`);
  // Sessions' traffic counters are not in the changelog; a section's lines in any order are the same metadata.
  return res.stdout
    .split('\n')
    .map((l) => l.replace(/\b([cl]):\[[^\]]*\]/g, '$1:[-]'))
    .sort();
}

describe('incremental restore points: an image kept once, the archive rolls it forward', () => {
  let lab: Lab;
  let config: string;
  let store: string;
  const oracles: { at: number; image: string }[] = [];

  const cli = async (args: string[], code = 0) => {
    const res = await runCli([...args, '--config', config, '--json'], { timeoutMs: 120_000 });
    expect(res.code === code ? 'ok' : res.stdout + res.stderr).toBe('ok');
    return JSON.parse(res.stdout) as { summary: string; lines: string[]; details: Record<string, unknown> };
  };
  const backup = async (): Promise<SourceReport> => {
    const report = await cli(['run', 'backup']);
    return (report.details.sources as SourceReport[])[0]!;
  };
  const snapshots = async () => (await fs.readdir(path.join(store, 'snapshots'))).filter((n) => !n.startsWith('.'));

  /**
   * The master stopped cleanly at a whole second T (its metadata.mfs is its metadata at T, kept as the oracle)
   * and started again: a new image on disk, as the master's hourly dump gives one, and every later change
   * stamped after T.
   */
  async function imageAndMoment(name: string): Promise<void> {
    await lab.master.stop();
    const image = path.join(lab.dir, `oracle-${name}.mfs`);
    await fs.copyFile(path.join(lab.master.dataPath, 'metadata.mfs'), image);
    const at = Math.ceil(Date.now() / 1000);
    await sleep(at * 1000 + 1_100 - Date.now());
    await lab.master.start();
    oracles.push({ at, image });
  }

  async function restoreAt(name: string, at: number): Promise<string[]> {
    const restored = await LabMaster.create(path.join(lab.dir, name), { bootstrap: false, lab: lab.generation });
    const when = new Date(at * 1000).toISOString();
    const res = await runCli(
      ['restore', '--latest', '--to-time', when, '--data-path', restored.dataPath, '--config', config],
      { timeoutMs: 120_000 },
    );
    expect(res.code === 0 ? 'ok' : res.stdout + res.stderr).toBe('ok');
    const roll = await execCapture(lab.generation.mfsmaster, ['-c', restored.configFile, '-a', 'restore'], {
      timeoutMs: 60_000,
    });
    expect(roll.code === 0 ? 'ok' : roll.stderr.slice(-500)).toBe('ok');
    return metadump(path.join(restored.dataPath, 'metadata.mfs'));
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true });
    store = path.join(lab.dir, 'snapshots');
    config = await lab.writeConfig({
      snapshotStore: { path: store, compression: 'zstd', imageChanges: 300 },
      jobs: { archive: { segmentSeconds: 1 } },
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  });

  test('only the first image and one past imageChanges are stored; the rest are covered', async () => {
    await lab.makeChanges('a', 10);
    await lab.saveImage();
    const first = await backup();
    expect(first.result).toBe('snapshot');
    await cli(['run', 'archive']);

    for (const name of ['b', 'c']) {
      await lab.makeChanges(name, 10);
      await imageAndMoment(name);
      await lab.makeChanges(`${name}-after`, 3);
      await cli(['run', 'archive']);
      const run = await backup();
      expect(run).toMatchObject({ result: 'covered', snapshot: first.snapshot });
      expect(run.rollForward).toBeLessThan(300);
    }
    expect(await snapshots()).toEqual([first.snapshot]);
    const list = await runCli(['snapshot', 'list', '--config', config]);
    expect(list.stdout).toMatch(/newest recoverable moment: version \d+ .*rolled forward through the archive/);

    // Past imageChanges: a full image again.
    await lab.makeChanges('many', 320);
    await lab.saveImage();
    await cli(['run', 'archive']);
    const past = await backup();
    expect(past.result).toBe('snapshot');
    expect(past.notes.join('\n')).toMatch(/a new image: \d+ changes since .*imageChanges 300/);
  }, 300_000);

  test('restore --to-time between the covered runs gives the master at that moment', async () => {
    expect(oracles).toHaveLength(2);
    for (const [i, o] of oracles.entries()) {
      const mine = await restoreAt(`restored-${i}`, o.at);
      const theirs = await metadump(o.image);
      expect(theirs.some((l) => l.includes(i ? 'c' : 'b'))).toBe(true);
      expect(mine).toEqual(theirs);
    }
  }, 240_000);

  test("a manifest naming another image version than its image's header: refused, naming the snapshot", async () => {
    // The segments are chosen from the manifest's version, beside the image: the header, once placed, must agree
    // (else a hole or an overlap). An unsigned store (no key here) lets anyone who writes it edit a manifest.
    const [first] = (await snapshots()).sort();
    const file = path.join(store, 'snapshots', first!, 'manifest.json');
    const text = await fs.readFile(file, 'utf8');
    const m = JSON.parse(text) as { image: { version: number } };
    const told = m.image.version - 1;
    await fs.writeFile(file, JSON.stringify({ ...m, image: { ...m.image, version: told } }));
    try {
      const restored = await LabMaster.create(path.join(lab.dir, 'restored-tampered'), {
        bootstrap: false,
        lab: lab.generation,
      });
      const when = new Date(oracles[0]!.at * 1000).toISOString();
      const res = await runCli(
        ['restore', '--latest', '--to-time', when, '--data-path', restored.dataPath, '--config', config],
        { timeoutMs: 120_000 },
      );
      expect(res.code).not.toBe(0);
      expect(res.stdout + res.stderr).toContain(
        `snapshot ${first}: its manifest says the image restores from version ${told}, the image's own header ` +
          `from ${m.image.version}`,
      );
      expect(await fs.readdir(restored.dataPath)).toEqual([]);
    } finally {
      await fs.writeFile(file, text);
    }
  }, 120_000);

  test('an archive behind the new image, or with a hole, makes backup store a full image', async () => {
    // Lagging: changes and a new image the archive has not read yet.
    await lab.makeChanges('lag', 5);
    await lab.saveImage();
    const lagging = await backup();
    expect(lagging.result).toBe('snapshot');
    expect(lagging.notes.join('\n')).toMatch(/a new image: the archive reaches \d+, behind the source's image/);

    // Caught up: covered again.
    await cli(['run', 'archive']);
    await lab.makeChanges('d', 5);
    await imageAndMoment('d');
    await cli(['run', 'archive']);
    expect((await backup()).result).toBe('covered');

    // A hole: the segment the newest image's roll-forward starts in is lost (not the archive's last one, where
    // the archiver would resume and read it again).
    await lab.makeChanges('e', 5);
    await cli(['run', 'archive']);
    const dir = path.join(store, 'archive');
    const segs = (await fs.readdir(dir)).filter((n) => !n.startsWith('.')).sort();
    const newest = Number(/-v(\d+)$/.exec(lagging.snapshot!)?.[1]);
    const holding = segs.filter((s) => Number(/-v(\d+)$/.exec(s)?.[1]) <= newest).pop()!;
    expect(holding).not.toBe(segs[segs.length - 1]);
    await fs.rm(path.join(dir, holding), { recursive: true });
    await lab.saveImage();
    // The archive names its hole (CRITICAL) and goes on after it.
    expect((await cli(['run', 'archive'], 2)).summary).toMatch(/gap: versions \d+\.\.\d+ are not in the archive/);
    const holed = await backup();
    expect(holed.result).toBe('snapshot');
    expect(holed.notes.join('\n')).toMatch(/a new image: the archive (has a gap|starts at \d+, after)/);
  }, 300_000);
});
