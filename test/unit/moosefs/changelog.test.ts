import { Readable } from 'node:stream';
import { ChangelogScanner, parseChangelogLine, scanChangelogStream } from '../../../lib/moosefs/changelog.js';

const lines = (from: number, to: number) =>
  Array.from(
    { length: to - from + 1 },
    (_, i) => `${from + i}: 1795575880|CREATE(1,f${from + i},1,438,18,0,0,0):${from + i + 1}\n`,
  ).join('');

function streamOf(text: string, chunk = 7): Readable {
  const buf = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  return Readable.from(parts);
}

describe('changelog scanning', () => {
  test('parses a real changelog line', () => {
    expect(parseChangelogLine('3: 1795575880|CREATE(1,d1,2,511,18,0,0,0):2')).toEqual({
      version: 3,
      timestamp: 1795575880,
      op: 'CREATE',
    });
    expect(parseChangelogLine('garbage')).toBeUndefined();
  });

  test('a contiguous file is one segment, whatever the chunking', async () => {
    const scan = await scanChangelogStream(streamOf(lines(5, 500), 13), 'c');
    expect(scan).toMatchObject({
      first: 5,
      last: 500,
      lines: 496,
      segments: [{ first: 5, last: 500 }],
      problems: [],
      truncatedLastLine: false,
      lastTimestamp: 1795575880,
    });
  });

  test('a deleted line splits the file into two segments', async () => {
    const text = lines(1, 49) + lines(51, 60);
    const scan = await scanChangelogStream(streamOf(text), 'c');
    expect(scan.segments).toEqual([
      { first: 1, last: 49 },
      { first: 51, last: 60 },
    ]);
  });

  test('a cut last line, garbage and a repeated line are problems with line numbers', async () => {
    const text = lines(1, 3) + 'not a changelog line\n' + '3: 1795575880|ACQUIRE(1,3)\n' + '4: 17955';
    const scan = await scanChangelogStream(streamOf(text), 'c');
    expect(scan.truncatedLastLine).toBe(true);
    expect(scan.problems.map((p) => p.line)).toEqual([4, 5, 6]);
    expect(scan.problems[1]!.reason).toMatch(/repeated/);
    expect(scan.last).toBe(3);
  });

  test('a line over 1 MiB is a problem; the lines after it still count, whatever the chunking', async () => {
    const text = lines(1, 3) + 'x'.repeat(1.5 * 2 ** 20) + '\n' + lines(4, 6);
    for (const chunk of [65_536, 1 << 20, 3_000_000]) {
      const scan = await scanChangelogStream(streamOf(text, chunk), 'c');
      expect(scan.problems[0]!.reason).toMatch(chunk < 2 ** 20 ? /longer than/ : /longer than|unparsable line/);
      expect(scan).toMatchObject({ first: 1, last: 6, segments: [{ first: 1, last: 6 }], truncatedLastLine: false });
    }
  });

  test('a bad line is named by its number only: its content (file names, escape sequences) is never quoted', async () => {
    const hostile = ['secret-name \u001b]0;owned\u0007', '10: 1795575880|CREATE(1,secret\u001b[2J'];
    for (const line of hostile) {
      const scan = await scanChangelogStream(streamOf(lines(1, 9) + line + '\n' + lines(11, 20)), 'c');
      expect(scan.problems.map((p) => p.line)).toEqual([10]);
      expect(scan.problems[0]!.reason).not.toMatch(/secret|\u001b|owned/);
    }
  });

  test('a line cut in the middle of the file is a problem, not a version (mfsmaster -a calls it a hole)', async () => {
    const cut = [
      '10: 1795575880|CREATE(1,f10',
      '10: 1795575880|CREATE(1,f10,1,438,18,0,0,0):',
      '10: 1795575880|CREA',
      '10: 1795575880|CREATE(1,f10,1,438,18,0,0,0):1(1',
    ];
    for (const line of cut) {
      const scan = await scanChangelogStream(streamOf(lines(1, 9) + line + '\n' + lines(11, 20)), 'c');
      expect(scan.problems).toEqual([
        { kind: 'damaged', line: 10, reason: 'unparsable line (cut off or damaged) at version 10' },
      ]);
      expect(scan.segments).toEqual([
        { first: 1, last: 9 },
        { first: 11, last: 20 },
      ]);
    }
    const whole = [
      '10: 1795575880|ACQUIRE(1,3)',
      '10: 1795575880|SYMLINK(1,sym,target with %28parens%29%2C and %25,0,0):13',
      '10: 1795575880|CREATE(1,g:h|i,1,438,18,0,0,0):5',
    ];
    for (const line of whole)
      expect((await scanChangelogStream(streamOf(lines(1, 9) + line + '\n' + lines(11, 20)), 'c')).problems).toEqual(
        [],
      );
  });

  // Issue #28: the scanner reads the common line (well formed, the next version) inline in its own loop, everything
  // else and every line of a positions scan the whole way. A model built from split('\n') and parseChangelogLine must
  // agree with both, at every chunk boundary: a line cut by a chunk (or by a worker's 1 MB read) is one line.
  test('the inline path, the whole path and a line-by-line model agree, wherever the chunks are cut', () => {
    const ts = (v: number) => 1795575880 + (v % 7);
    const ok = (v: number) => `${v}: ${ts(v)}|CREATE(1,f${v},1,438,18,0,0,0):${v + 1}\n`;
    const parts = [
      ok(7),
      ok(8),
      ok(8),
      ok(9),
      '10: 1795575880|CREATE(1,f10\n',
      ok(11),
      ok(13),
      'garbage\n',
      ok(5),
      ok(14),
      `15: ${ts(15)}|ACQUIRE(1,3)\n`,
      '\n',
      ok(16),
      '17: 1795575880|CREATE(1,f,1,438,18,0,0,0):1(1\n',
      ok(18),
      ok(19),
      ok(20),
      '21: 17955',
    ];
    const text = parts.join('');
    const model = { lines: 0, segments: [] as { first: number; last: number }[], kinds: [] as string[] };
    let expected: number | undefined;
    let lastTimestamp: number | undefined;
    const all = text.split('\n');
    for (const [i, line] of all.entries()) {
      if (i === all.length - 1 && line === '') break;
      model.lines++;
      const parsed = i === all.length - 1 ? undefined : parseChangelogLine(line);
      if (i === all.length - 1) model.kinds.push('cut-last-line');
      else if (!parsed) model.kinds.push(/^\d+: \d+\|/.test(line) ? 'damaged' : 'unparsable');
      else if (expected !== undefined && parsed.version < expected)
        model.kinds.push(parsed.version === expected - 1 ? 'repeated' : 'backwards');
      else {
        if (parsed.version === expected) model.segments[model.segments.length - 1]!.last = parsed.version;
        else model.segments.push({ first: parsed.version, last: parsed.version });
        expected = parsed.version + 1;
        lastTimestamp = parsed.timestamp;
      }
    }
    const buf = Buffer.from(text);
    for (let chunk = 1; chunk <= buf.length; chunk++) {
      for (const positions of [false, true]) {
        const scanner = new ChangelogScanner('c', { positions });
        for (let i = 0; i < buf.length; i += chunk) scanner.push(buf.subarray(i, i + chunk));
        const scan = scanner.finish();
        expect({
          chunk,
          positions,
          lines: scan.lines,
          segments: scan.segments,
          kinds: scan.problems.map((p) => p.kind),
          lastTimestamp: scan.lastTimestamp,
          truncated: scan.truncatedLastLine,
          bytes: scan.bytes,
        }).toEqual({ chunk, positions, ...model, lastTimestamp, truncated: true, bytes: buf.length });
      }
    }
  });

  test('an empty file has no versions and no problems', async () => {
    const scan = await scanChangelogStream(streamOf(''), 'c');
    expect(scan).toMatchObject({ lines: 0, segments: [], problems: [] });
    expect(scan.first).toBeUndefined();
  });
});
