// BENCHMARKS.md § 7: file → zstd → file through Node streams, Debian's zstd CLI (mode cli) or the zstd-napi binding (mode napi,
// installed by hand: npm install --no-save zstd-napi). Usage: node bench/zstd-choice.mjs cli|napi c|d FILE LEVEL
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
const [mode, dir, file, level] = process.argv.slice(2);
const out = `/tmp/zstd-choice.out.${mode}.${dir}`;
const t0 = process.hrtime.bigint();
if (mode === 'cli') {
  const args = dir === 'c' ? [`-${level}`, '-q', '-c', '-T1'] : ['-d', '-q', '-c'];
  const child = spawn('/usr/bin/time', ['-f', '%M', 'zstd', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise((r) => child.on('close', r));
  await Promise.all([
    pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), child.stdin),
    pipeline(child.stdout, createWriteStream(out)),
  ]);
  await done;
  process.stdout.write(`childMaxRssKB=${err.trim()} `);
} else {
  const z = await import('zstd-napi');
  const s = dir === 'c' ? new z.CompressStream({ compressionLevel: Number(level) }) : new z.DecompressStream();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), s, createWriteStream(out));
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const ru = process.resourceUsage();
console.log(
  `${mode} ${dir} level=${level} in=${statSync(file).size} out=${statSync(out).size} secs=${secs.toFixed(2)} MBps=${(statSync(dir === 'c' ? file : out).size / 1e6 / secs).toFixed(0)} nodeMaxRssKB=${ru.maxRSS} cpuUser=${(ru.userCPUTime / 1e6).toFixed(2)}`,
);
