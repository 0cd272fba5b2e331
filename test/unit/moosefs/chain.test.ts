import { coverage, holesBetween, rollForward, filesNeeded } from '../../../lib/moosefs/chain.js';

describe('chain logic', () => {
  test('merges touching and overlapping runs from several files', () => {
    expect(
      coverage([
        { first: 10, last: 20 },
        { first: 21, last: 30 },
        { first: 5, last: 12 },
      ]),
    ).toEqual([{ first: 5, last: 30 }]);
  });

  test('finds holes between two versions', () => {
    const pieces = [
      { first: 1, last: 49 },
      { first: 51, last: 60 },
      { first: 70, last: 80 },
    ];
    expect(holesBetween(1, 80, pieces)).toEqual([
      { from: 50, to: 50 },
      { from: 61, to: 69 },
    ]);
    expect(holesBetween(1, 90, pieces)).toEqual([
      { from: 50, to: 50 },
      { from: 61, to: 69 },
      { from: 81, to: 90 },
    ]);
  });

  test('rolls an image forward to the first hole, like mfsmaster -a', () => {
    const pieces = [
      { file: 'changelog_ml.1.mfs', first: 100, last: 149 },
      { file: 'changelog_ml.0.mfs', first: 151, last: 200 },
    ];
    const r = rollForward(120, pieces);
    expect(r.reached).toBe(150);
    expect(r.newest).toBe(201);
    expect(r.holes).toEqual([{ from: 150, to: 150 }]);
    expect(r.filesUsed).toEqual(['changelog_ml.1.mfs']);
  });

  test('an image newer than every changelog reaches itself', () => {
    const r = rollForward(300, [{ file: 'a', first: 1, last: 100 }]);
    expect(r).toMatchObject({ reached: 300, newest: 300, holes: [], filesUsed: [] });
  });

  test('changelogs that start above the image leave a hole at the start', () => {
    const r = rollForward(10, [{ file: 'a', first: 15, last: 20 }]);
    expect(r.reached).toBe(10);
    expect(r.holes).toEqual([{ from: 10, to: 14 }]);
  });

  test('files needed by a restore point are those with a version in its range', () => {
    const pieces = [
      { file: 'c3', first: 1, last: 99 },
      { file: 'c2', first: 100, last: 199 },
      { file: 'c1', first: 200, last: 299 },
    ];
    expect([...filesNeeded(150, 300, pieces)].sort()).toEqual(['c1', 'c2']);
  });
});
