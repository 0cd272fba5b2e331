import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  archiveChain,
  chooseSegments,
  compactionPlan,
  compactStoreSegments,
  listSegments,
  mergeSegments,
  parseSegmentManifest,
  verifySegment,
  writeSegment,
  type NewSegment,
  type SegmentManifest,
} from '../../../lib/store/segments.js';
import { MANIFEST } from '../../../lib/store/manifest.js';
import { keyIdOf, type StoreKey } from '../../../lib/store/sealed.js';
import type { StoreWriteSettings } from '../../../lib/store/stored-file.js';

const keyOf = (raw = randomBytes(32), file = '/test/key'): StoreKey => ({ id: keyIdOf(raw), key: raw, file });
const HOUR = 3600;
/** A UTC hour boundary: segments are bucketed by the hour their first line was written in. */
const T0 = 1_790_002_800;

/** A listed segment as the pure functions see it. */
function seg(id: string, first: number, last: number, over: Partial<SegmentManifest> = {}) {
  const manifest = {
    first,
    last,
    firstTime: T0 + first,
    lastTime: T0 + last,
    metaid: 'AB12',
    files: [{ size: 100 * (last - first + 1) }],
    ...over,
  } as SegmentManifest;
  return { id, manifest };
}
const ids = (list: { id: string }[]) => list.map((s) => s.id);

/**
 * Compaction (issue #26): which segments readers use when a merged one and its parts are both there (one
 * place: chooseSegments), which runs compaction merges (compactionPlan), and merging real segments (zstd,
 * sealed and signed) with a killed run's leftovers cleaned up by the next.
 */
describe('archive compaction: the set readers use', () => {
  test('a merged segment wins over the parts it holds; the chain is gap-free with no overlap', () => {
    const parts = [seg('p1', 1, 10), seg('p2', 11, 20), seg('p3', 21, 30)];
    const merged = seg('m', 1, 30, { parts: 3 });
    const later = seg('n', 31, 40);
    const { chosen, superseded } = chooseSegments([later, ...parts, merged]);
    expect(ids(chosen)).toEqual(['m', 'n']);
    expect(ids(superseded)).toEqual(['p1', 'p2', 'p3']);
    const chain = archiveChain(chosen.map((s) => ({ ...s.manifest, id: s.id })));
    expect(chain).toMatchObject({ first: 1, last: 40, holes: [], overlaps: [] });
  });

  test('some parts already gone (killed while removing them): the same choice', () => {
    const { chosen, superseded } = chooseSegments([seg('p3', 21, 30), seg('m', 1, 30, { parts: 3 })]);
    expect([ids(chosen), ids(superseded)]).toEqual([['m'], ['p3']]);
  });

  test('a merged segment of merged ones supersedes them all', () => {
    const { chosen, superseded } = chooseSegments([
      seg('m1', 1, 30, { parts: 3 }),
      seg('p4', 31, 40),
      seg('m2', 1, 40, { parts: 4 }),
    ]);
    expect([ids(chosen), ids(superseded)]).toEqual([['m2'], ['m1', 'p4']]);
  });

  test('same versions: the merged one is chosen whichever is listed first', () => {
    expect(ids(chooseSegments([seg('a', 1, 10), seg('b', 1, 10, { parts: 2 })]).chosen)).toEqual(['b']);
    expect(ids(chooseSegments([seg('b', 1, 10, { parts: 2 }), seg('a', 1, 10)]).chosen)).toEqual(['b']);
  });

  test('only a merged segment supersedes: sealed segments that overlap stay for archiveChain to report', () => {
    const { chosen, superseded } = chooseSegments([seg('a', 1, 20), seg('b', 5, 10), seg('c', 15, 30)]);
    expect([ids(chosen), ids(superseded)]).toEqual([['a', 'b', 'c'], []]);
    expect(archiveChain(chosen.map((s) => ({ ...s.manifest, id: s.id }))).overlaps).toHaveLength(2);
  });

  test('a merged segment that only partly covers a segment does not hide it', () => {
    const { chosen, superseded } = chooseSegments([seg('m', 1, 20, { parts: 2 }), seg('x', 15, 25)]);
    expect([ids(chosen), ids(superseded)]).toEqual([['m', 'x'], []]);
  });
});

