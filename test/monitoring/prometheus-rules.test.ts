import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { METRIC_PREFIX, metricSpec } from '../../lib/core/metrics.js';
import { REPO_ROOT } from '../helpers/cli.js';

const DIR = path.join(REPO_ROOT, 'examples', 'prometheus');

/** examples/prometheus/mfs-jobs.rules.yml, checked by Debian's promtool (package prometheus). */
describe('the example alerting rules', () => {
  test('promtool check rules accepts them', async () => {
    const res = await execCapture('promtool', ['check', 'rules', 'mfs-jobs.rules.yml'], { cwd: DIR });
    expect(res.stdout).toContain('SUCCESS: 7 rules found');
    expect(res.code).toBe(0);
  });

  test('promtool test rules: each alert fires when it should, and only then', async () => {
    const res = await execCapture('promtool', ['test', 'rules', 'mfs-jobs.rules.test.yml'], { cwd: DIR });
    expect(`${res.stdout}${res.stderr}`).toMatch(/SUCCESS/);
    expect(res.code).toBe(0);
  });

  test('they use registered metrics only', async () => {
    const text = await fs.readFile(path.join(DIR, 'mfs-jobs.rules.yml'), 'utf8');
    const used = [...new Set([...text.matchAll(/\bmfs_jobs_([a-z0-9_]+)\{/g)].map((m) => m[1]!))];
    expect(used.length).toBeGreaterThanOrEqual(5);
    expect(used.filter((n) => !metricSpec(n)).map((n) => METRIC_PREFIX + n)).toEqual([]);
    for (const alert of [
      'MfsMetaloggerLagging',
      'MfsSnapshotTooOld',
      'MfsDrillFailed',
      'MfsPromoteHappened',
      'MfsStandbyNotReady',
    ])
      expect(text).toContain(`alert: ${alert}`);
  });
});
