import { once } from 'node:events';
import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { parseConfig } from '../../../lib/core/config.js';
import { EOF_MARKER, IMAGE_MAGIC } from '../../../lib/moosefs/metadata.js';
import { openSource, type FileSource } from '../../../lib/transport/remote.js';
import type { ReadBound } from '../../../lib/transport/bounded.js';
import { inspectDataPath } from '../../../lib/verify/source.js';
import { ChangelogScanPool } from '../../../lib/moosefs/changelog-pool.js';

const LINES = 3_000_000;
const IMAGE_VERSION = 1_000_000;

/** A minimal image verify accepts: MFSM 2.0 header (version, metaid), some body, the EOF marker. */
function syntheticImage(version: number): Buffer {
  const head = Buffer.alloc(24);
  head.write(IMAGE_MAGIC, 0, 'latin1');
  head.writeBigUInt64BE(BigInt(version), 8);
  head.writeBigUInt64BE(0x6b0765a344c26a01n, 16);
  return Buffer.concat([head, Buffer.alloc(1000), Buffer.from(EOF_MARKER, 'latin1')]);
}

/** Write a changelog of `count` lines in batches, never holding it whole either. */
async function writeChangelog(file: string, from: number, count: number): Promise<number> {
  const out = createWriteStream(file);
  for (let v = from; v < from + count;) {
    const batch: string[] = [];
    for (let i = 0; i < 10_000 && v < from + count; i++, v++)
      batch.push(`${v}: 1795575880|CREATE(1,f${v},1,438,18,0,0,0):${v + 1}\n`);
    if (!out.write(batch.join(''))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return (await fs.stat(file)).size;
}

/**
 * The real local source, with every chunk it hands out observed: how much memory is in use right then. Without
 * openLocal: the streaming path (the worker-thread path of a big local DATA_PATH is the next test's).
 */
function observed(source: FileSource, sample: () => void): FileSource {
  return Object.assign(Object.create(source) as FileSource, {
    openLocal: undefined,
    readStream: async (file: string, bound: ReadBound) =>
      (await source.readStream(file, bound)).pipe(
        new Transform({
          transform(chunk, _enc, done) {
            sample();
            done(null, chunk);
          },
        }),
      ),
  });
}

describe('verify reads changelogs in one streaming pass', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-stream-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test(`a changelog of ${LINES.toLocaleString('en')} lines is checked with memory that does not grow with it`, async () => {
    await fs.writeFile(path.join(dir, 'metadata_ml.mfs.back'), syntheticImage(IMAGE_VERSION));
    const size = await writeChangelog(path.join(dir, 'changelog_ml.0.mfs'), IMAGE_VERSION, LINES);
    expect(size).toBeGreaterThan(150e6);

    const config = parseConfig({ metaloggers: [{ name: 'ml1', host: 'localhost', dataPath: dir, local: true }] });
    const used = () => {
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const base = used();
    let peak = 0;
    const source = observed(
      await openSource(config, config.metaloggers[0]!),
      () => (peak = Math.max(peak, used() - base)),
    );
    const facts = await inspectDataPath(source, dir);

    const scan = facts.changelogs[0]!.scan;
    expect(scan).toMatchObject({
      bytes: size,
      lines: LINES,
      first: IMAGE_VERSION,
      last: IMAGE_VERSION + LINES - 1,
      problems: [],
    });
    expect(facts.plan.roll).toMatchObject({ reached: IMAGE_VERSION + LINES, holes: [] });
    // Buffering the file would hold all of it at once; a streaming pass holds a few chunks.
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
    expect(peak).toBeLessThan(size / 2);
  });

  test('a big local DATA_PATH is scanned in worker threads: the same facts, memory that does not grow with it', async () => {
    // The file of the test above (tests in a file run in order).
    const size = (await fs.stat(path.join(dir, 'changelog_ml.0.mfs'))).size;
    expect(size).toBeGreaterThan(ChangelogScanPool.MIN_BYTES);
    const config = parseConfig({ metaloggers: [{ name: 'ml1', host: 'localhost', dataPath: dir, local: true }] });
    const source = await openSource(config, config.metaloggers[0]!);
    expect(typeof source.openLocal).toBe('function');
    const base = process.memoryUsage().rss;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 5);
    const facts = await inspectDataPath(source, dir).finally(() => clearInterval(sampler));
    expect(facts.changelogs[0]!.scan).toMatchObject({
      bytes: size,
      lines: LINES,
      first: IMAGE_VERSION,
      last: IMAGE_VERSION + LINES - 1,
      problems: [],
    });
    expect(facts.plan.roll).toMatchObject({ reached: IMAGE_VERSION + LINES, holes: [] });
    // Two worker threads' own heaps, and one 1 MB read buffer each: far below the file's size.
    expect(peak).toBeLessThan(size / 2);
  });
});
