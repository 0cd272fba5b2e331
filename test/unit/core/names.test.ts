import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTempExclusive, tempNameFor } from '../../../lib/core/atomic.js';
import { plainNameProblem, printable, shownName } from '../../../lib/core/names.js';

describe('names from outside', () => {
  test('only plain file names pass: no path, no dot names, no control characters, bounded length', () => {
    for (const ok of ['metadata.mfs.back', 'changelog_ml.12.mfs', 'sessions.mfs', '..hidden', 'a'.repeat(255), 'żółw'])
      expect(plainNameProblem(ok)).toBeUndefined();
    expect(plainNameProblem('')).toBe('not a file name');
    expect(plainNameProblem('.')).toBe('not a file name');
    expect(plainNameProblem('..')).toBe('not a file name');
    expect(plainNameProblem('../x')).toBe('contains a path separator');
    expect(plainNameProblem('/etc/shadow')).toBe('contains a path separator');
    expect(plainNameProblem('a\u0000b')).toBe('contains a control character');
    expect(plainNameProblem('a\u001b[2J')).toBe('contains a control character');
    expect(plainNameProblem('a\u009bb')).toBe('contains a control character');
    expect(plainNameProblem('a'.repeat(256))).toBe('longer than 255 bytes');
    expect(plainNameProblem('ż'.repeat(128))).toBe('longer than 255 bytes');
    expect(plainNameProblem(42)).toBe('not a string');
  });

  test('printable makes control characters visible and keeps the rest; shownName quotes and truncates', () => {
    expect(printable('evil\u001b]0;x\u0007 \\ ok')).toBe('evil\\x1b]0;x\\x07 \\\\ ok');
    expect(printable('\u009b\r\n\t')).toBe('\\x9b\\x0d\\x0a\\x09');
    expect(shownName('a'.repeat(100))).toBe(JSON.stringify(`${'a'.repeat(64)}…`));
    expect(shownName('x\u001by')).toBe('"x\\\\x1by"');
  });

  test('temp names are unpredictable (random, not pid and clock) and the temp file is created 0600', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-names-'));
    try {
      const target = path.join(dir, 'state.json');
      const a = tempNameFor(target);
      expect(path.basename(a)).toMatch(new RegExp(`^\\.state\\.json\\.tmp-${process.pid}-[0-9a-f]{16}$`));
      expect(tempNameFor(target)).not.toBe(a);
      const { tmp, handle } = await createTempExclusive(target);
      await handle.close();
      expect((await fs.lstat(tmp)).mode & 0o777).toBe(0o600);
      await fs.rm(tmp);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
