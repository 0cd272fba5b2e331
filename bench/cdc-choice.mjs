// Issue 26, incremental storage: how much of a stored image is new when 1% of the files changed, if images were
// deduplicated by content-defined chunks (restic-style) — on the zstd stream as stored today, and on the plain
// image (chunked first, each chunk compressed). Quick experiment, not a bench case:
//   node bench/cdc-choice.mjs /var/tmp/mfs-jobs-bench/image-1000000-g1/metadata.mfs 1000000
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChurnWriter } from '../dist/bench/lines.js';
import { LabMaster } from '../dist/test/lab/moosefs.js';
import { readImageHeader } from '../dist/lib/moosefs/metadata.js';

const [image, filesArg] = process.argv.slice(2);
const files = Number(filesArg);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cdc-'));
const master = await LabMaster.create(path.join(dir, 'm'), { bootstrap: false });
await fs.copyFile(image, path.join(master.dataPath, 'metadata.mfs.back'));
const churn = new ChurnWriter(files, (await readImageHeader(image)).version, Math.floor(Date.now() / 1000) - 86_400);
let lines = '';
for (let i = 0; i < (files / 100) * 3; i++) lines += churn.line(); // 1% of the files, three lines each
await fs.writeFile(path.join(master.dataPath, 'changelog.0.mfs'), lines);
execFileSync('mfsmaster', ['-c', master.configFile, '-a', 'restore'], { stdio: 'ignore' });
const after = path.join(master.dataPath, 'metadata.mfs');

// Gear-hash CDC (FastCDC-like): cut where the hash's low bits are zero; min avg/4, max 4 avg.
const gear = Array.from({ length: 256 }, (_, i) => createHash('sha256').update(String(i)).digest().readUInt32LE(0));
function chunks(buf, avg) {
  const mask = avg - 1;
  const out = [];
  let start = 0;
  let h = 0;
  for (let i = 0; i < buf.length; i++) {
    h = ((h << 1) + gear[buf[i]]) >>> 0;
    const len = i - start + 1;
    if ((len >= avg / 4 && (h & mask) === 0) || len >= avg * 4 || i === buf.length - 1) {
      out.push(buf.subarray(start, i + 1));
      start = i + 1;
      h = 0;
    }
  }
  return out;
}
const key = (c) => createHash('sha256').update(c).digest('hex');
const zstd = (buf) => execFileSync('zstd', ['-3', '-q', '-c'], { input: buf, maxBuffer: 2 ** 31 });
/** Bytes of b's chunks that a's chunks do not have. */
function newBytes(a, b, avg) {
  const seen = new Set(chunks(a, avg).map(key));
  let fresh = 0;
  for (const c of chunks(b, avg)) if (!seen.has(key(c))) fresh += c.length;
  return fresh;
}
const plainA = readFileSync(image);
const plainB = readFileSync(after);
const zA = zstd(plainA);
const zB = zstd(plainB);
const mb = (n) => (n / 2 ** 20).toFixed(1);
const pct = (n, d) => `${((100 * n) / d).toFixed(1)}%`;
console.log(`changed: ${files / 100} files (${lines.split('\n').length - 1} changelog lines, ${mb(lines.length)} MB)`);
console.log(`image: ${mb(plainB.length)} MB plain, ${mb(zB.length)} MB zstd -3`);
for (const avg of [65536, 16384, 4096]) {
  const onStream = newBytes(zA, zB, avg);
  const onPlain = newBytes(plainA, plainB, avg);
  // Compressing each new chunk on its own compresses worse than the whole stream: a lower bound.
  console.log(
    `${avg / 1024} KiB chunks: zstd stream ${pct(onStream, zB.length)} new; plain image ${pct(onPlain, plainB.length)} new (≥ ${mb((onPlain / plainB.length) * zB.length)} MB compressed)`,
  );
}
console.log(`the archive's segments for the same changes: ${mb(zstd(Buffer.from(lines)).length)} MB zstd`);
await fs.rm(dir, { recursive: true, force: true });
