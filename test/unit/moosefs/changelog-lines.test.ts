import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  lineVersion,
  parseChangelogBytes,
  parseChangelogLine,
  readChangelogLines,
  scanChangelogStream,
  type ChangelogEntry,
} from '../../../lib/moosefs/changelog.js';

describe('the one changelog line parser', () => {
  test('a whole line gives its version, time, operation and arguments (names stay escaped)', () => {
    const line = Buffer.from('7: 1795575880|SYMLINK(1,a%28b%29,target,0,0):13');
    expect(parseChangelogBytes(line)).toEqual({
      version: 7,
      timestamp: 1795575880,
      op: 'SYMLINK',
      args: '1,a%28b%29,target,0,0',
    });
    expect(parseChangelogLine('7: 1795575880|SETTRASHTIME(5,0,600,0)')).toEqual({
      version: 7,
      timestamp: 1795575880,
      op: 'SETTRASHTIME',
    });
  });

  test('a line cut or damaged after its version is refused like the scanner refuses it', () => {
    for (const bad of [
      '7: 1795575880|CREATE(1,f',
      '7: 1795575880|CREATE(1,f):',
      '7: 1795575880|',
      '7: x|A(1)',
      'x: 1|A(1)',
      '',
    ]) {
      expect(parseChangelogLine(bad)).toBeUndefined();
    }
  });

  test('a range of a larger buffer is parsed without copying it', () => {
    const buf = Buffer.from('junk\n8: 1|A(1)\n9: 2|B(2):3\n');
    expect(parseChangelogBytes(buf, 5, 14)).toMatchObject({ version: 8, op: 'A', args: '1' });
    expect(parseChangelogBytes(buf, 15, 26)).toMatchObject({ version: 9, timestamp: 2, op: 'B', args: '2' });
  });

  test('the fast variant reads only the version a line or a file head starts with', () => {
    expect(lineVersion(Buffer.from('1234: 1795575880|CREATE('))).toBe(1234);
    expect(lineVersion('1234: ')).toBe(1234);
    expect(lineVersion('1234:x')).toBeUndefined();
    expect(lineVersion(Buffer.from('xx\n55: 1|A(1)'), 3)).toBe(55);
    expect(lineVersion('')).toBeUndefined();
  });

  test('every problem has a kind: decisions never read its message', async () => {
    const text =
      '1: 1|A(1)\nnope\n2: 1|B(1\n3: 1|C(1)\n3: 1|C(1)\n1: 1|A(1)\n' + 'x'.repeat(1.5 * 2 ** 20) + '\n4: 1|D(1';
    const scan = await scanChangelogStream(Readable.from([Buffer.from(text)]), 'c');
    expect(scan.problems.map((p) => [p.line, p.kind])).toEqual([
      [2, 'unparsable'],
      [3, 'damaged'],
      [5, 'repeated'],
      [6, 'backwards'],
      [7, 'unparsable'],
      [8, 'cut-last-line'],
    ]);
    // Split inside the long line, past MAX_LINE: the scanner drops what it carried.
    const at = text.indexOf('xxx') + 1.2 * 2 ** 20;
    const parts = [Buffer.from(text.slice(0, at)), Buffer.from(text.slice(at))];
    const chunked = await scanChangelogStream(Readable.from(parts), 'c');
    expect(chunked.problems.map((p) => p.kind)).toContain('too-long');
  });
});

describe('reading a file line by line', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lines-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  const read = async (text: string) => {
    const file = path.join(dir, 'c');
    await fs.writeFile(file, text, 'latin1');
    const seen: [string, number | undefined, boolean][] = [];
    await readChangelogLines(file, (raw, line: ChangelogEntry | undefined, cut) => {
      seen.push([raw.toString('latin1'), line?.version, cut]);
      return true;
    });
    return seen;
  };

  test('an empty file has no lines', async () => {
    expect(await read('')).toEqual([]);
  });

  test('a cut last line comes last, flagged, parsed like any other', async () => {
    expect(await read('1: 1|A(1)\n2: 1|B(')).toEqual([
      ['1: 1|A(1)', 1, false],
      ['2: 1|B(', undefined, true],
    ]);
    expect(await read('1: 1|A(1)\n2: 1|B(2)')).toEqual([
      ['1: 1|A(1)', 1, false],
      ['2: 1|B(2)', 2, true],
    ]);
  });

  test('stopping early reads no further line', async () => {
    const file = path.join(dir, 'stop');
    await fs.writeFile(file, '1: 1|A(1)\n2: 1|B(1)\n3: 1|C(1)\n');
    const seen: number[] = [];
    await readChangelogLines(file, (_raw, line) => (seen.push(line!.version), line!.version < 2));
    expect(seen).toEqual([1, 2]);
  });
});
