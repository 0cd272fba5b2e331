import { changelogUse, chooseImage, linesLostBeyond, planRestore } from '../../../lib/moosefs/restore-model.js';
import { changelog, changelogLines, image } from '../../helpers/changelog-fixtures.js';

describe('which image mfsmaster -a loads', () => {
  test('the valid one with the highest version; garbage is passed over and reported', () => {
    const c = chooseImage([
      image('metadata_ml.mfs.back', 0, { error: 'not a MooseFS metadata image' }),
      image('metadata_ml.mfs.back.1', 100),
      image('metadata_ml.mfs.back.2', 40),
    ]);
    expect(c.image?.name).toBe('metadata_ml.mfs.back.1');
    expect(c.invalid.map((i) => i.name)).toEqual(['metadata_ml.mfs.back']);
    expect(c.metaidConflict).toBeUndefined();
  });

  test('a half-downloaded metadata_ml.tmp is normal, not damage', () => {
    const c = chooseImage([image('metadata_ml.tmp', 0, { error: 'no EOF marker' }), image('metadata_ml.mfs.back', 24)]);
    expect(c.invalid).toEqual([]);
  });

  test('MFSM NEW (a brand-new filesystem) is rolled forward from version 1', () => {
    const plan = planRestore([image('metadata_ml.tmp', 0, { empty: true })], []);
    expect(plan.startVersion).toBe(1);
  });

  test('images of two filesystems: mfsmaster -a refuses ("different id number")', () => {
    const c = chooseImage([
      image('metadata_ml.mfs.back', 100, { metaid: 'AAAA' }),
      image('metadata_ml.mfs.back.1', 50, { metaid: 'BBBB' }),
    ]);
    expect(c.metaidConflict).toEqual(['metadata_ml.mfs.back (AAAA)', 'metadata_ml.mfs.back.1 (BBBB)']);
  });

  test('no valid image at all: no plan to roll forward', () => {
    const plan = planRestore([image('metadata_ml.mfs.back', 0, { error: 'garbage' })], []);
    expect(plan.roll).toBeUndefined();
    expect(plan.choice.image).toBeUndefined();
  });
});

describe('which changelog lines mfsmaster -a uses', () => {
  test('a sound file: all of it', async () => {
    expect(changelogUse(await changelog('c0', changelogLines(10, 20))).pieces).toEqual([
      { file: 'c0', first: 10, last: 20 },
    ]);
  });

  test('an empty file: nothing, and no complaint', async () => {
    expect(changelogUse(await changelog('c0', ''))).toEqual({ name: 'c0', pieces: [] });
  });

  test('a cut last line: the whole file is ignored', async () => {
    const use = changelogUse(await changelog('c0', changelogLines(10, 20) + '21: 17955'));
    expect(use.pieces).toEqual([]);
    expect(use.skipped).toBe('last line 12 is cut off (no newline at end of file)');
  });

  test('an empty last line: the whole file is ignored too', async () => {
    const use = changelogUse(await changelog('c0', changelogLines(10, 20) + '\n'));
    expect(use.pieces).toEqual([]);
    expect(use.skipped).toMatch(/^last line 12 is not a changelog line/);
  });

  test('a garbage line: the file ends just before it', async () => {
    const use = changelogUse(await changelog('c0', changelogLines(10, 14) + 'garbage\n' + changelogLines(16, 20)));
    expect(use.pieces).toEqual([{ file: 'c0', first: 10, last: 14 }]);
    expect(use.cut).toMatchObject({ line: 6, afterVersion: 14 });
  });

  test('a repeated line: the file ends at the first copy', async () => {
    const use = changelogUse(await changelog('c0', changelogLines(10, 14) + changelogLines(14, 20)));
    expect(use.pieces).toEqual([{ file: 'c0', first: 10, last: 14 }]);
    expect(use.cut?.reason).toMatch(/repeated/);
  });

  test('a line deleted inside a file: two pieces, the hole shows in the plan', async () => {
    const c0 = await changelog('changelog_ml.0.mfs', changelogLines(24, 49) + changelogLines(51, 80));
    expect(changelogUse(c0).pieces).toEqual([
      { file: 'changelog_ml.0.mfs', first: 24, last: 49 },
      { file: 'changelog_ml.0.mfs', first: 51, last: 80 },
    ]);
    const plan = planRestore([image('metadata_ml.mfs.back', 24)], [c0]);
    expect(plan.roll).toMatchObject({ reached: 50, newest: 81, holes: [{ from: 50, to: 50 }] });
  });
});

describe('a restore plan over several files', () => {
  test('files overlap and fill each other; lines older than the image cost nothing', async () => {
    const plan = planRestore(
      [image('metadata_ml.mfs.back', 24)],
      [
        await changelog('changelog_ml_back.0.mfs', changelogLines(1, 40)),
        await changelog('changelog_ml.0.mfs', changelogLines(24, 44) + changelogLines(66, 70)),
        await changelog('changelog_ml_back.1.mfs', changelogLines(41, 65)),
      ],
    );
    expect(plan.roll).toMatchObject({ reached: 71, newest: 71, holes: [] });
  });

  test('a metalogger that never got an image: MFSM NEW plus every change since version 1', async () => {
    const plan = planRestore(
      [image('metadata_ml.tmp', 0, { empty: true })],
      [await changelog('changelog_ml_back.0.mfs', changelogLines(1, 23))],
    );
    expect(plan.roll).toMatchObject({ reached: 24, holes: [] });
  });

  test('changelogs starting above the image leave a hole at its start', async () => {
    const plan = planRestore(
      [image('metadata_ml.mfs.back', 100)],
      [await changelog('changelog_ml.0.mfs', changelogLines(120, 130))],
    );
    expect(plan.roll).toMatchObject({ reached: 100, holes: [{ from: 100, to: 119 }] });
  });

  test('a damaged file costs the lines it holds beyond where the restore stops; an old one costs nothing', async () => {
    const old = await changelog('changelog_ml_back.0.mfs', changelogLines(1, 23) + '24: 1');
    const current = await changelog(
      'changelog_ml.0.mfs',
      changelogLines(24, 30) + 'garbage\n' + changelogLines(32, 60),
    );
    const plan = planRestore([image('metadata_ml.mfs.back', 24)], [old, current]);
    expect(plan.roll?.reached).toBe(31);
    expect(linesLostBeyond(plan, old.scan)).toBeUndefined();
    expect(linesLostBeyond(plan, current.scan)).toBe(60);
  });
});
