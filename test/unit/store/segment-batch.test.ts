import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listSegments, placeSegments, writeSegment, type StoredSegment } from '../../../lib/store/segments.js';
import { keyIdOf, type StoreKey } from '../../../lib/store/sealed.js';
import { copySnapshotFiles, storedPathOf, type BatchFile } from '../../../lib/store/stored-file.js';
import { segmentHolder } from '../../../lib/store/segments.js';

const keyOf = (raw = randomBytes(32)): StoreKey => ({ id: keyIdOf(raw), key: raw, file: '/test/key' });

/**
 * Small archive segments placed through ONE `zstd -d` (issue 26/28): their stored bytes checked each against
 * its own manifest, their frames decompressed as one stream and the output split back by each manifest's
 * content size, each part checked against its own content hash. A damaged, swapped or reordered segment
 * is refused, named, and nothing of the batch is left; placeSegments then names the culprit exactly.
 */
describe('segments placed in one batch', () => {
  let dir: string;
  let out: string;
  const lines = (from: number, to: number) => {
    let text = '';
    for (let v = from; v <= to; v++) text += `${v}: ${1_790_000_000 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v + 9}\n`;
    return Buffer.from(text, 'latin1');
  };
  const spans = [
    [1, 400],
    [401, 405],
    [406, 2000],
  ] as const;

  async function store(key?: StoreKey): Promise<StoredSegment[]> {
    const settings = { compression: { type: 'zstd' as const, level: 3 }, ...(key ? { key } : {}) };
    for (const [first, last] of spans)
      await writeSegment(
        dir,
        {
          lines: lines(first, last),
          first,
          last,
          firstTime: 1_790_000_000 + first,
          lastTime: 1_790_000_000 + last,
          ...(first > 1 ? { previous: first - 1 } : {}),
          source: { name: 'ml1', host: 'h', role: 'metalogger', dataPath: '/var/lib/mfs' },
          metaid: 'AB12',
          mfsJobsVersion: 'test',
        },
        settings,
      );
    const listed = await listSegments(dir, key ? { key } : {});
    expect(listed.segments).toHaveLength(3);
    return listed.segments;
  }
  const batch = (segments: readonly StoredSegment[]): BatchFile[] =>
    segments.map((s, i) => ({ holder: segmentHolder(s), f: s.manifest.files[0]!, target: path.join(out, `p${i}`) }));

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-segbatch-'));
    out = path.join(dir, 'placed');
    await fs.mkdir(out);
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test.each([
    ['zstd', undefined],
    ['zstd and sealed (keyed content hmac)', keyOf()],
  ])('%s: every segment byte for byte, each tap sees exactly its own lines', async (_, key) => {
    const segments = await store(key);
    const seen = segments.map(() => [] as Buffer[]);
    const files = batch(segments).map((b, i) => ({ ...b, tap: (c: Buffer) => void seen[i]!.push(Buffer.from(c)) }));
    await copySnapshotFiles(files, { keys: key ? { key } : {}, durable: false });
    for (const [i, [first, last]] of spans.entries()) {
      expect((await fs.readFile(files[i]!.target)).equals(lines(first, last))).toBe(true);
      expect(Buffer.concat(seen[i]!).equals(lines(first, last))).toBe(true);
    }
  });

  test('a flipped byte in the middle segment: named by its stored checksum, nothing of the batch left', async () => {
    const segments = await store();
    const [, mid] = segments;
    const file = storedPathOf(mid!, mid!.manifest.files[0]!);
    const bytes = await fs.readFile(file);
    bytes[bytes.length >> 1]! ^= 0x55;
    await fs.writeFile(file, bytes);
    await expect(copySnapshotFiles(batch(segments), { durable: false })).rejects.toThrow(
      `snapshot ${mid!.id}: changelog.401.mfs: stored file changelog.401.mfs.zst:`,
    );
    expect(await fs.readdir(out)).toEqual([]);
    // Through placeSegments: the batch fails, the segments are placed one by one, the same segment named.
    // (whole segments before it may stay: staging, which the caller removes; never a part of one).
    await expect(placeSegments(segments, out, { durable: false })).rejects.toThrow(
      `snapshot ${mid!.id}: changelog.401.mfs: stored file changelog.401.mfs.zst:`,
    );
    expect(await fs.readdir(out)).not.toContain('changelog.899999999.mfs');
  });

  test('frames reordered (stored checksums made to agree): the part that is not its segment is refused, named', async () => {
    const segments = await store();
    const [a, b] = segments as [StoredSegment, StoredSegment];
    const fa = a.manifest.files[0]!;
    const fb = b.manifest.files[0]!;
    // Each segment's stored file holds the other's frame, and its manifest's stored facts say so: only the
    // content sizes and hashes still belong to the segment (a store without a signing key cannot stop this).
    const bytesA = await fs.readFile(storedPathOf(a, fa));
    const bytesB = await fs.readFile(storedPathOf(b, fb));
    await fs.writeFile(storedPathOf(a, fa), bytesB);
    await fs.writeFile(storedPathOf(b, fb), bytesA);
    const swapped = batch(segments);
    swapped[0] = { ...swapped[0]!, f: { ...fa, stored: { ...fb.stored!, name: fa.stored!.name } } };
    swapped[1] = { ...swapped[1]!, f: { ...fb, stored: { ...fa.stored!, name: fb.stored!.name } } };
    await expect(copySnapshotFiles(swapped, { durable: false })).rejects.toThrow(
      new RegExp(`snapshot ${a.id}: changelog\\.1\\.mfs: (\\d+ bytes, manifest says|sha256 .* does not match)`),
    );
    expect(await fs.readdir(out)).toEqual([]);
  });

  test('more output than the manifests say (a zstd bomb in the last segment): refused, nothing left', async () => {
    const segments = await store();
    const files = batch(segments);
    const last = files[2]!;
    // The manifest of the last segment claims only its first 100 bytes (and their hash): the rest is too much.
    const head = lines(spans[2][0], spans[2][1]).subarray(0, 100);
    files[2] = { ...last, f: { ...last.f, size: 100, sha256: createHash('sha256').update(head).digest('hex') } };
    await expect(copySnapshotFiles(files, { durable: false })).rejects.toThrow(
      `snapshot ${segments[2]!.id}: changelog.406.mfs: more than the 100 bytes the manifest says`,
    );
    expect(await fs.readdir(out)).toEqual([]);
  });

  test('placeSegments: three small segments under the restore names, in version order', async () => {
    const segments = await store();
    const placed: string[] = [];
    const { names, bytes } = await placeSegments(segments, out, {
      durable: false,
      placed: (name) => Promise.resolve(void placed.push(name)),
    });
    expect(names).toEqual(['changelog.900000000.mfs', 'changelog.899999999.mfs', 'changelog.899999998.mfs']);
    expect(placed).toEqual(names);
    expect(bytes).toBe(spans.reduce((n, [f, l]) => n + lines(f, l).length, 0));
    for (const [i, [first, last]] of spans.entries())
      expect((await fs.readFile(path.join(out, names[i]!))).equals(lines(first, last))).toBe(true);
  });
});
