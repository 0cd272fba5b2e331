import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CUT_CHANGELOG, cutChain, CutRefused } from '../../../lib/restore/cut-files.js';

/** Changelog text for versions from..to, one second apart, `op(v)` choosing the operation. */
function text(from: number, to: number, op: (v: number) => string = () => 'CREATE(1,f,1,438,18,0,0,0):2'): string {
  let out = '';
  for (let v = from; v <= to; v++) out += `${v}: ${1_000 + v}|${op(v)}\n`;
  return out;
}

describe('cutChain on files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-cut-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const files = async (contents: Record<string, string>) => {
    for (const [name, body] of Object.entries(contents)) await fs.writeFile(path.join(dir, name), body, 'latin1');
    return Object.keys(contents);
  };

  test('overlapping files are merged by version; the cut file holds exactly the whole lines image..N-1; the placed files go', async () => {
    const changelogs = await files({
      'changelog_ml.1.mfs': text(1, 40),
      'changelog_ml_back.0.mfs': text(35, 45),
      'changelog_ml.0.mfs': text(41, 60, (v) =>
        v === 52 ? 'UNLINK(1,f):5' : v === 55 ? 'SETTRASHTIME(5,0,3600,0):1,0,0' : 'ATTR(5,420,0,0,1,1,0,0)',
      ),
    });
    const r = await cutChain({
      dir,
      changelogs,
      imageName: 'metadata_ml.mfs.back',
      imageVersion: 20,
      target: { kind: 'version', version: 50 },
      where: 'snapshot S',
    });
    expect(r.changelog).toBe(CUT_CHANGELOG);
    expect(await fs.readdir(dir)).toEqual([CUT_CHANGELOG]);
    const cut = await fs.readFile(path.join(dir, CUT_CHANGELOG), 'latin1');
    expect(cut).toBe(text(20, 40) + text(41, 49, () => 'ATTR(5,420,0,0,1,1,0,0)'));
    expect(r.outcome).toMatchObject({
      targetVersion: 50,
      applied: 30,
      imageTimestamp: 1_019,
      leftOut: { count: 11, first: { version: 50 }, last: { version: 60 }, deletions: 1, deletionsByOp: { UNLINK: 1 } },
      smallestTrashTime: { value: 3_600, version: 55 },
    });
    expect(r.reached).toBe(61);
  });

  test('a refusal leaves the directory as it was: a hole before the target, a damaged line before it', async () => {
    const changelogs = await files({ 'changelog.0.mfs': text(10, 20) + text(23, 30) });
    const before = await fs.readdir(dir);
    const refused = cutChain({
      dir,
      changelogs,
      imageName: 'metadata.mfs.back',
      imageVersion: 10,
      target: { kind: 'version', version: 25 },
      where: 'snapshot S',
    });
    await expect(refused).rejects.toThrow(CutRefused);
    await expect(refused).rejects.toThrow(
      "--to-version 25 lies beyond a hole in snapshot S's changelogs: versions 21..22 are missing",
    );
    expect(await fs.readdir(dir)).toEqual(before);
    // Before the hole the same chain is fine.
    await fs.writeFile(path.join(dir, 'changelog.0.mfs'), text(10, 14) + 'garbage\n' + text(15, 20), 'latin1');
    await expect(
      cutChain({
        dir,
        changelogs,
        imageName: 'metadata.mfs.back',
        imageVersion: 10,
        target: { kind: 'version', version: 18 },
        where: 'snapshot S',
      }),
    ).rejects.toThrow(
      '--to-version 18: snapshot S: changelog.0.mfs:6: damaged changelog line after version 14, before the target version 18: nothing written',
    );
    expect(await fs.readdir(dir)).toEqual(before);
    const ok = await cutChain({
      dir,
      changelogs,
      imageName: 'metadata.mfs.back',
      imageVersion: 10,
      target: { kind: 'version', version: 15 },
      where: 'snapshot S',
    });
    expect(ok.outcome).toMatchObject({ targetVersion: 15, applied: 5 });
  });

  test('a cut last line (a writer that died) is never copied; the image alone needs no changelog', async () => {
    const changelogs = await files({ 'changelog.0.mfs': text(10, 20) + '21: 1021|CREATE(1,hal' });
    const r = await cutChain({
      dir,
      changelogs,
      imageName: 'metadata.mfs.back',
      imageVersion: 10,
      target: { kind: 'time', time: 1_015, iso: 'T' },
      where: 'm',
    });
    expect(await fs.readFile(path.join(dir, CUT_CHANGELOG), 'latin1')).toBe(text(10, 15));
    expect(r.outcome).toMatchObject({ targetVersion: 16, passedTarget: true, leftOut: { count: 5 } });
    await fs.rm(path.join(dir, CUT_CHANGELOG));
    const again = await files({ 'changelog.0.mfs': text(5, 20) });
    const image = await cutChain({
      dir,
      changelogs: again,
      imageName: 'metadata.mfs.back',
      imageVersion: 10,
      target: { kind: 'version', version: 10 },
      where: 'm',
    });
    expect(image.changelog).toBeUndefined();
    expect(await fs.readdir(dir)).toEqual([]);
  });
});
