import { Readable } from 'node:stream';
import { scanChangelogStream } from '../../../lib/moosefs/changelog.js';
import { refuseDamagedChangelog } from '../../../lib/prune/target.js';
import { lineVersion as firstLineVersion } from '../../../lib/moosefs/changelog.js';

const scan = (text: string) => scanChangelogStream(Readable.from([Buffer.from(text)]), 'c');

describe('what makes prune refuse a changelog', () => {
  test('a cut last line is tolerated only in the file MooseFS is appending to', async () => {
    const cut = await scan('10: 1795575880|ACQUIRE(1,3)\n11: 17955');
    expect(() => refuseDamagedChangelog(cut, 'ml1:changelog_ml.0.mfs', true)).not.toThrow();
    expect(() => refuseDamagedChangelog(cut, 'ml1:changelog_ml.3.mfs', false)).toThrow(
      /ml1:changelog_ml\.3\.mfs line 2: last line is cut off/,
    );
  });

  test('garbage or versions going backwards are refused even in the current file', async () => {
    const garbage = await scan('10: 1795575880|ACQUIRE(1,3)\nnot a line\n11: 1795575880|ACQUIRE(1,4)\n');
    expect(() => refuseDamagedChangelog(garbage, 'f', true)).toThrow(/f line 2: unparsable line/);
    const backwards = await scan('10: 1795575880|ACQUIRE(1,3)\n9: 1795575880|ACQUIRE(1,4)\n');
    expect(() => refuseDamagedChangelog(backwards, 'f', true)).toThrow(
      /line 2: version 9 repeated|line 2: version 9 goes backwards/,
    );
  });

  test('a forward jump inside a file is a hole, not damage: the chain logic handles it', async () => {
    const jump = await scan('10: 1795575880|ACQUIRE(1,3)\n20: 1795575880|ACQUIRE(1,4)\n');
    expect(() => refuseDamagedChangelog(jump, 'f', false)).not.toThrow();
    expect(jump.segments).toEqual([
      { first: 10, last: 10 },
      { first: 20, last: 20 },
    ]);
  });

  test('a changelog is recognised again by the version of its first line', () => {
    expect(firstLineVersion(Buffer.from('1234: 1795575880|CREATE('))).toBe(1234);
    expect(firstLineVersion(Buffer.from('garbage'))).toBeUndefined();
  });
});
