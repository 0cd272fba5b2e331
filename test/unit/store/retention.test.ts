import { planStoreRetention, selectRetention } from '../../../lib/store/retention.js';

const policy = (p: Partial<{ keepLast: number; keepHourly: number; keepDaily: number; keepWeekly: number }>) => ({
  keepLast: 0,
  keepHourly: 0,
  keepDaily: 0,
  keepWeekly: 0,
  ...p,
});
const snap = (iso: string) => ({ id: iso, time: new Date(iso) });
const kept = (decisions: { id: string; keep: boolean }[]) => decisions.filter((d) => d.keep).map((d) => d.id);

describe('retention selection (restic forget semantics)', () => {
  const series = [
    '2026-03-02T10:50:00Z',
    '2026-03-02T10:20:00Z',
    '2026-03-02T09:40:00Z',
    '2026-03-01T23:00:00Z',
    '2026-02-25T12:00:00Z',
    '2026-02-18T12:00:00Z',
    '2026-02-17T12:00:00Z',
  ].map(snap);

  test('keep-last keeps the N newest, whatever the input order', () => {
    expect(kept(selectRetention([...series].reverse(), policy({ keepLast: 2 })))).toEqual([
      '2026-03-02T10:50:00Z',
      '2026-03-02T10:20:00Z',
    ]);
  });

  test('keep-hourly keeps the newest snapshot of each of the N most recent hours that have one', () => {
    expect(kept(selectRetention(series, policy({ keepHourly: 3 })))).toEqual([
      '2026-03-02T10:50:00Z',
      '2026-03-02T09:40:00Z',
      '2026-03-01T23:00:00Z',
    ]);
  });

  test('keep-daily and keep-weekly bucket by day and by ISO week (Monday first)', () => {
    expect(kept(selectRetention(series, policy({ keepDaily: 3 })))).toEqual([
      '2026-03-02T10:50:00Z',
      '2026-03-01T23:00:00Z',
      '2026-02-25T12:00:00Z',
    ]);
    // Sunday 1 March belongs to the week of Monday 23 February; the 17th and 18th share one week.
    expect(kept(selectRetention(series, policy({ keepWeekly: 5 })))).toEqual([
      '2026-03-02T10:50:00Z',
      '2026-03-01T23:00:00Z',
      '2026-02-18T12:00:00Z',
    ]);
  });

  test('rules add up, and each kept snapshot says why', () => {
    const d = selectRetention(series, policy({ keepLast: 1, keepHourly: 3, keepDaily: 3, keepWeekly: 3 }));
    expect(d.map((x) => [x.id.slice(5, 16), x.keep ? x.reasons.join(',') : 'remove'])).toEqual([
      ['03-02T10:50', 'last,hourly,daily,weekly'],
      ['03-02T10:20', 'remove'],
      ['03-02T09:40', 'hourly'],
      ['03-01T23:00', 'hourly,daily,weekly'],
      ['02-25T12:00', 'daily'],
      ['02-18T12:00', 'weekly'],
      ['02-17T12:00', 'remove'],
    ]);
  });

  test('buckets are cut in the configured time zone', () => {
    // 22:30 and 23:30 UTC are one UTC day, but 23:30 and 00:30 of the next day in Warsaw (UTC+1).
    const two = [snap('2026-01-10T23:30:00Z'), snap('2026-01-10T22:30:00Z')];
    expect(kept(selectRetention(two, policy({ keepDaily: 5 }), 'UTC'))).toHaveLength(1);
    expect(kept(selectRetention(two, policy({ keepDaily: 5 }), 'Europe/Warsaw'))).toHaveLength(2);
  });

  test('never an empty keep set: with every rule at 0 the newest stays', () => {
    expect(kept(selectRetention(series, policy({})))).toEqual(['2026-03-02T10:50:00Z']);
    expect(selectRetention([], policy({ keepLast: 3 }))).toEqual([]);
  });

  test('store retention groups by source and leaves sources that are not named alone', () => {
    const s = (id: string, source: string) => ({ id, manifest: { source: { name: source }, startedAt: id } });
    const snaps = [
      s('2026-01-01T00:00:00Z', 'm1'),
      s('2026-01-02T00:00:00Z', 'm1'),
      s('2026-01-03T00:00:00Z', 'ml1'),
      s('2026-01-04T00:00:00Z', 'ml1'),
      s('2026-01-05T00:00:00Z', 'm2'),
    ];
    const plan = planStoreRetention(snaps, ['m1', 'ml1'], policy({ keepLast: 1 }));
    expect(plan.remove.sort()).toEqual(['2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z']);
    expect(plan.groups.map((g) => g.source)).toEqual(['m1', 'ml1']);
  });
});
