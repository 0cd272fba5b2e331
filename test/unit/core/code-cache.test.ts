import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadBundle, produceCodeCache } from '../../../lib/core/code-cache.js';
import { REPO_ROOT, runCli } from '../../helpers/cli.js';

/**
 * Issue #28: the CLI runs from a CommonJS bundle through V8's code cache. A cache is executable input and V8 on
 * Node 20 checks only its version, flags and the source's length, so lib/core/code-cache.ts binds it to the source
 * and trusts it only as it would the code beside it. Each case: the real V8, a real file, the same output.
 */
const source = (letter: string) => `exports.answer = function () { return '${letter}' + String(6 * 7); };\n`;

let dir: string;
let file: string;
let cacheFile: string;
let cache: Buffer;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'code-cache-'));
  file = path.join(dir, 'bundle.cjs');
  cacheFile = `${file}.cache`;
  await fs.writeFile(file, source('A'), { mode: 0o644 });
  cache = await produceCodeCache(file, async (m) => void (m.answer as () => string)());
  await fs.writeFile(cacheFile, cache, { mode: 0o644 });
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const load = () => {
  const { exports, cache: use } = loadBundle(file, cacheFile);
  return { use, answer: (exports.answer as () => string)() };
};

describe('the code cache', () => {
  test('a cache of this source, written by us and by no one else, is used', () => {
    expect(load()).toEqual({ use: 'used', answer: 'A42' });
  });

  test('a stale cache (other source of the same length, which V8 alone accepts and runs) is not used', async () => {
    await fs.writeFile(file, source('B'));
    expect(load()).toEqual({ use: 'stale', answer: 'B42' });
  });

  test('a truncated cache, or one with a byte changed, is not used', async () => {
    await fs.writeFile(cacheFile, cache.subarray(0, cache.length - 100));
    expect(load()).toEqual({ use: 'damaged', answer: 'A42' });
    const flipped = Buffer.from(cache);
    flipped[flipped.length - 50]! ^= 0xff;
    await fs.writeFile(cacheFile, flipped);
    expect(load()).toEqual({ use: 'damaged', answer: 'A42' });
    await fs.writeFile(cacheFile, cache.subarray(0, 10));
    expect(load()).toEqual({ use: 'damaged', answer: 'A42' });
  });

  test('a cache others could have written is not read: group- or world-writable, another owner, a symlink', async () => {
    await fs.chmod(cacheFile, 0o664);
    expect(load()).toEqual({ use: 'untrusted', answer: 'A42' });
    await fs.chmod(cacheFile, 0o646);
    expect(load()).toEqual({ use: 'untrusted', answer: 'A42' });
    await fs.chmod(cacheFile, 0o644);
    if (process.getuid!() === 0) {
      await fs.chown(cacheFile, 65534, 65534);
      expect(load()).toEqual({ use: 'untrusted', answer: 'A42' });
      await fs.chown(cacheFile, 0, 0);
    }
    // A link to a good cache, as a user who can write the directory would place it: still not followed.
    await fs.rename(cacheFile, path.join(dir, 'elsewhere'));
    await fs.symlink(path.join(dir, 'elsewhere'), cacheFile);
    expect(load()).toEqual({ use: 'untrusted', answer: 'A42' });
  });

  test('no cache: the source is compiled', async () => {
    await fs.rm(cacheFile);
    expect(load()).toEqual({ use: 'absent', answer: 'A42' });
  });

  test('a cache of other V8 flags is refused by V8 itself, and the source compiled', () => {
    const script = `import('${path.join(REPO_ROOT, 'dist/lib/core/code-cache.js')}').then(({ loadBundle }) => {
      const { exports, cache } = loadBundle(${JSON.stringify(file)}, ${JSON.stringify(cacheFile)});
      console.log(cache, exports.answer());
    });`;
    const run = (flags: string[]) =>
      spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8' }).stdout.trim();
    expect(run([])).toBe('used A42');
    expect(run(['--no-lazy-feedback-allocation'])).toBe('rejected A42');
  });
});

describe('the built CLI', () => {
  test('runs from its code cache, with the same output as the unbundled tree', async () => {
    const config = path.join(dir, 'config.yaml');
    await fs.writeFile(
      config,
      `timezone: UTC\nstateDir: ${dir}/state\njobs:\n  check-master:\n    schedule: '@daily'\n`,
    );
    const args = ['list-jobs', '--config', config];
    const cached = await runCli(args, { env: { MFS_JOBS_CODE_CACHE_TRACE: '1' } });
    const plain = await runCli(args, { env: { MFS_JOBS_UNBUNDLED: '1' } });
    expect(cached.stderr).toBe('mfs-jobs: code cache used\n');
    expect({ code: cached.code, stdout: cached.stdout }).toEqual({ code: plain.code, stdout: plain.stdout });
    expect(cached.stdout).toContain('check-master');
    // --version stays on the ES module bundle: no cache read.
    const version = await runCli(['--version'], { env: { MFS_JOBS_CODE_CACHE_TRACE: '1' } });
    expect({ code: version.code, stderr: version.stderr }).toEqual({ code: 0, stderr: '' });
  });
});
