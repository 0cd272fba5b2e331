import { decideImage, newestRecoverable, type StoredImage } from '../../../lib/backup/incremental.js';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const HOUR = 3_600_000;
const bounds = { intervalMs: 24 * HOUR, changes: 1_000 };
const stored = (over: Partial<StoredImage> = {}): StoredImage => ({
  id: '20261207T100000Z-v150',
  image: { version: 100, empty: false, metaid: 'AB' },
  reachesVersion: 150,
  startedAt: new Date(NOW - 2 * HOUR).toISOString(),
  ...over,
});
const seg = (first: number, last: number, gap?: { from: number; to: number; why: string }) => ({
  id: `s${first}`,
  first,
  last,
  lastTime: 1_000 + last,
  ...(gap ? { gap } : {}),
});
const source = { version: 400, empty: false, metaid: 'AB', reaches: 420 };
const archive = { segments: [seg(90, 200), seg(201, 430)], broken: 0 };

describe('decideImage: an image kept once, rolled forward by the archive', () => {
  test('a healthy archive past the new image covers the restore point', () => {
    expect(decideImage(stored(), source, archive, bounds, NOW)).toEqual({
      store: false,
      covered: {
        snapshot: '20261207T100000Z-v150',
        imageVersion: 100,
        archiveReaches: 431,
        archiveTime: 1_430,
        rollForward: 331,
      },
    });
  });

  test.each([
    ['no stored image', undefined, source, archive, /no image of this source/],
    ['another filesystem', stored(), { ...source, metaid: 'CD' }, archive, /another filesystem/],
    ['an empty image', stored(), { ...source, empty: true }, archive, /empty/],
    ['a broken segment', stored(), source, { ...archive, broken: 1 }, /unusable/],
    [
      'an unreadable archive',
      stored(),
      source,
      { segments: [], broken: 0, error: 'EACCES' },
      /cannot be read \(EACCES\)/,
    ],
    ['an empty archive', stored(), source, { segments: [], broken: 0 }, /holds nothing/],
    [
      'an archive starting after the snapshot',
      stored(),
      source,
      { segments: [seg(160, 430)], broken: 0 },
      /starts at 160/,
    ],
    [
      'a gap',
      stored(),
      source,
      { segments: [seg(90, 200), seg(250, 430, { from: 201, to: 249, why: 'rotated' })], broken: 0 },
      /gap \(versions 201\.\.249\)/,
    ],
    ['a lagging archive', stored(), source, { segments: [seg(90, 300)], broken: 0 }, /reaches 301, behind/],
    [
      'an archive that ends where the snapshot does',
      stored(),
      source,
      { segments: [seg(90, 149)], broken: 0 },
      /150, behind/,
    ],
    ['an image a day old', stored({ startedAt: new Date(NOW - 24 * HOUR).toISOString() }), source, archive, /24 h old/],
    ['too many changes', stored(), { ...source, reaches: 1_200 }, archive, /1100 changes .*imageChanges 1000/],
  ])('stores a full image with %s', (_what, newest, src, arch, why) => {
    const d = decideImage(newest, src, arch, bounds, NOW);
    expect(d.store).toBe(true);
    expect(d.store && d.why).toMatch(why);
  });

  test('the interval allows a schedule jitter of a few minutes', () => {
    const almost = stored({ startedAt: new Date(NOW - 24 * HOUR + 60_000).toISOString() });
    expect(decideImage(almost, source, archive, bounds, NOW).store).toBe(true);
    const early = stored({ startedAt: new Date(NOW - 23 * HOUR).toISOString() });
    expect(decideImage(early, source, archive, bounds, NOW).store).toBe(false);
  });
});

describe('newestRecoverable', () => {
  const snaps = [{ id: 'a', manifest: { reachesVersion: 150 } }];
  test('through the archive to its end, or its first hole', () => {
    expect(newestRecoverable(snaps, { segments: [seg(90, 200), seg(201, 430)] })).toEqual({
      snapshot: 'a',
      version: 431,
      time: 1_430,
      throughArchive: true,
    });
    expect(newestRecoverable(snaps, { segments: [seg(90, 200), seg(250, 430)] })).toMatchObject({ version: 201 });
    expect(newestRecoverable(snaps, { segments: [seg(160, 430)] })).toEqual({
      snapshot: 'a',
      version: 150,
      throughArchive: false,
    });
    expect(newestRecoverable([], { segments: [] })).toBeUndefined();
  });
});