describe('archive compaction: what is merged', () => {
  const o = { afterSeconds: HOUR, maxBytes: 1_000_000 };
  /** Segments of 10 versions each, one every 600 s from T0 (six an hour), and one an hour later. */
  const hours = () => {
    const list = [];
    for (let i = 0; i < 12; i++)
      list.push(seg(`s${i}`, i * 10 + 1, i * 10 + 10, { firstTime: T0 + i * 600, lastTime: T0 + i * 600 + 9 }));
    return list;
  };

  test('each ended hour into one; the hour of the newest segment and the newest never', () => {
    const list = hours();
    // The archiver's newest segment started in the second hour: it may still write there.
    expect(compactionPlan(list, T0 + 4 * HOUR, o).map(ids)).toEqual([['s0', 's1', 's2', 's3', 's4', 's5']]);
    // It moved on to a third hour: the second is merged too (not the newest segment, whatever its hour).
    const third = seg('s12', 121, 130, { firstTime: T0 + 2 * HOUR + 5, lastTime: T0 + 2 * HOUR + 9 });
    expect(compactionPlan([...list, third], T0 + 4 * HOUR, o).map(ids)).toEqual([
      ['s0', 's1', 's2', 's3', 's4', 's5'],
      ['s6', 's7', 's8', 's9', 's10', 's11'],
    ]);
  });

  test('an hour that ended less than afterSeconds ago waits', () => {
    expect(compactionPlan(hours(), T0 + HOUR + 1800, o)).toEqual([]);
    expect(compactionPlan(hours(), T0 + 2 * HOUR, o).map(ids)).toEqual([['s0', 's1', 's2', 's3', 's4', 's5']]);
  });

  test('a gap, another metaid or the byte bound starts a new run; a run of one is left as it is', () => {
    const list = hours();
    list[2] = seg('s2', 21, 30, { firstTime: T0 + 1200, lastTime: T0 + 1209, gap: { from: 20, to: 20, why: 'x' } });
    list[4] = seg('s4', 41, 50, { firstTime: T0 + 2400, lastTime: T0 + 2409, metaid: 'CD34' });
    expect(compactionPlan(list.slice(0, 7), T0 + 3 * HOUR, o).map(ids)).toEqual([
      ['s0', 's1'],
      ['s2', 's3'],
    ]);
    expect(compactionPlan(hours(), T0 + 3 * HOUR, { ...o, maxBytes: 2000 })[0]!.map((s) => s.id)).toEqual(['s0', 's1']);
  });
});

