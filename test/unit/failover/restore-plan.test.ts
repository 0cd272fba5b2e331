import {
  bestPlan,
  chainFrom,
  choosePlan,
  groupByMetaid,
  restorable,
  type PromoteChangelog,
  type PromoteImage,
  type PromoteInventory,
} from '../../../lib/failover/restore-plan.js';
import { addressesFromIpOutput } from '../../../lib/failover/vip.js';

const ID1 = '6B0766315A463B07';
const ID2 = '0000000000000BAD';

function image(source: string, version: number, o: Partial<PromoteImage> = {}): PromoteImage {
  return {
    source,
    name: 'metadata_ml.mfs.back',
    path: `/x/${source}/img`,
    size: 1000,
    version,
    metaid: ID1,
    empty: false,
    local: false,
    ...o,
  };
}

function changelog(
  source: string,
  name: string,
  runs: [number, number][],
  o: Partial<PromoteChangelog> = {},
): PromoteChangelog {
  return {
    source,
    name,
    path: `/x/${source}/${name}`,
    size: 100,
    local: false,
    segments: runs.map(([first, last]) => ({ first, last })),
    scanned: true,
    clean: runs.length === 1,
    ...o,
  };
}

function inventory(
  name: string,
  kind: 'metalogger' | 'master' | 'snapshot',
  images: PromoteImage[],
  changelogs: PromoteChangelog[],
  metaid: string | null = ID1,
): PromoteInventory {
  return { source: { name, kind, local: false }, metaid: metaid ?? undefined, images, changelogs, notes: [] };
}

describe('choosing what a promotion restores', () => {
  test('the chain takes the file reaching furthest at each step: fewest files', () => {
    const files = [
      changelog('ml1', 'changelog_ml.2.mfs', [[100, 150]]),
      changelog('ml1', 'changelog_ml.1.mfs', [[151, 200]]),
      changelog('master', 'changelog.1.mfs', [[120, 210]]),
      changelog('ml1', 'changelog_ml.0.mfs', [[201, 230]]),
    ];
    const { steps, reached } = chainFrom(130, files);
    expect(steps.map((s) => `${s.changelog.source}:${s.changelog.name}`)).toEqual([
      'master:changelog.1.mfs',
      'ml1:changelog_ml.0.mfs',
    ]);
    expect(reached).toBe(231);
  });

  test('a hole stops the chain; a file with an inner hole counts only up to it', () => {
    const files = [
      changelog('ml1', 'changelog_ml.0.mfs', [
        [100, 150],
        [160, 200],
      ]),
    ];
    const { steps, reached } = chainFrom(120, files);
    expect(reached).toBe(151);
    expect(steps[0]!.segment).toEqual({ first: 100, last: 150 });
  });

  test('local beats remote on equal reach (no transfer)', () => {
    const files = [changelog('remote', 'a', [[1, 50]]), changelog('local', 'b', [[1, 50]], { local: true })];
    expect(chainFrom(1, files).steps[0]!.changelog.source).toBe('local');
  });

  test("sources combine: the newest image rolls forward with another source's changelogs", () => {
    const g = groupByMetaid([
      inventory('store', 'snapshot', [image('store', 180)], []),
      inventory(
        'ml1',
        'metalogger',
        [image('ml1', 100)],
        [
          changelog('ml1', 'changelog_ml.0.mfs', [[100, 170]]),
          changelog('ml1', 'changelog_ml_back.0.mfs', [[172, 260]]),
        ],
      ),
      inventory('master', 'master', [], [changelog('master', 'changelog.0.mfs', [[100, 300]])]),
    ]).groups;
    const plan = bestPlan(g[0]!)!;
    // The snapshot's image (180) has no changelogs of its own: the master's 100..300 carry it to 301.
    expect(plan.reached).toBe(301);
    expect(plan.image.version).toBe(180);
    expect(plan.newest).toBe(301);
    expect(plan.holes).toEqual([]);
  });

  test('reports holes between what is reachable and the newest version seen', () => {
    const g = groupByMetaid([
      inventory(
        'ml1',
        'metalogger',
        [image('ml1', 100)],
        [changelog('ml1', 'a', [[100, 149]]), changelog('ml1', 'b', [[151, 200]])],
      ),
    ]).groups;
    const plan = bestPlan(g[0]!)!;
    expect(plan).toMatchObject({ reached: 150, newest: 201, holes: [{ from: 150, to: 150 }] });
  });

  test('an empty image (new filesystem) counts as version 1 and needs line 1', () => {
    const g = groupByMetaid([
      inventory(
        'ml1',
        'metalogger',
        [image('ml1', 1, { empty: true, metaid: '' })],
        [changelog('ml1', 'back', [[1, 1]]), changelog('ml1', 'cur', [[2, 40]])],
      ),
    ]).groups;
    expect(bestPlan(g[0]!)).toMatchObject({ reached: 41 });
    const missingLine1 = groupByMetaid([
      inventory(
        'ml1',
        'metalogger',
        [image('ml1', 1, { empty: true, metaid: '' })],
        [changelog('ml1', 'cur', [[2, 40]])],
      ),
    ]).groups;
    expect(bestPlan(missingLine1[0]!)).toMatchObject({ reached: 1, steps: [] });
  });

  test('never mixes metaids: each filesystem is planned alone, the furthest wins, the other is reported', () => {
    const { groups, excluded } = groupByMetaid([
      inventory('ml1', 'metalogger', [image('ml1', 500)], [changelog('ml1', 'c', [[500, 900]])], ID1),
      inventory(
        'stray',
        'metalogger',
        [image('stray', 950, { metaid: ID2 })],
        [changelog('stray', 'c', [[950, 960]])],
        ID2,
      ),
      inventory('fresh', 'metalogger', [], [changelog('fresh', 'c', [[800, 1000]])], null),
    ]);
    expect(groups.map((g) => g.metaid).sort()).toEqual([ID2, ID1].sort());
    expect(excluded).toEqual([{ source: 'fresh', reason: expect.stringContaining('metaid unknown') }]);
    const choice = choosePlan(groups)!;
    expect(choice.plan.metaid).toBe(ID2);
    expect(choice.plan.reached).toBe(961);
    expect(choice.others).toEqual([{ metaid: ID1, sources: ['ml1'], reached: 901 }]);
    expect(choosePlan(groups, ID1.toLowerCase())!.plan).toMatchObject({ metaid: ID1, reached: 901 });
  });

  test('a source of unknown metaid joins the only filesystem there is', () => {
    const { groups, excluded } = groupByMetaid([
      inventory('ml1', 'metalogger', [image('ml1', 500)], [changelog('ml1', 'c', [[500, 900]])], ID1),
      inventory('fresh', 'metalogger', [], [changelog('fresh', 'c', [[850, 1000]])], null),
    ]);
    expect(excluded).toEqual([]);
    expect(bestPlan(groups[0]!)!.reached).toBe(1001);
  });

  test('sources that failed or hold nothing are left out', () => {
    const failed: PromoteInventory = { ...inventory('dead', 'master', [], []), error: 'host unreachable' };
    expect(groupByMetaid([failed]).groups).toEqual([]);
    expect(choosePlan([])).toBeUndefined();
  });
});

