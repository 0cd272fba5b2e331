import type { ImageHeader } from '../../../lib/moosefs/metadata.js';
import type { RemoteEntry } from '../../../lib/transport/remote.js';
import { changelogNeeded, chooseImage } from '../../../lib/backup/inventory.js';
import type { ImageCandidate } from '../../../lib/moosefs/inventory.js';
import { restoredImageName } from '../../../lib/moosefs/metadata.js';
import { changelogChange, imageChange } from '../../../lib/transport/transfer.js';

const entry = (name: string, mtimeMs: number, size = 1000): RemoteEntry => ({ name, size, mtimeMs, isFile: true });
const header = (version: number, empty = false): ImageHeader => ({
  magic: empty ? 'MFSM NEW' : 'MFSM 2.0',
  version: empty ? 0 : version,
  metaid: empty ? '' : '00000000000000AB',
  empty,
});
const good = (name: string, mtimeMs: number, version: number, empty = false): ImageCandidate => ({
  entry: entry(name, mtimeMs),
  path: `/d/${name}`,
  header: header(version, empty),
});
const bad = (name: string, mtimeMs: number, error: string): ImageCandidate => ({
  entry: entry(name, mtimeMs),
  path: `/d/${name}`,
  error,
});

describe('choosing the image to back up', () => {
  test("the valid image with the highest version wins (a stopped master's metadata.mfs over .back)", () => {
    const { chosen } = chooseImage(
      [good('metadata.mfs.back', 1000, 40), good('metadata.mfs', 2000, 55), good('metadata.mfs.back.1', 500, 12)],
      'm',
    );
    expect(chosen.entry.name).toBe('metadata.mfs');
  });

  test('a damaged newest image is a finding, not a reason to fall back to an older one', () => {
    expect(() =>
      chooseImage(
        [bad('metadata.mfs.back', 2000, 'not a MooseFS metadata image'), good('metadata.mfs.back.1', 1000, 40)],
        'm:/d',
      ),
    ).toThrow('m:/d: newest metadata image metadata.mfs.back rejected: not a MooseFS metadata image');
  });

  test('an older damaged image is noted and skipped', () => {
    const { chosen, notes } = chooseImage(
      [good('metadata.mfs.back', 2000, 40), bad('metadata.mfs.back.1', 1000, 'truncated')],
      'm',
    );
    expect(chosen.entry.name).toBe('metadata.mfs.back');
    expect(notes).toEqual(['ignored older damaged image metadata.mfs.back.1: truncated']);
  });

  test("a metalogger's .tmp image is used only when nothing else exists, and stored under a name mfsmaster -a reads", () => {
    expect(
      chooseImage([good('metadata_ml.tmp', 3000, 40), good('metadata_ml.mfs.back', 1000, 40)], 'ml').chosen.entry.name,
    ).toBe('metadata_ml.mfs.back');
    expect(
      chooseImage([bad('metadata_ml.tmp', 3000, 'no EOF marker'), good('metadata_ml.mfs.back', 1000, 40)], 'ml').chosen
        .entry.name,
    ).toBe('metadata_ml.mfs.back');
    expect(chooseImage([good('metadata_ml.tmp', 3000, 0, true)], 'ml').chosen.header.empty).toBe(true);
    expect(restoredImageName('metadata_ml.tmp')).toBe('metadata_ml.mfs.back');
    expect(restoredImageName('metadata.mfs.back')).toBe('metadata.mfs.back');
  });

  test('nothing usable: one error naming every file', () => {
    expect(() => chooseImage([], 'm:/d')).toThrow('m:/d: no usable metadata image (no metadata*.mfs* file)');
    expect(() => chooseImage([bad('metadata_ml.tmp', 1, 'truncated (3 bytes)')], 'm:/d')).toThrow(
      'no usable metadata image (metadata_ml.tmp: truncated (3 bytes))',
    );
  });
});

describe('which changelogs an image needs (edges: test/unit/moosefs/changelog-edges.test.ts)', () => {
  test('an image of version V needs files with lines >= V; unknown edges are fetched to decide on the copy', () => {
    const c = (last: number | undefined, size = 10) => ({
      entry: entry('changelog.1.mfs', 0, size),
      path: '/d/changelog.1.mfs',
      last,
    });
    expect(changelogNeeded(c(43), 44)).toBe(false);
    expect(changelogNeeded(c(44), 44)).toBe(true);
    expect(changelogNeeded(c(undefined), 44)).toBe(true);
    expect(changelogNeeded(c(undefined, 0), 44)).toBe(false);
  });
});

describe('did the source change during the copy?', () => {
  const before = entry('metadata.mfs.back', 1_000_000, 5000);
  test('an image must keep its size and mtime, and arrive whole', () => {
    expect(imageChange(before, { size: 5000, after: entry('x', 1_000_000, 5000), seconds: 1 })).toBeUndefined();
    expect(imageChange(before, { size: 4000, after: entry('x', 1_000_000, 5000), seconds: 1 })).toMatch(
      /announced 5000 bytes, 4000 arrived/,
    );
    expect(imageChange(before, { size: 5000, after: entry('x', 2_000_000, 5000), seconds: 1 })).toMatch(
      /size\/mtime changed during the copy/,
    );
    expect(imageChange(before, { size: 5000, after: undefined, seconds: 1 })).toMatch(/disappeared/);
  });
  test('a changelog may grow (MooseFS appends), never shrink or vanish', () => {
    expect(changelogChange(before, { size: 6000, after: entry('x', 3_000_000, 7000), seconds: 1 })).toBeUndefined();
    expect(changelogChange(before, { size: 5000, after: entry('x', 3_000_000, 100), seconds: 1 })).toMatch(/shrank/);
    expect(changelogChange(before, { size: 5000, after: undefined, seconds: 1 })).toMatch(/rotated/);
  });
});
