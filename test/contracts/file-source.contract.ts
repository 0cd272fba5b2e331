import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { FileSource } from '../../lib/transport/remote.js';

/**
 * What every FileSource promises (lib/transport/remote.ts), as one suite each implementation runs — like
 * restic's backend/test/suite.go. `setup` gives a fresh directory the source reads (on this machine: the
 * SFTP server serves the same filesystem) and the source itself; `teardown` closes what it opened.
 */
export interface FileSourceUnderTest {
  dir: string;
  source: FileSource;
  teardown(): Promise<void>;
}

export function fileSourceContract(
  name: string,
  o: { linkDownload: 'refused' | 'followed by the server' },
  setup: () => Promise<FileSourceUnderTest>,
): void {
  describe(`FileSource contract: ${name}`, () => {
    let t: FileSourceUnderTest;
    let out: string;
    const bytes = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    beforeEach(async () => {
      t = await setup();
      out = await fs.mkdtemp(path.join(path.dirname(t.dir), 'out-'));
      await fs.writeFile(path.join(t.dir, 'changelog_ml.1.mfs'), bytes, { mode: 0o600 });
      await fs.symlink(path.join(t.dir, 'changelog_ml.1.mfs'), path.join(t.dir, 'changelog_ml.2.mfs'));
    });
    afterEach(async () => {
      await t.teardown();
      await fs.rm(out, { recursive: true, force: true });
    });

    test('list: files with their sizes; a symlink is listed as no file', async () => {
      const entries = await t.source.list(t.dir);
      expect(entries.find((e) => e.name === 'changelog_ml.1.mfs')).toMatchObject({ size: bytes.length, isFile: true });
      expect(entries.find((e) => e.name === 'changelog_ml.2.mfs')).toMatchObject({ isFile: false });
    });

    test('stat: the size of a file', async () => {
      expect(await t.source.stat(path.join(t.dir, 'changelog_ml.1.mfs'))).toMatchObject({
        size: bytes.length,
        isFile: true,
      });
    });

    test('readRange: exactly the bytes asked for, fewer at the end of the file', async () => {
      const file = path.join(t.dir, 'changelog_ml.1.mfs');
      expect(await t.source.readRange(file, 100, 50)).toEqual(bytes.subarray(100, 150));
      expect(await t.source.readRange(file, bytes.length - 10, 50)).toEqual(bytes.subarray(bytes.length - 10));
    });

    test('readStream: the whole file within its bound; more than the bound is refused', async () => {
      const file = path.join(t.dir, 'changelog_ml.1.mfs');
      const read = async (size: number) => {
        const parts: Buffer[] = [];
        for await (const chunk of await t.source.readStream(file, { size, growth: 0 })) parts.push(chunk as Buffer);
        return Buffer.concat(parts);
      };
      expect(await read(bytes.length)).toEqual(bytes);
      await expect(read(bytes.length - 1)).rejects.toThrow();
    });

    test('download: a copy within the bound; beyond it refused with nothing left', async () => {
      const file = path.join(t.dir, 'changelog_ml.1.mfs');
      await t.source.download(file, path.join(out, 'whole'), { bound: { size: bytes.length, growth: 0 } });
      expect(await fs.readFile(path.join(out, 'whole'))).toEqual(bytes);
      const cut = t.source.download(file, path.join(out, 'cut'), { bound: { size: 100, growth: 0 } });
      await expect(cut).rejects.toThrow();
      await expect(fs.lstat(path.join(out, 'cut'))).rejects.toThrow(/ENOENT/);
    });

    // A name the listing showed as no file is never downloaded by the jobs; what a source does if asked
    // anyway differs, and is written down here: SFTP's open has no O_NOFOLLOW, the server follows the link.
    test(`download of a symlink: ${o.linkDownload}`, async () => {
      const link = t.source.download(path.join(t.dir, 'changelog_ml.2.mfs'), path.join(out, 'link'), {
        bound: { size: bytes.length },
      });
      if (o.linkDownload === 'refused') {
        await expect(link).rejects.toThrow();
        await expect(fs.lstat(path.join(out, 'link'))).rejects.toThrow(/ENOENT/);
      } else {
        await link;
        expect(await fs.readFile(path.join(out, 'link'))).toEqual(bytes);
      }
    });

    test('remove: the file is gone', async () => {
      await t.source.remove(path.join(t.dir, 'changelog_ml.1.mfs'));
      await expect(fs.lstat(path.join(t.dir, 'changelog_ml.1.mfs'))).rejects.toThrow(/ENOENT/);
    });
  });
}
