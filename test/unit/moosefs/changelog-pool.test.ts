import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChangelogScanPool } from '../../../lib/moosefs/changelog-pool.js';
import { scanSourceChangelog } from '../../../lib/moosefs/datapath.js';
import { ReadBoundError } from '../../../lib/transport/bounded.js';
import { localSource } from '../../../lib/transport/remote.js';

// The worker-thread scan of a local changelog (issue #28) against the streaming one: the same parser, so the same
// scan for damage of every kind; and the source's bounds: no symlink, no more bytes than announced.
describe('changelog scan in worker threads', () => {
  let dir: string;
  let pool: ChangelogScanPool;
  const source = localSource('ml1');
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-pool-'));
    pool = ChangelogScanPool.open()!;
  });
  afterAll(async () => {
    await pool.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('the same scan as the streaming path: holes, repeats, damaged and cut lines, lines across 1 MB reads', async () => {
    const lines: string[] = [];
    for (let v = 100; v < 60_000; v++) lines.push(`${v}: 1795575880|CREATE(1,${'f'.repeat(v % 97)},1,438):${v + 1}`);
    lines[10] = '110: 1795575880|CREATE(1,cut';
    lines[20] = 'garbage';
    lines.splice(30, 5);
    lines.splice(40, 0, lines[39]!);
    const file = path.join(dir, 'changelog_ml.1.mfs');
    await fs.writeFile(file, lines.join('\n') + '\n59999: 1795575881|LENGTH(');
    const size = (await fs.stat(file)).size;
    expect(size).toBeGreaterThan(2 << 20);
    const streamed = await scanSourceChangelog(source, file, size);
    const pooled = await scanSourceChangelog(source, file, size, pool);
    expect(pooled).toEqual(streamed);
    expect(pooled.problems.map((p) => p.kind)).toEqual(['damaged', 'unparsable', 'repeated', 'cut-last-line']);
  });

  test('more bytes than announced: the ReadBoundError of the streaming path; a symlink: refused', async () => {
    const file = path.join(dir, 'changelog_ml.2.mfs');
    await fs.writeFile(file, '1: 1795575880|CREATE(1,a,1,438):2\n2: 1795575880|CREATE(1,b,1,438):3\n');
    const err = await scanSourceChangelog(source, file, 10, pool).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReadBoundError);
    expect((err as Error).message).toMatch(/changelog_ml\.2\.mfs: the server sent more than 10 bytes announced/);
    const link = path.join(dir, 'changelog_ml.3.mfs');
    await fs.symlink(file, link);
    await expect(scanSourceChangelog(source, link, 70, pool)).rejects.toThrow(/is a symbolic link: refused/);
    // The pool still works after both.
    expect((await scanSourceChangelog(source, file, 70, pool)).lines).toBe(2);
  });
});