describe('ip -o addr', () => {
  test('lists v4 and v6 addresses without prefix', () => {
    const out = [
      '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet 10.0.0.100/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever',
    ].join('\n');
    expect(addressesFromIpOutput(out)).toEqual(['127.0.0.1', '10.0.0.1', '10.0.0.100', 'fe80::1']);
  });
});

describe('may a copy be considered: only when the sources read cannot restore', () => {
  test("a live image of the cluster's filesystem is a restore point; an empty image alone, another metaid or an unreachable source is not", () => {
    const ml = inventory(
      'ml1',
      'metalogger',
      [image('ml1', 100)],
      [changelog('ml1', 'changelog_ml.0.mfs', [[100, 120]])],
    );
    expect(restorable([ml])).toBe(true);
    expect(restorable([ml], [ID1])).toBe(true);
    expect(restorable([ml], [ID2])).toBe(false);
    expect(restorable([{ ...ml, error: 'timed out' }])).toBe(false);
    const fresh = inventory(
      'ml1',
      'metalogger',
      [image('ml1', 1, { empty: true, metaid: '' })],
      [changelog('ml1', 'changelog_ml.0.mfs', [[150, 160]])],
      null,
    );
    expect(restorable([fresh])).toBe(false);
    // An empty image with the whole history from line 1 is a restore point (a young filesystem).
    expect(
      restorable([
        inventory(
          'ml1',
          'metalogger',
          [image('ml1', 1, { empty: true, metaid: '' })],
          [changelog('ml1', 'changelog_ml.0.mfs', [[1, 5]])],
        ),
      ]),
    ).toBe(true);
    expect(restorable([])).toBe(false);
  });
});
