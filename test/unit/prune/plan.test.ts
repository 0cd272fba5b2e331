import { rollForward, holesBetween, type ChangelogPiece } from '../../../lib/moosefs/chain.js';
import {
  planPrune,
  type PlanChangelog,
  type PlanImage,
  type PlanInput,
  type PlanOtherFile,
  type PrunePlan,
  type PruneRules,
} from '../../../lib/prune/plan.js';
import { VersionCover } from '../../../lib/moosefs/version-cover.js';
import { seededRandom } from '../../helpers/random.js';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

const rules = (r: Partial<PruneRules> = {}): PruneRules => ({
  keepRestorePoints: 1,
  keepRotated: 0,
  minAgeMs: 0,
  ...r,
});

function changelog(name: string, first: number, last: number, o: Partial<PlanChangelog> = {}): PlanChangelog {
  return {
    name,
    unit: name,
    segments: [{ first, last }],
    size: (last - first + 1) * 100,
    mtimeMs: NOW - 2 * HOUR,
    current: false,
    open: false,
    rotated: true,
    ...o,
  };
}

function image(name: string, version: number, o: Partial<PlanImage> = {}): PlanImage {
  return { name, unit: name, version, size: 5000, mtimeMs: NOW - 2 * HOUR, deletable: false, ...o };
}

const deleted = (plan: PrunePlan) => plan.delete.map((e) => e.name).sort();

describe('prune plan: a master DATA_PATH', () => {
  // metadata.mfs.back (v300) and .back.1 (v200); changelog.N.mfs rotated hourly, 100 versions each.
  const input = (): PlanInput => ({
    images: [
      image('metadata.mfs.back', 300, { mtimeMs: NOW - HOUR }),
      image('metadata.mfs.back.1', 200, { mtimeMs: NOW - 2 * HOUR }),
    ],
    changelogs: [
      changelog('changelog.0.mfs', 300, 349, { current: true, rotated: false, mtimeMs: NOW }),
      changelog('changelog.1.mfs', 200, 299),
      changelog('changelog.2.mfs', 100, 199),
      changelog('changelog.3.mfs', 1, 99),
    ],
    rules: rules(),
    now: NOW,
  });

  test('keeps what the oldest retained image needs, deletes the rest with its version range', () => {
    const plan = planPrune(input());
    expect(deleted(plan)).toEqual(['changelog.2.mfs', 'changelog.3.mfs']);
    expect(plan.delete.find((e) => e.name === 'changelog.2.mfs')).toMatchObject({
      versions: '100..199',
      reason: 'older than every retained restore point (oldest v200)',
    });
    expect(plan.keep.find((e) => e.name === 'changelog.1.mfs')!.reason).toMatch(
      /needed: only copy of versions 200\.\.299, which restore point metadata\.mfs\.back\.1 \(v200\) needs to reach 350/,
    );
    expect(plan.bytesToFree).toBe(100 * 100 + 99 * 100);
    expect(plan.restorePoints.every((r) => r.retained && r.reaches === 350)).toBe(true);
  });

  test('an image that splits a file keeps the whole file (a file is needed when any of its versions is)', () => {
    const i = input();
    i.images[1]!.version = 150;
    const plan = planPrune(i);
    expect(deleted(plan)).toEqual(['changelog.3.mfs']);
  });

  test('never deletes the current changelog, open files or young files', () => {
    const i = input();
    i.images = [image('metadata.mfs.back', 400)];
    i.changelogs[1]!.open = true;
    i.changelogs[2]!.mtimeMs = NOW - 60_000;
    i.rules = rules({ minAgeMs: 10 * 60_000 });
    const plan = planPrune(i);
    expect(deleted(plan)).toEqual(['changelog.3.mfs']);
    expect(plan.keep.find((e) => e.name === 'changelog.0.mfs')!.reason).toMatch(/current changelog/);
    expect(plan.keep.find((e) => e.name === 'changelog.1.mfs')!.reason).toMatch(/held open/);
    expect(plan.keep.find((e) => e.name === 'changelog.2.mfs')!.reason).toMatch(/modified 1 min ago \(minAge\)/);
  });

  test('keepRotated keeps the K newest rotated files even when nothing needs them', () => {
    const i = input();
    i.images = [image('metadata.mfs.back', 350)];
    i.rules = rules({ keepRotated: 2 });
    expect(deleted(planPrune(i))).toEqual(['changelog.3.mfs']);
  });

  test('maxAge releases old restore points; their changelogs go with them, the image stays (MooseFS rotates it)', () => {
    const i = input();
    i.rules = rules({ maxAgeMs: 90 * 60_000 });
    const plan = planPrune(i);
    expect(deleted(plan)).toEqual(['changelog.1.mfs', 'changelog.2.mfs', 'changelog.3.mfs']);
    expect(plan.restorePoints.find((r) => r.name === 'metadata.mfs.back.1')).toMatchObject({
      retained: false,
      reason: 'older than maxAge (2 h)',
    });
    expect(plan.keep.find((e) => e.name === 'metadata.mfs.back.1')!.reason).toMatch(
      /MooseFS rotates its own images\); not a retained restore point: older than maxAge/,
    );
  });

  test('maxTotalSize releases the oldest restore points until what is kept fits, and warns when it cannot', () => {
    const i = input();
    i.rules = rules({ maxTotalBytes: 12_000 });
    const plan = planPrune(i);
    expect(plan.restorePoints.find((r) => r.name === 'metadata.mfs.back.1')).toMatchObject({
      retained: false,
      reason: 'released to fit maxTotalSize',
    });
    // Images in a DATA_PATH are MooseFS's: they are kept and not counted against maxTotalSize.
    expect(deleted(plan)).toEqual(['changelog.1.mfs', 'changelog.2.mfs', 'changelog.3.mfs']);
    expect(plan.bytesKept).toBe(2 * 5_000 + 50 * 100);
    i.rules = rules({ maxTotalBytes: 20_000 });
    expect(planPrune(i).restorePoints.every((r) => r.retained)).toBe(true);
    i.rules = rules({ maxTotalBytes: 1_000 });
    expect(planPrune(i).warnings.join()).toMatch(/more than maxTotalSize/);
  });

  test('with no image at all nothing is deleted', () => {
    const i = input();
    i.images = [];
    const plan = planPrune(i);
    expect(plan.delete).toEqual([]);
    expect(plan.warnings.join()).toMatch(/no restore point/);
  });

  test('a hole that was already there is reported, and files beyond it are still kept', () => {
    const i = input();
    i.changelogs[1] = changelog('changelog.1.mfs', 200, 249);
    const plan = planPrune(i);
    expect(plan.holes).toEqual([{ from: 250, to: 299 }]);
    expect(plan.warnings.join()).toMatch(
      /metadata\.mfs\.back\.1 \(v200\) reaches only 250 of 350: hole 250\.\.299 was there before prune/,
    );
    expect(deleted(plan)).toEqual(['changelog.2.mfs', 'changelog.3.mfs']);
  });
});

