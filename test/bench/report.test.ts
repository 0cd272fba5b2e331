import { verdict, type CaseResult } from '../../bench/bench-case.js';
import { median, summarize } from '../../bench/measure.js';
import { summarizeProfile } from '../../bench/profile.js';
import { markdownTable } from '../../bench/report.js';

const sample = (seconds: number, rssMb?: number) => ({ seconds, rssMb, code: 0, stdout: '', stderr: '' });

describe('bench figures', () => {
  test('median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  test('a verdict needs every target met: ratio and peak RSS', () => {
    const base = {
      id: 'b',
      title: 'backup',
      status: 'measured' as const,
      figures: {},
      notes: [],
      target: { text: '', maxRatio: 1.25, maxRssMb: 150 },
    };
    const subject = summarize('mfs-jobs', 'x', [sample(1.2, 100), sample(1.1, 160), sample(1.0, 90)]);
    const baseline = summarize('scp', 'y', [sample(1), sample(1), sample(1)]);
    const judged = verdict({ ...base, subject, baseline });
    expect(judged.ratio).toBeCloseTo(1.1);
    expect(judged.met).toBe(false); // one run peaked at 160 MB
    expect(verdict({ ...base, subject: summarize('mfs-jobs', 'x', [sample(1.1, 100)]), baseline }).met).toBe(true);
  });

  test('a job that is not merged shows as such, with no figure of its own', () => {
    const r: CaseResult = {
      id: 'v',
      title: 'verify',
      status: 'not available',
      reason: 'job verify not merged',
      target: { text: '≤ 3× wc -l' },
      figures: {},
      notes: [],
      baseline: summarize('wc -l', 'wc', [sample(0.2)]),
    };
    const row = markdownTable([r]).split('\n')[2]!;
    expect(row).toContain('not available (job verify not merged)');
    expect(row).toContain('`wc -l` | 0.200 | – |');
  });

  test('a CPU profile is summed by function and by module', () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
    const profile = {
      startTime: 0,
      endTime: 1_000_000,
      nodes: [
        { id: 1, callFrame: frame('(idle)', ''), hitCount: 50 },
        { id: 2, callFrame: frame('line', 'file:///repo/dist/lib/changelog.js'), hitCount: 30 },
        { id: 3, callFrame: frame('decrypt', 'file:///repo/node_modules/ssh2/lib/protocol/crypto.js'), hitCount: 20 },
      ],
    };
    const s = summarizeProfile(profile, 'p.cpuprofile');
    expect(s.top[0]).toEqual({ where: '(idle)', percent: 50, ms: 500 });
    expect(s.byModule.map((m) => m.where)).toEqual(['(idle)', 'dist/lib/changelog.js', 'ssh2']);
    expect(s.top[1]!.where).toBe('line (dist/lib/changelog.js:10)');
  });
});
