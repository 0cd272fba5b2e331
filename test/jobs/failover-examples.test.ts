import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { REPO_ROOT } from '../helpers/cli.js';

/** The shipped hook examples are what operators copy: they must at least parse with the real tools. */
describe('failover hook examples', () => {
  test('keepalived.conf passes keepalived --config-test and calls promote/demote', async () => {
    const conf = path.join(REPO_ROOT, 'examples', 'keepalived', 'keepalived.conf');
    const res = await execCapture('keepalived', ['--config-test', '-f', conf], { timeoutMs: 10_000 });
    expect(res.stdout + res.stderr).toBe('');
    expect(res.code).toBe(0);
    const text = await fs.readFile(conf, 'utf8');
    expect(text).toMatch(/^\s*notify_master ".* run promote"$/m);
    expect(text).toMatch(/^\s*notify_backup ".* run demote"$/m);
    expect(text).toMatch(/^\s*notify_fault\s+".* run demote"$/m);
  });

  test('the ucarp scripts are valid sh', async () => {
    for (const script of ['vip-up.sh', 'vip-down.sh']) {
      const res = await execCapture('sh', ['-n', path.join(REPO_ROOT, 'examples', 'ucarp', script)], {
        timeoutMs: 10_000,
      });
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
    }
  });
});