describe('prune plan: a metalogger DATA_PATH with changelog_ml_back duplicates', () => {
  test('a duplicate older copy goes, the only copy stays', () => {
    const plan = planPrune({
      images: [image('metadata_ml.mfs.back', 120)],
      changelogs: [
        changelog('changelog_ml.0.mfs', 150, 200, { current: true, rotated: false }),
        changelog('changelog_ml.1.mfs', 100, 149),
        changelog('changelog_ml_back.0.mfs', 1, 149, { rotated: false }),
        changelog('changelog_ml_back.1.mfs', 1, 0, { rotated: false, segments: [] }),
      ],
      rules: rules(),
      now: NOW,
    });
    expect(deleted(plan)).toEqual(['changelog_ml_back.0.mfs', 'changelog_ml_back.1.mfs']);
    expect(plan.delete.find((e) => e.name === 'changelog_ml_back.1.mfs')!.reason).toBe('holds no versions');
    expect(plan.restorePoints[0]!.reaches).toBe(201);
  });
});

describe('prune plan: the snapshot store (a snapshot directory goes whole or not at all)', () => {
  // Three snapshots: s1 v100 with 100..210, s2 v200 with 200..310, s3 v300 with 300..410.
  function store(mtimes: number[]): PlanInput {
    const images: PlanImage[] = [];
    const changelogs: PlanChangelog[] = [];
    const others: PlanOtherFile[] = [];
    [100, 200, 300].forEach((v, i) => {
      const unit = `s${i + 1}`;
      images.push(image(`${unit}/metadata.mfs.back`, v, { unit, deletable: true, mtimeMs: mtimes[i]! }));
      changelogs.push(changelog(`${unit}/changelog.0.mfs`, v, v + 110, { unit, rotated: false, mtimeMs: mtimes[i]! }));
      others.push({ name: `${unit}/manifest.json`, unit, size: 300, mtimeMs: mtimes[i]! });
    });
    return { images, changelogs, others, rules: rules(), now: NOW };
  }

  test('old snapshots whose versions newer ones also hold go whole', () => {
    const i = store([NOW - 72 * HOUR, NOW - 48 * HOUR, NOW - HOUR]);
    i.rules = rules({ maxAgeMs: 24 * HOUR });
    const plan = planPrune(i);
    expect(deleted(plan)).toEqual([
      's1/changelog.0.mfs',
      's1/manifest.json',
      's1/metadata.mfs.back',
      's2/changelog.0.mfs',
      's2/manifest.json',
      's2/metadata.mfs.back',
    ]);
  });

  test('a released snapshot in the middle stays whole while a retained older one needs its changelogs', () => {
    const i = store([NOW - 72 * HOUR, NOW - 48 * HOUR, NOW - HOUR]);
    i.images[0]!.pinned = true;
    i.rules = rules({ maxAgeMs: 24 * HOUR });
    const plan = planPrune(i);
    expect(plan.delete).toEqual([]);
    expect(plan.restorePoints.find((r) => r.name === 's2/metadata.mfs.back')!.retained).toBe(false);
    expect(plan.keep.find((e) => e.name === 's2/metadata.mfs.back')!.reason).toMatch(
      /with s2: needed: only copy of versions 211\.\.299, which restore point s1\/metadata\.mfs\.back \(v100\) needs to reach 411/,
    );
    expect(plan.restorePoints.find((r) => r.name === 's1/metadata.mfs.back')!.reaches).toBe(411);
  });
});

