import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  METRICS,
  METRIC_PREFIX,
  metric,
  metricSpec,
  namingProblem,
  type Metric,
  type MetricName,
} from '../../../lib/core/metrics.js';
import { nagiosLine, prometheusText } from '../../../lib/core/output.js';
import { REPO_ROOT } from '../../helpers/cli.js';
import { PERFDATA_ITEM as PERFDATA, perfItems } from '../../monitoring/perfdata.js';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('the metric registry (lib/core/metrics.ts)', () => {
  test('every name follows Prometheus naming rules (base units, _seconds, _bytes, _total only for counters)', () => {
    const problems = Object.entries(METRICS)
      .map(([name, spec]) => [name, namingProblem(name, spec)])
      .filter(([, p]) => p);
    expect(problems).toEqual([]);
  });

  test('the rules catch what they should', () => {
    expect(namingProblem('rto', { type: 'gauge', unit: 's', help: 'x.' })).toMatch(/_seconds/);
    expect(namingProblem('fetched', { type: 'gauge', unit: 'B', help: 'x.' })).toMatch(/_bytes/);
    expect(namingProblem('runs', { type: 'counter', help: 'x.' })).toMatch(/_total/);
    expect(namingProblem('lag_ms', { type: 'gauge', help: 'x.' })).toBeUndefined();
    expect(namingProblem('lag_milliseconds', { type: 'gauge', help: 'x.' })).toMatch(/seconds/);
    expect(namingProblem('Lag', { type: 'gauge', help: 'x.' })).toMatch(/snake_case/);
  });

  test('jobs and verdicts emit registered metrics only, never with a HELP of their own', async () => {
    const files = [...(await sources(path.join(REPO_ROOT, 'jobs'))), ...(await sources(path.join(REPO_ROOT, 'lib')))];
    const unknown: string[] = [];
    const inlineHelp: string[] = [];
    for (const file of files) {
      const text = await fs.readFile(file, 'utf8');
      for (const m of text.matchAll(/\bmetric\('([^']+)'/g))
        if (!metricSpec(m[1]!)) unknown.push(`${path.relative(REPO_ROOT, file)}: ${m[1]}`);
      // A metric literal of the old kind: `{ name: '…', value: … }` with or without help.
      for (const m of text.matchAll(/\{\s*name:\s*'([a-z_]+)',\s*value:/g))
        inlineHelp.push(`${path.relative(REPO_ROOT, file)}: ${m[1]}`);
      if (!file.endsWith(path.join('core', 'metrics.ts')))
        for (const m of text.matchAll(/\bhelp:\s*['`]/g))
          inlineHelp.push(`${path.relative(REPO_ROOT, file)}: help at ${m.index}`);
    }
    expect(unknown).toEqual([]);
    expect(inlineHelp).toEqual([]);
  });

  test('a textfile refuses a metric that is not in the registry', () => {
    const rogue = { name: 'made_up' as MetricName, value: 1 } satisfies Metric;
    expect(() => prometheusText('backup', { status: 'OK', summary: 'x', metrics: [rogue] }, new Date(), 5)).toThrow(
      /made_up.*not declared in lib\/core\/metrics\.ts/,
    );
  });

  test('two jobs writing the same metric write the same HELP and TYPE', () => {
    const a = prometheusText(
      'backup',
      { status: 'OK', summary: 'x', metrics: [metric('snapshot_age_seconds', 5, { labels: { source: 'master' } })] },
      new Date(),
      5,
    );
    const b = prometheusText(
      'verify',
      { status: 'OK', summary: 'x', metrics: [metric('snapshot_age_seconds', 7, { warn: 1, crit: 2 })] },
      new Date(),
      5,
    );
    const meta = (t: string) => t.split('\n').filter((l) => l.startsWith('# ') && l.includes('snapshot_age_seconds'));
    expect(meta(a)).toEqual(meta(b));
    expect(meta(a)).toEqual([
      `# HELP ${METRIC_PREFIX}snapshot_age_seconds ${METRICS.snapshot_age_seconds.help}`,
      `# TYPE ${METRIC_PREFIX}snapshot_age_seconds gauge`,
    ]);
    expect(b).toContain('mfs_jobs_snapshot_age_seconds{job="verify"} 7');
  });

  test('the unit comes from the registry', () => {
    expect(metric('rto_seconds', 1.5)).toEqual({ name: 'rto_seconds', value: 1.5, unit: 's' });
    expect(metric('lag_versions', 3, { warn: 100, crit: 1000 })).toEqual({
      name: 'lag_versions',
      value: 3,
      warn: 100,
      crit: 1000,
    });
  });
});

describe('Nagios perfdata (plugin guidelines)', () => {
  const line = (metrics: Metric[], summary = 'fine') => nagiosLine('verify', { status: 'WARNING', summary, metrics });
  const perf = perfItems;

  test("every item reads 'label'=value[UOM];warn;crit", () => {
    const l = line([
      metric('lag_versions', 12, { warn: 100, crit: 1000, labels: { metalogger: 'ml1' } }),
      metric('lag_seconds', NaN, { warn: 60, crit: 600, labels: { metalogger: 'ml 2' } }),
      metric('holes', 0, { crit: 0, labels: { metalogger: "it's=odd" } }),
      metric('copied_bytes', 1234),
      metric('rto_seconds', 0.000000123),
      metric('restored_files', 1e21),
    ]);
    for (const p of perf(l)) expect(p).toMatch(PERFDATA);
    expect(perf(l).slice(0, 4)).toEqual([
      'ml1_lag_versions=12;100;1000',
      "'ml 2_lag_seconds'=U;60;600",
      'it_s_odd_holes=0;;0',
      'copied_bytes=1234B',
    ]);
    expect(perf(l).slice(4)).toEqual(['rto_seconds=0.000000123s', 'restored_files=1000000000000000000000']);
  });

  test('a | in the summary cannot start the perfdata early', () => {
    expect(line([metric('holes', 1)], 'a | b')).toBe('MFS VERIFY WARNING - a / b | holes=1');
  });
});
