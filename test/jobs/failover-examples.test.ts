import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { REPO_ROOT } from '../helpers/cli.js';

/** The shipped hook examples are what operators copy: they must at least parse with the real tools. */
describe('failover hook examples', () => {
  test('keepalived.conf passes keepalived --config-test and calls the notify script for each state', async () => {
    const conf = path.join(REPO_ROOT, 'examples', 'keepalived', 'keepalived.conf');
    const res = await execCapture('keepalived', ['--config-test', '-f', conf], { timeoutMs: 10_000 });
    expect(res.stdout + res.stderr).toBe('');
    expect(res.code).toBe(0);
    const text = await fs.readFile(conf, 'utf8');
    expect(text).toMatch(/^\s*notify_master "\/etc\/mfs-jobs\/mfs-jobs-notify\.sh master"$/m);
    expect(text).toMatch(/^\s*notify_backup "\/etc\/mfs-jobs\/mfs-jobs-notify\.sh backup"$/m);
    expect(text).toMatch(/^\s*notify_fault\s+"\/etc\/mfs-jobs\/mfs-jobs-notify\.sh fault"$/m);
    // The script maps them to promote and demote (run for real in test/failover/vip-keepalived.test.ts).
    const script = await fs.readFile(path.join(REPO_ROOT, 'examples', 'keepalived', 'mfs-jobs-notify.sh'), 'utf8');
    expect(script).toMatch(/^\s*master\)\n\s*job=promote$/m);
    expect(script).toMatch(/^\s*backup \| fault\)\n\s*job=demote$/m);
  });

  test('the ucarp and keepalived scripts are valid sh', async () => {
    for (const script of ['ucarp/vip-up.sh', 'ucarp/vip-down.sh', 'keepalived/mfs-jobs-notify.sh']) {
      const res = await execCapture('sh', ['-n', path.join(REPO_ROOT, 'examples', script)], {
        timeoutMs: 10_000,
      });
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
    }
  });
});