// ---- property: random DATA_PATHs and stores, random rules ----

const prng = seededRandom;

interface Rng {
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
}

function rng(seed: number): Rng {
  const r = prng(seed);
  return { int: (lo, hi) => lo + Math.floor(r() * (hi - lo + 1)), chance: (p) => r() < p };
}

/** A DATA_PATH: hourly rotated changelogs over [1, newest), a few images, _back duplicates, sometimes a hole. */
function randomDataPath(g: Rng): PlanInput {
  const hours = g.int(1, 12);
  const changelogs: PlanChangelog[] = [];
  let v = g.int(1, 50);
  const bounds: { first: number; last: number; hour: number }[] = [];
  for (let h = hours; h >= 0; h--) {
    const n = g.int(0, 60);
    if (n > 0) bounds.push({ first: v, last: v + n - 1, hour: h });
    v += n + (g.chance(0.05) ? g.int(1, 5) : 0); // sometimes versions are missing: a hole
  }
  bounds.forEach((b, i) => {
    const index = bounds.length - 1 - i;
    const segments =
      g.chance(0.05) && b.last - b.first > 4
        ? [
            { first: b.first, last: b.first + 1 },
            { first: b.first + 3, last: b.last },
          ]
        : [{ first: b.first, last: b.last }];
    changelogs.push({
      name: `changelog_ml.${index}.mfs`,
      unit: `changelog_ml.${index}.mfs`,
      segments,
      size: (b.last - b.first + 1) * 50,
      mtimeMs: NOW - b.hour * HOUR,
      current: index === 0,
      open: index === 0 && g.chance(0.5),
      rotated: index > 0,
    });
  });
  const newest = v;
  for (let i = 0; i < g.int(0, 2); i++) {
    const first = g.int(1, newest);
    const last = Math.min(newest - 1, first + g.int(0, 80));
    if (last >= first)
      changelogs.push({
        name: `changelog_ml_back.${i}.mfs`,
        unit: `changelog_ml_back.${i}.mfs`,
        segments: [{ first, last }],
        size: (last - first + 1) * 50,
        mtimeMs: NOW - g.int(0, hours) * HOUR,
        current: false,
        open: false,
        rotated: false,
      });
  }
  const images: PlanImage[] = [];
  for (let i = 0; i < g.int(0, 4); i++) {
    images.push({
      name: i === 0 ? 'metadata_ml.mfs.back' : `metadata_ml.mfs.back.${i}`,
      unit: `img${i}`,
      version: g.int(1, newest),
      size: g.int(100, 5000),
      mtimeMs: NOW - g.int(0, hours) * HOUR - g.int(0, HOUR),
      deletable: false,
    });
  }
  return { images, changelogs, rules: randomRules(g), now: NOW };
}

