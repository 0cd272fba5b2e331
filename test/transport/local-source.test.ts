import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { copyLocalFile, localSource } from '../../lib/transport/remote.js';

/**
 * A local source's directory (a metalogger's DATA_PATH on this machine, the snapshot store) read the
 * way an SFTP one is: links never followed, FIFOs never opened for good, copies bounded while they run.
 */
describe('local sources are read like hostile remote ones', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-local-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('a symlink planted under a changelog name is listed as no file, and reading or copying it is refused in one line', async () => {
    await fs.writeFile(path.join(dir, 'secret'), '1: 1|SECRET(1)\n', { mode: 0o600 });
    await fs.symlink(path.join(dir, 'secret'), path.join(dir, 'changelog_ml.1.mfs'));
    const src = localSource('ml1');
    expect((await src.list(dir)).find((e) => e.name === 'changelog_ml.1.mfs')).toMatchObject({ isFile: false });
    const link = path.join(dir, 'changelog_ml.1.mfs');
    await expect(src.readRange(link, 0, 10)).rejects.toThrow(
      `ml1 (local): ${link}: is a symbolic link: refused (links in a source directory are never followed)`,
    );
    await expect(src.download(link, path.join(dir, 'copy'), { bound: { size: 100 } })).rejects.toThrow(
      'is a symbolic link',
    );
    await expect(fs.stat(path.join(dir, 'copy'))).rejects.toThrow(/ENOENT/);
  });

  test('a FIFO is refused at once instead of blocking the job for ever', async () => {
    await promisify(execFile)('mkfifo', [path.join(dir, 'changelog_ml.2.mfs')]);
    const started = Date.now();
    await expect(localSource('ml1').readRange(path.join(dir, 'changelog_ml.2.mfs'), 0, 10)).rejects.toThrow(
      'not a regular file: refused',
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('a file bigger than its bound is refused before a byte is copied; one within it is copied whole and private; an existing target is never written through', async () => {
    const big = path.join(dir, 'metadata_ml.mfs.back');
    await fs.writeFile(big, Buffer.alloc(1 << 20));
    await expect(copyLocalFile('ml1', big, path.join(dir, 'a'), { size: 1000 })).rejects.toThrow(
      `ml1 (local): ${big}: ${1 << 20} bytes, more than 1000 bytes announced: refused, nothing kept`,
    );
    await expect(fs.stat(path.join(dir, 'a'))).rejects.toThrow(/ENOENT/);
    // Within its bound: copied whole, private.
    await copyLocalFile('ml1', big, path.join(dir, 'b'), { size: 1 << 20 });
    const st = await fs.stat(path.join(dir, 'b'));
    expect([st.size, st.mode & 0o777]).toEqual([1 << 20, 0o600]);
    // A target that exists is never written through (created exclusively).
    await fs.symlink(path.join(dir, 'victim'), path.join(dir, 'c'));
    await expect(copyLocalFile('ml1', big, path.join(dir, 'c'), { size: 1 << 20 })).rejects.toThrow(/EEXIST/);
    await expect(fs.stat(path.join(dir, 'victim'))).rejects.toThrow(/ENOENT/);
  });
});
