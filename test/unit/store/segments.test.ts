import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  archiveChain,
  listSegments,
  pruneStoreSegments,
  removeSegment,
  segmentsNotNeeded,
  verifySegment,
  writeSegment,
  type NewSegment,
} from '../../../lib/store/segments.js';
import { planStoreRetention } from '../../../lib/store/retention.js';
import { idsFrom } from '../../../lib/store/copy/archive.js';
import { keyIdOf, type StoreKey } from '../../../lib/store/sealed.js';

const keyOf = (raw = randomBytes(32), file = '/test/key'): StoreKey => ({ id: keyIdOf(raw), key: raw, file });

/**
 * The archive's segments (issue #26): the chain they make (holes, recorded gaps, overlaps) is pure; a
 * segment written with a key is read back only with its MAC, in its own domain — a forged or edited
 * manifest, or a copied one under another id, is refused, never rolled forward.
 */
describe('archive segments', () => {
  let dir: string;
  const lines = (from: number, to: number) => {
    let text = '';
    for (let v = from; v <= to; v++) text += `${v}: ${1_790_000_000 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v + 9}\n`;
    return Buffer.from(text, 'latin1');
  };
  const segment = (from: number, to: number, over: Partial<NewSegment> = {}): NewSegment => ({
    lines: lines(from, to),
    first: from,
    last: to,
    firstTime: 1_790_000_000 + from,
    lastTime: 1_790_000_000 + to,
    source: { name: 'ml1', host: 'h', role: 'metalogger', dataPath: '/var/lib/mfs' },
    metaid: 'AB12',
    mfsJobsVersion: 'test',
    ...over,
  });

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-segments-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('the chain: holes between segments (with the recorded reason), overlaps named', () => {
    const chain = archiveChain([
      { id: 'a', first: 1, last: 10, lastTime: 5 },
      { id: 'c', first: 21, last: 30, lastTime: 9, gap: { from: 16, to: 20, why: 'rotated past' } },
      { id: 'b', first: 11, last: 15, lastTime: 7 },
      { id: 'd', first: 30, last: 31, lastTime: 10 },
    ]);
    expect(chain).toEqual({
      first: 1,
      last: 31,
      lastTime: 10,
      holes: [{ from: 16, to: 20, why: 'rotated past' }],
      overlaps: ['d starts at 30, the archive already holds up to 30'],
    });
    expect(archiveChain([])).toEqual({ holes: [], overlaps: [] });
  });

  test('signed and sealed segments read back and verify; a forged, edited or moved manifest is refused', async () => {
    const key = keyOf();
    const settings = { compression: { type: 'none' as const, level: 3 }, key };
    const a = await writeSegment(dir, segment(1, 50), settings);
    const b = await writeSegment(dir, segment(51, 60, { previous: 50 }), settings);
    let listed = await listSegments(dir, { key });
    expect(listed.segments.map((s) => s.id)).toEqual([a.id, b.id]);
    expect(listed.broken).toEqual([]);
    expect(await verifySegment(listed.segments[0]!, { key })).toEqual([]);

    // Edited: one more version claimed.
    const file = path.join(b.dir, 'manifest.json');
    const m = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    await fs.writeFile(file, JSON.stringify({ ...m, lastTime: 1 }));
    // Unsigned: a forged segment someone put into the archive.
    const forged = path.join(dir, 'archive', '20300101T000000Z-v61');
    await fs.mkdir(forged);
    const { mac: _mac, ...unsigned } = m;
    await fs.writeFile(path.join(forged, 'manifest.json'), JSON.stringify({ ...unsigned, id: '20300101T000000Z-v61' }));
    // A genuine manifest copied under another id.
    const moved = path.join(dir, 'archive', '20300101T000001Z-v1');
    await fs.mkdir(moved);
    await fs.copyFile(path.join(a.dir, 'manifest.json'), path.join(moved, 'manifest.json'));

    listed = await listSegments(dir, { key });
    expect(listed.segments.map((s) => s.id)).toEqual([a.id]);
    const why = Object.fromEntries(listed.broken.map((x) => [x.id, x.error]));
    expect(why[b.id]).toMatch(/MAC does not match/);
    expect(why['20300101T000000Z-v61']).toMatch(/carries no MAC|MAC does not match/);
    expect(why['20300101T000001Z-v1']).toMatch(/manifest says id/);
    expect(listed.broken.every((x) => x.untrusted)).toBe(true);

    // Another key: nothing is trusted.
    expect((await listSegments(dir, { key: keyOf() })).segments).toEqual([]);
  });

  test('recovery window: snapshots in it and the newest before it stay; segments older than every kept image go', async () => {
    const day = 86_400_000;
    const now = Date.parse('2026-12-20T00:00:00Z');
    const snap = (daysAgo: number) => ({
      id: new Date(now - daysAgo * day).toISOString(),
      manifest: { source: { name: 'm' }, startedAt: new Date(now - daysAgo * day).toISOString() },
    });
    const snaps = [snap(20), snap(16), snap(15), snap(10), snap(1)];
    const policy = { keepLast: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0, recoveryWindow: '14d' };
    const plan = planStoreRetention(snaps, ['m'], policy, 'UTC', new Set(), now);
    expect(plan.remove.sort()).toEqual([snap(20).id, snap(16).id]);

    const settings = { compression: { type: 'none' as const, level: 3 } };
    const segs = [
      await writeSegment(dir, segment(1, 10), settings),
      await writeSegment(dir, segment(11, 20), settings),
      await writeSegment(dir, segment(21, 30), settings),
    ];
    // The oldest kept image starts at 15: lines 1..10 are needed by nothing, 11..20 hold 15.
    expect(segmentsNotNeeded(segs, [15, 25]).map((s) => s.id)).toEqual([segs[0]!.id]);
    // The archive's newest segment stays even when every image is newer.
    expect(segmentsNotNeeded(segs, [40]).map((s) => s.id)).toEqual([segs[0]!.id, segs[1]!.id]);
    expect(segmentsNotNeeded(segs, [])).toEqual([]);
    await removeSegment(dir, segs[0]!.id);
    expect((await listSegments(dir, {})).segments.map((s) => s.manifest.first)).toEqual([11, 21]);
  });

  test('a sealed segment whose bytes changed fails verify, naming it', async () => {
    const key = keyOf();
    const s = await writeSegment(dir, segment(1, 20), { compression: { type: 'none', level: 3 }, key });
    const stored = path.join(s.dir, s.manifest.files[0]!.stored!.name);
    const bytes = await fs.readFile(stored);
    bytes[bytes.length - 20]! ^= 1;
    await fs.writeFile(stored, bytes);
    const problems = await verifySegment(s, { key });
    expect(problems.join('; ')).toMatch(new RegExp(`${s.id}.*changelog\\.1\\.mfs`));
  });

  test('pruning (backup and prune alike): dry run removes nothing; a segment a process holds open stays', async () => {
    const settings = { compression: { type: 'none' as const, level: 3 } };
    const segs = [
      await writeSegment(dir, segment(1, 10), settings),
      await writeSegment(dir, segment(11, 20), settings),
      await writeSegment(dir, segment(21, 30), settings),
    ];
    const dry = await pruneStoreSegments(dir, {}, [25], true);
    expect(dry.removed).toEqual([segs[0]!.id, segs[1]!.id]);
    expect((await listSegments(dir, {})).segments).toHaveLength(3);
    // A restore copying the first segment holds it open: left for the next run, the second goes.
    const reading = await fs.open(path.join(segs[0]!.dir, segs[0]!.manifest.files[0]!.name));
    try {
      const run = await pruneStoreSegments(dir, {}, [25], false);
      expect(run.removed).toEqual([segs[1]!.id]);
      expect(run.lines[0]).toMatch(/left segment .* opened by a process/);
    } finally {
      await reading.close();
    }
    expect((await pruneStoreSegments(dir, {}, [25], false)).removed).toEqual([segs[0]!.id]);
    expect((await pruneStoreSegments(dir, {}, [25], false)).removed).toEqual([]);
  });

  test("a copy's ids that may hold lines at or after a version (the listing reads only their manifests)", () => {
    const ids = ['20261207T120300Z-v300', '20261207T120000Z-v1', '20261207T120100Z-v100', '20261207T120200Z-v200'];
    expect(idsFrom(ids, 150)).toEqual(['20261207T120100Z-v100', '20261207T120200Z-v200', '20261207T120300Z-v300']);
    expect(idsFrom(ids, 200)).toEqual(['20261207T120200Z-v200', '20261207T120300Z-v300']);
    expect(idsFrom(ids, 1000)).toEqual(['20261207T120300Z-v300']);
    // Before the first: all of them.
    expect(idsFrom(ids, 0)).toHaveLength(4);
  });
});