/** A snapshot store: snapshots whose changelogs overlap the next one's, or stop short (a gap). */
function randomStore(g: Rng): PlanInput {
  const images: PlanImage[] = [];
  const changelogs: PlanChangelog[] = [];
  const others: PlanOtherFile[] = [];
  let v = g.int(1, 100);
  const count = g.int(1, 8);
  for (let s = 0; s < count; s++) {
    const unit = `s${s}`;
    const age = (count - s) * g.int(1, 30) * HOUR;
    const reach = v + g.int(0, 120);
    images.push({
      name: `${unit}/metadata.mfs.back`,
      unit,
      version: v,
      size: g.int(1000, 9000),
      mtimeMs: NOW - age,
      deletable: true,
      pinned: g.chance(0.1),
    });
    let first = v - g.int(0, 20);
    for (let f = 0; first < reach; f++) {
      const last = Math.min(reach - 1, first + g.int(5, 60));
      changelogs.push({
        name: `${unit}/changelog.${f}.mfs`,
        unit,
        segments: [{ first: Math.max(1, first), last }],
        size: (last - first + 1) * 40,
        mtimeMs: NOW - age,
        current: false,
        open: false,
        rotated: false,
      });
      first = last + 1;
    }
    others.push({ name: `${unit}/manifest.json`, unit, size: 400, mtimeMs: NOW - age });
    v = g.chance(0.1) ? reach + g.int(1, 30) : g.int(v + 1, Math.max(v + 1, reach));
  }
  return { images, changelogs, others, rules: randomRules(g), now: NOW };
}

function randomRules(g: Rng): PruneRules {
  return {
    keepRestorePoints: g.int(1, 3),
    keepRotated: g.int(0, 3),
    minAgeMs: g.chance(0.3) ? g.int(0, 3) * HOUR : 0,
    maxAgeMs: g.chance(0.5) ? g.int(1, 100) * HOUR : undefined,
    maxTotalBytes: g.chance(0.4) ? g.int(0, 40_000) : undefined,
  };
}

function piecesOf(changelogs: readonly PlanChangelog[]): ChangelogPiece[] {
  return changelogs.flatMap((c) => c.segments.map((s) => ({ file: c.name, ...s })));
}

/** Everything the plan promises, checked against the input by the chain logic alone. */
function checkPlan(input: PlanInput, plan: PrunePlan): void {
  const gone = new Set(plan.delete.map((e) => e.name));
  const all = [...input.images, ...input.changelogs, ...(input.others ?? [])];
  expect(plan.delete.length + plan.keep.length).toBe(all.length);
  const keptChangelogs = input.changelogs.filter((c) => !gone.has(c.name));
  const before = piecesOf(input.changelogs);
  const after = piecesOf(keptChangelogs);
  for (const rp of plan.restorePoints.filter((r) => r.retained)) {
    expect(gone.has(rp.name)).toBe(false);
    const reachedBefore = rollForward(rp.version, before).reached;
    const reachedAfter = rollForward(rp.version, after).reached;
    expect(reachedAfter).toBe(reachedBefore);
    // The property the issue asks for: where the chain was complete, it still reaches the newest version.
    if (holesBetween(rp.version, plan.newest - 1, before).length === 0) expect(reachedAfter).toBe(plan.newest);
  }
  if (plan.restorePoints.some((r) => r.retained && r.version < plan.newest)) {
    expect(
      Math.max(
        0,
        ...after.map((p) => p.last + 1),
        ...input.images.filter((i) => !gone.has(i.name)).map((i) => i.version),
      ),
    ).toBe(plan.newest);
  }
  for (const c of input.changelogs) if (c.current || c.open) expect(gone.has(c.name)).toBe(false);
  for (const f of all) if (input.now - f.mtimeMs < input.rules.minAgeMs) expect(gone.has(f.name)).toBe(false);
  for (const i of input.images) if (!i.deletable || i.pinned) expect(gone.has(i.name)).toBe(false);
  if (input.images.length === 0) expect(plan.delete).toEqual([]);
  const units = new Map<string, boolean[]>();
  for (const f of all) units.set(f.unit, [...(units.get(f.unit) ?? []), gone.has(f.name)]);
  for (const flags of units.values()) expect(new Set(flags).size).toBe(1);
  const rotated = input.changelogs.filter((c) => c.rotated && !c.current && c.segments.length > 0);
  const keptRotated = rotated.filter((c) => !gone.has(c.name)).length;
  expect(keptRotated).toBeGreaterThanOrEqual(Math.min(input.rules.keepRotated, rotated.length));
  expect(plan.bytesToFree).toBe(plan.delete.reduce((s, e) => s + e.size, 0));
  if (
    input.rules.maxTotalBytes !== undefined &&
    input.images.length > 0 &&
    !plan.warnings.some((w) => /maxTotalSize/.test(w))
  ) {
    const undeletable = new Set(input.images.filter((i) => !i.deletable).map((i) => i.name));
    expect(plan.keep.filter((e) => !undeletable.has(e.name)).reduce((s, e) => s + e.size, 0)).toBeLessThanOrEqual(
      input.rules.maxTotalBytes,
    );
  }
}