describe('archive compaction: merging sealed segments', () => {
  let dir: string;
  const key = keyOf();
  const settings: StoreWriteSettings = { compression: { type: 'zstd', level: 3 }, key };
  const lines = (from: number, to: number) => {
    let text = '';
    for (let v = from; v <= to; v++) text += `${v}: ${T0 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v + 9}\n`;
    return Buffer.from(text, 'latin1');
  };
  const segment = (from: number, to: number, firstTime: number): NewSegment => ({
    lines: lines(from, to),
    first: from,
    last: to,
    firstTime,
    lastTime: firstTime + 4,
    source: { name: 'ml1', host: 'h', role: 'metalogger', dataPath: '/var/lib/mfs' },
    metaid: 'AB12',
    mfsJobsVersion: 'test',
  });
  /** 12 segments in the first hour, 2 in the next. */
  async function fill() {
    for (let i = 0; i < 12; i++) await writeSegment(dir, segment(i * 5 + 1, i * 5 + 5, T0 + i * 300), settings);
    await writeSegment(dir, segment(61, 65, T0 + HOUR + 10), settings);
    await writeSegment(dir, segment(66, 70, T0 + HOUR + 20), settings);
  }
  const run = (over: { dryRun?: boolean } = {}) =>
    compactStoreSegments(dir, settings, {
      afterSeconds: HOUR,
      maxBytes: 1 << 20,
      now: T0 + 3 * HOUR,
      mfsJobsVersion: 'test',
      ...over,
    });

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-compaction-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('an hour becomes one signed, sealed segment holding every line; the parts go', async () => {
    await fill();
    const dry = await run({ dryRun: true });
    expect(dry.merged).toHaveLength(1);
    expect((await listSegments(dir, { key })).segments).toHaveLength(14);

    const done = await run();
    expect(done.errors).toEqual([]);
    expect(done.removed).toHaveLength(12);
    const listed = await listSegments(dir, { key });
    expect(listed.superseded).toEqual([]);
    expect(listed.segments.map((s) => [s.manifest.first, s.manifest.last, s.manifest.parts])).toEqual([
      [1, 60, 12],
      [61, 65, undefined],
      [66, 70, undefined],
    ]);
    const merged = listed.segments[0]!;
    expect(await verifySegment(merged, { key })).toEqual([]);
    // Signed in the segment domain; another key refuses it.
    const text = await fs.readFile(path.join(merged.dir, MANIFEST), 'utf8');
    expect(() => parseSegmentManifest(text, 'm', { key: keyOf() })).toThrow(/refused/);
    // Nothing more to do: the next run merges nothing.
    expect((await run()).merged).toEqual([]);
  });

  test('killed after sealing the merged segment: readers take it, the next run removes the parts', async () => {
    await fill();
    const { segments } = await listSegments(dir, { key });
    // What a run killed between mergeSegments and removing the parts leaves.
    await mergeSegments(dir, segments.slice(0, 12), settings, 'test');
    const listed = await listSegments(dir, { key });
    expect(listed.segments).toHaveLength(3);
    expect(listed.superseded).toHaveLength(12);
    const chain = archiveChain(listed.segments.map((s) => s.manifest));
    expect(chain).toMatchObject({ first: 1, last: 70, holes: [], overlaps: [] });

    const next = await run();
    expect([next.merged, next.removed.length, next.errors]).toEqual([[], 12, []]);
    expect((await listSegments(dir, { key })).superseded).toEqual([]);
  });

  test("a merged segment's parts count is bounded, and covered by the MAC", async () => {
    await fill();
    await run();
    const merged = (await listSegments(dir, { key })).segments[0]!;
    const text = await fs.readFile(path.join(merged.dir, MANIFEST), 'utf8');
    const doc = JSON.parse(text) as Record<string, unknown>;
    for (const parts of [1, 1e9, 'x'])
      expect(() => parseSegmentManifest(JSON.stringify({ ...doc, parts }), 'm', {})).toThrow(/parts .* is not a count/);
    // Edited under the key (a copy's owner claiming more parts): refused by the MAC.
    expect(() => parseSegmentManifest(JSON.stringify({ ...doc, parts: 13 }), 'm', { key })).toThrow(/refused|MAC/);
  });

  test('a merged segment that does not read back keeps its parts', async () => {
    await fill();
    const { segments } = await listSegments(dir, { key });
    const merged = await mergeSegments(dir, segments.slice(0, 12), settings, 'test');
    const stored = path.join(merged.dir, merged.manifest.files[0]!.stored!.name);
    const bytes = await fs.readFile(stored);
    bytes[bytes.length - 30]! ^= 1;
    await fs.writeFile(stored, bytes);
    const next = await run();
    expect(next.removed).toEqual([]);
    expect(next.errors[0]).toMatch(/kept segment .* does not read back/);
    expect((await listSegments(dir, { key })).superseded).toHaveLength(12);
  });
});
