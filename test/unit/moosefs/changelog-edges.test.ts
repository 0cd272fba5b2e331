import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  EDGE_WINDOWS,
  firstLineIn,
  lastLineIn,
  metaidSetBy,
  readChangelogEdges,
} from '../../../lib/moosefs/changelog-edges.js';
import { MAX_LINE } from '../../../lib/moosefs/changelog.js';
import { localSource, type FileSource } from '../../../lib/transport/remote.js';

const ID1 = '6B0766315A463B07';
const line = (v: number, name = `f${v}`) => `${v}: 1795647000|CREATE(1,${name},1,438,18,0,0,0):${v + 1}\n`;
const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => line(from + i)).join('');

describe('the edges of a changelog, from a window of bytes', () => {
  const head = Buffer.from('1: 1795647025|SETMETAID(7712245249049246471)\n2: 1795647028|SESADD(#1,1):1\n');

  test('first line, last complete line, metaid from SETMETAID', () => {
    const tail = Buffer.from('ME(1,d9,2,511,18,0,0,0):10\n12: 1795647099|CREATE(1,d10,2,511,18,0,0,0):11\n13: 17956');
    const first = firstLineIn(head).line!;
    expect(first).toMatchObject({ version: 1, op: 'SETMETAID' });
    expect(metaidSetBy(first)).toBe(ID1);
    expect(lastLineIn(tail, false).line).toMatchObject({ version: 12, timestamp: 1795647099, op: 'CREATE' });
  });

  test('a whole small file is its own tail', () => {
    expect(lastLineIn(head, true)).toMatchObject({ whole: true, line: { version: 2, timestamp: 1795647028 } });
  });

  test('no complete line in the window: not whole (a larger window may hold one); garbage: no line', () => {
    expect(lastLineIn(Buffer.from('no newline here'), false)).toEqual({ whole: false });
    expect(lastLineIn(Buffer.from('5: 1|A(1)\n'), false)).toEqual({ whole: false });
    expect(firstLineIn(Buffer.from('12: 1|SETMETA'))).toEqual({ whole: false });
    expect(firstLineIn(Buffer.from('garbage\n'))).toEqual({ whole: true, line: undefined });
    expect(metaidSetBy(lastLineIn(head, true).line!)).toBeUndefined();
  });

  test('a line being written, or cut by the window, does not count', () => {
    expect(lastLineIn(Buffer.from('1: 1|A(1)\n2: 1|B(1)\n'), true).line?.version).toBe(2);
    expect(lastLineIn(Buffer.from('1: 1|A(1)\n2: 1|B(1)\n3: 1|C('), true).line?.version).toBe(2);
    expect(lastLineIn(Buffer.from('1: 1|A(1)\n'), true).line?.version).toBe(1);
    expect(lastLineIn(Buffer.from(': 1|A(1)\n6: 1|B(1)\n'), false).line?.version).toBe(6);
    expect(firstLineIn(Buffer.from('12: 1|SETMETAID(1)\n13: 1|X(1)\n')).line?.version).toBe(12);
  });

  test('a whole line that is damaged (no closing parenthesis) is no edge: what the scanner refuses', () => {
    expect(lastLineIn(Buffer.from('1: 1|A(1)\n2: 1|B(1\n'), true)).toEqual({ whole: true, line: undefined });
  });
});

describe('reading the edges of a file through the window policy', () => {
  let dir: string;
  let files: FileSource;
  const write = async (name: string, text: string) => {
    const file = path.join(dir, name);
    await fs.writeFile(file, text, 'latin1');
    return { file, size: Buffer.byteLength(text, 'latin1') };
  };
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'edges-'));
    files = localSource('test');
  });
  afterAll(async () => {
    await files.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('an empty file has no edges', async () => {
    const { file, size } = await write('empty', '');
    expect(await readChangelogEdges(files, file, size)).toEqual({});
  });

  test('a file smaller than the window: both edges from one read', async () => {
    const { file, size } = await write('small', lines(7, 9));
    expect(size).toBeLessThan(EDGE_WINDOWS[0]!);
    const edges = await readChangelogEdges(files, file, size);
    expect([edges.first?.version, edges.last?.version]).toEqual([7, 9]);
  });

  test('a cut last line: the line before it is the last edge; a file of one cut line has none', async () => {
    const cut = await write('cut', lines(1, 500) + '501: 1795647000|CREATE(1,f5');
    expect(cut.size).toBeGreaterThan(EDGE_WINDOWS[0]!);
    const edges = await readChangelogEdges(files, cut.file, cut.size);
    expect([edges.first?.version, edges.last?.version]).toEqual([1, 500]);
    const only = await write('only-cut', '1: 1795647000|CREATE(1,f');
    expect(await readChangelogEdges(files, only.file, only.size)).toEqual({ first: undefined, last: undefined });
  });

  test('a line longer than the first window is read through the larger one', async () => {
    const long = 'x'.repeat(3 * EDGE_WINDOWS[0]!);
    const { file, size } = await write('long', line(1, `a${long}`) + lines(2, 300) + line(301, `z${long}`));
    const edges = await readChangelogEdges(files, file, size);
    expect([edges.first?.version, edges.last?.version]).toEqual([1, 301]);
    expect(edges.first?.args).toContain(long);
  });

  test('a line longer than MAX_LINE is no edge (the scanner calls it damage), in any window', async () => {
    const huge = 'y'.repeat(MAX_LINE + 10);
    const { file, size } = await write('huge', line(1, huge) + lines(2, 3) + line(4, huge));
    expect(await readChangelogEdges(files, file, size)).toEqual({ first: undefined, last: undefined });
  });

  test('only the edge asked for is read', async () => {
    const { file, size } = await write('which', lines(40, 60));
    expect(await readChangelogEdges(files, file, size, { head: true, tail: false })).toEqual({
      first: expect.objectContaining({ version: 40 }),
    });
    expect(await readChangelogEdges(files, file, size, { head: false, tail: true })).toEqual({
      last: expect.objectContaining({ version: 60 }),
    });
  });
});
