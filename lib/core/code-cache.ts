// A CommonJS bundle compiled with V8's code cache (issue #28: start-up). Node 20 has no compile cache for ES modules
// (`module.enableCompileCache` is Node >= 22.1), but `vm.Script` takes V8's `cachedData`.
//
// A code cache is executable input: V8 runs its bytecode in place of compiling the source, and on Node 20 it checks
// little — its version, its flags and the source's *length*. Measured: a cache of other source of the same length
// is accepted and runs the old code; a truncated cache and one with a flipped byte are accepted too. So the cache
// file is bound here to the exact source and to itself (two SHA-256 in its header), and it is read only when whoever
// could have written it could also have written the code: opened O_NOFOLLOW, a regular file owned by root or by
// us, not writable by group or others. Anything else and the bundle is compiled from its source, as without a cache.
// The cache is written by the build (scripts/bundle.mjs), never at run time.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

const MAGIC = Buffer.from('mfs-jobs-cache1\n');
const HEADER_BYTES = MAGIC.length + 64;
/** Far above the bundle's ~1 MB cache: a bound, not a budget. */
const MAX_CACHE_BYTES = 64 * 1024 * 1024;

/** What happened to the cache: only 'used' ran V8's bytecode; every other case compiled the source. */
export type CacheUse = 'used' | 'absent' | 'untrusted' | 'damaged' | 'stale' | 'rejected';

export interface LoadedBundle {
  exports: Record<string, unknown>;
  cache: CacheUse;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest();

// CommonJS's own wrapper: the bundle sees exports, require, module, __filename and __dirname as under require().
const wrap = (source: string) => `(function (exports, require, module, __filename, __dirname) {${source}\n})`;

function compile(file: string, source: Buffer, cachedData?: Buffer): vm.Script {
  // No importModuleDynamically: the bundle has no import() (scripts/bundle.mjs checks).
  return new vm.Script(wrap(source.toString('utf8')), { filename: file, ...(cachedData ? { cachedData } : {}) });
}

function evaluate(script: vm.Script, file: string): Record<string, unknown> {
  const module = { exports: {} as Record<string, unknown> };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  fn(module.exports, createRequire(file), module, file, path.dirname(file));
  return module.exports;
}

/** The cache file's bytes when root or we wrote it and nobody else can have; else why not. */
function readTrusted(cacheFile: string): Buffer | 'absent' | 'untrusted' | 'damaged' {
  let fd: number;
  try {
    fd = openSync(cacheFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'untrusted';
  }
  try {
    const st = fstatSync(fd);
    const owner = st.uid === 0 || st.uid === process.getuid?.();
    if (!st.isFile() || !owner || (st.mode & 0o022) !== 0) return 'untrusted';
    if (st.size < HEADER_BYTES || st.size > MAX_CACHE_BYTES) return 'damaged';
    const bytes = Buffer.allocUnsafe(st.size);
    let got = 0;
    for (let n = -1; got < bytes.length && n !== 0; got += n) n = readSync(fd, bytes, got, bytes.length - got, got);
    return got === bytes.length ? bytes : 'damaged';
  } finally {
    closeSync(fd);
  }
}

/**
 * Compile and run the CommonJS bundle `file`, from `cacheFile` when that is a cache of exactly this source, made by
 * this build and trusted (above); from its source otherwise. The result says which, for tests and the trace.
 */
export function loadBundle(file: string, cacheFile: string): LoadedBundle {
  const source = readFileSync(file);
  const read = readTrusted(cacheFile);
  let cache: CacheUse = typeof read === 'string' ? read : 'used';
  let data: Buffer | undefined;
  if (typeof read !== 'string') {
    data = read.subarray(HEADER_BYTES);
    if (
      !read.subarray(0, MAGIC.length).equals(MAGIC) ||
      !sha256(data).equals(read.subarray(MAGIC.length + 32, HEADER_BYTES))
    )
      cache = 'damaged';
    else if (!sha256(source).equals(read.subarray(MAGIC.length, MAGIC.length + 32))) cache = 'stale';
  }
  const script = compile(file, source, cache === 'used' ? data : undefined);
  // V8's own refusal (another Node, other V8 flags): it compiled the source instead.
  if (cache === 'used' && script.cachedDataRejected) cache = 'rejected';
  return { exports: evaluate(script, file), cache };
}

/**
 * Build time: compile and run the bundle, let `warmUp` call into it (V8 caches only what was compiled by then), and
 * return the cache file's bytes: magic, SHA-256 of the source, SHA-256 of V8's data, V8's data.
 */
export async function produceCodeCache(
  file: string,
  warmUp: (exports: Record<string, unknown>) => Promise<void>,
): Promise<Buffer> {
  const source = readFileSync(file);
  const script = compile(file, source);
  await warmUp(evaluate(script, file));
  const data = script.createCachedData();
  return Buffer.concat([MAGIC, sha256(source), sha256(data), data]);
}