describe('prune plan property: every retained restore point still rolls forward as far as before', () => {
  const CASES = 400;

  test.each([
    ['DATA_PATH', randomDataPath, 1],
    ['snapshot store', randomStore, 100_000],
  ] as const)('%s: %#', (_kind, generate, seedBase) => {
    let deletions = 0;
    for (let seed = seedBase; seed < seedBase + CASES; seed++) {
      const input = generate(rng(seed));
      let plan: PrunePlan;
      try {
        plan = planPrune(input);
        checkPlan(input, plan);
        // Idempotent: planning again over what is left deletes nothing more.
        const gone = new Set(plan.delete.map((e) => e.name));
        const rest: PlanInput = {
          ...input,
          images: input.images.filter((i) => !gone.has(i.name)),
          changelogs: input.changelogs.filter((c) => !gone.has(c.name)),
          others: input.others?.filter((o) => !gone.has(o.name)),
        };
        expect(planPrune(rest).delete).toEqual([]);
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}\ninput: ${JSON.stringify(input)}`, { cause: err });
      }
      deletions += plan.delete.length;
    }
    // The generator must exercise deletion, not only keep everything.
    expect(deletions).toBeGreaterThan(CASES);
  });
});

describe('prune plan at scale', () => {
  test('a store of 1,000 snapshots with 30 changelogs each: old snapshots go whole, the oldest retained still reaches the newest', () => {
    // How long this takes is the benchmark's business; here only that the answer is right at this size.
    const images: PlanImage[] = [];
    const changelogs: PlanChangelog[] = [];
    let v = 1;
    for (let s = 0; s < 1000; s++) {
      const unit = `s${String(s).padStart(4, '0')}`;
      images.push(image(`${unit}/metadata.mfs.back`, v, { unit, deletable: true, mtimeMs: NOW - (1000 - s) * HOUR }));
      for (let k = 0, f = Math.max(1, v - 50); k < 30; k++, f += 100)
        changelogs.push(
          changelog(`${unit}/changelog.${k}.mfs`, f, f + 99, {
            unit,
            rotated: false,
            mtimeMs: NOW - (1000 - s) * HOUR,
          }),
        );
      v += 2800;
    }
    const plan = planPrune({ images, changelogs, rules: rules({ maxAgeMs: 500.5 * HOUR }), now: NOW });
    const gone = new Set(plan.delete.map((e) => e.unit));
    expect(gone.size).toBe(500);
    const kept = piecesOf(changelogs.filter((c) => !gone.has(c.unit)));
    const oldest = plan.restorePoints.filter((r) => r.retained).reduce((a, b) => (a.version < b.version ? a : b));
    expect(rollForward(oldest.version, kept).reached).toBe(plan.newest);
  });
});

describe('VersionCover', () => {
  test('counts pieces per version and names the runs nothing holds', () => {
    const a = { first: 1, last: 10 };
    const b = { first: 5, last: 20 };
    const c = { first: 25, last: 30 };
    const cover = new VersionCover([a, b, c, { first: 1, last: 30 }]);
    [a, b, c].forEach((s) => cover.add(s, 1));
    expect(cover.uncovered({ first: 1, last: 30 })).toEqual([{ from: 21, to: 24 }]);
    cover.add(b, -1);
    expect(cover.uncovered({ first: 1, last: 30 })).toEqual([{ from: 11, to: 24 }]);
    cover.add(a, -1);
    expect(cover.uncovered({ first: 1, last: 30 })).toEqual([{ from: 1, to: 24 }]);
    cover.add(b, 1);
    expect(cover.uncovered({ first: 5, last: 20 })).toEqual([]);
  });
});
