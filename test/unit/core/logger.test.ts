import { jest } from '@jest/globals';
import { createLogger } from '../../../lib/core/logger.js';

/** The lines a logger writes to stderr while `f` runs. */
function linesOf(f: () => void): string[] {
  const out: string[] = [];
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  try {
    f();
  } finally {
    spy.mockRestore();
  }
  return out.join('').split('\n').filter(Boolean);
}

describe('logger (our own, in place of winston: the same lines)', () => {
  test('JSON lines: keys sorted at every depth, child metadata under the call, Error fields, bigint, circular', () => {
    const lines = linesOf(() => {
      const log = createLogger({ level: 'info', json: true }).child({ job: 'promote' });
      log.info('job started', { dryRun: false });
      log.debug('not written at info');
      const err = Object.assign(new Error('boom'), { code: 'E1' });
      log.error('failed', err);
      const circ: Record<string, unknown> = { z: 1n, a: [1, undefined] };
      circ.self = circ;
      log.child({ step: 'fence' }).warn('x', { circ, job: 'other', gone: undefined });
    });
    const strip = (l: string) => l.replace(/,"timestamp":"\d{4}-\d\d-\d\dT[\d:.]+Z"/, '');
    expect(lines.map(strip)).toEqual([
      '{"dryRun":false,"job":"promote","level":"info","message":"job started"}',
      expect.stringMatching(
        /^\{"code":"E1","job":"promote","level":"error","message":"failed boom","stack":"Error: boom\\n/,
      ),
      '{"circ":{"a":[1,null],"self":"[Circular]","z":"1"},"job":"other","level":"warn","message":"x","step":"fence"}',
    ]);
    expect(lines.every((l) => /"timestamp":"\d{4}-\d\d-\d\dT[\d:.]+Z"/.test(l))).toBe(true);
  });

  test('human lines on a terminal: time, level, [job], message, key=value', () => {
    const [line] = linesOf(() => createLogger({ json: false }).child({ job: 'verify' }).warn('lag', { versions: 3 }));
    expect(line).toMatch(/^\d\d:\d\d:\d\d warn {2}\[verify\] lag versions=3$/);
  });

  test('finish fires after end', async () => {
    const log = createLogger({ json: true });
    await new Promise<void>((resolve) => log.on('finish', resolve).end());
  });
});
