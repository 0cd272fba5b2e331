import { cronProblem, nextRun } from '../../../lib/core/schedule.js';

describe('schedules', () => {
  test('next run in the configured zone', () => {
    const from = new Date('2026-11-25T22:07:30Z');
    expect(nextRun('*/5 * * * *', 'UTC', from)?.toISO()).toBe('2026-11-25T22:10:00.000Z');
    expect(nextRun('0 3 * * *', 'Europe/Warsaw', from)?.toISO()).toBe('2026-11-26T03:00:00.000+01:00');
    expect(nextRun('* * * * * *', 'UTC', from)?.toISO()).toBe('2026-11-25T22:07:31.000Z');
    expect(nextRun('15 4 * * 0', 'UTC', from)?.toISO()).toBe('2026-11-29T04:15:00.000Z');
  });

  test('across a DST change (Europe/Warsaw, 2027-03-28 02:00 does not exist)', () => {
    const from = new Date('2027-03-27T12:00:00Z');
    expect(nextRun('30 2 * * *', 'Europe/Warsaw', from)?.toISO()).toBe('2027-03-29T02:30:00.000+02:00');
  });

  test('invalid expressions are explained', () => {
    expect(cronProblem('*/5 * * * *')).toBeUndefined();
    expect(cronProblem('every hour')).toMatch(/fields/);
  });
});
