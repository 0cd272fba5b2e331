import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FileSource } from '../../lib/transport/remote.js';
import { NameFlipper } from '../lab/attacker.js';

/**
 * What every FileSource promises (lib/transport/remote.ts), as one suite each implementation runs — like
 * restic's backend/test/suite.go. `setup` makes a fresh directory the source reads holding `files` and,
 * under the names of `links`, symlinks to the given paths (for a snapshot: its stored files), and opens
 * the source; `teardown` closes what it opened.
 */
export interface FileSourceUnderTest {
  dir: string;
  source: FileSource;
  teardown(): Promise<void>;
}

export interface FileSourceSetup {
  files: Record<string, Buffer>;
  links: Record<string, string>;
}

export interface FileSourceTraits {
  /** A snapshot is read-only. */
  removes: boolean;
  /** The directory is a DATA_PATH its owner (`nobody` here) writes into while root reads it. */
  ownerRaces: boolean;
}

export function fileSourceContract(
  name: string,
  traits: FileSourceTraits,
  setup: (content: FileSourceSetup) => Promise<FileSourceUnderTest>,
): void {
  describe(`FileSource contract: ${name}`, () => {
    let t: FileSourceUnderTest;
    let out: string;
    let secret: string;
    const bytes = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    const secretBytes = Buffer.from('root:$y$j9T$not-for-the-mfs-user:19000:0:99999:7:::\n');
    const file = () => path.join(t.dir, 'changelog_ml.1.mfs');
    const link = () => path.join(t.dir, 'changelog_ml.2.mfs');
    const readAll = async (f: string, size: number) => {
      const parts: Buffer[] = [];
      for await (const chunk of await t.source.readStream(f, { size, growth: 0 })) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    };
    beforeEach(async () => {
      out = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-contract-out-'));
      // Root's own file (a stand-in for /etc/shadow): what a link planted in the source points at.
      secret = path.join(out, 'shadow');
      await fs.writeFile(secret, secretBytes, { mode: 0o600 });
      t = await setup({ files: { 'changelog_ml.1.mfs': bytes }, links: { 'changelog_ml.2.mfs': secret } });
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

    test('stat: the size of a file; a symlink is no file, whatever it points to', async () => {
      expect(await t.source.stat(file())).toMatchObject({ size: bytes.length, isFile: true });
      expect(await t.source.stat(link())).toMatchObject({ isFile: false });
    });

    test('readRange: exactly the bytes asked for, fewer at the end of the file', async () => {
      expect(await t.source.readRange(file(), 100, 50)).toEqual(bytes.subarray(100, 150));
      expect(await t.source.readRange(file(), bytes.length - 10, 50)).toEqual(bytes.subarray(bytes.length - 10));
    });

    test('readStream: the whole file within its bound; more than the bound is refused', async () => {
      expect(await readAll(file(), bytes.length)).toEqual(bytes);
      await expect(readAll(file(), bytes.length - 1)).rejects.toThrow();
    });

    const readWhole = async (f: string, size: number) => {
      const parts: Buffer[] = [];
      for await (const chunk of await t.source.readWhole!(f, { size, growth: 0 })) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    };

    test('readWhole (backup reads a file once, issue 28): every byte in order, within its bound; more refused', async () => {
      if (!t.source.readWhole) return;
      expect(await readWhole(file(), bytes.length)).toEqual(bytes);
      await expect(readWhole(file(), bytes.length - 1)).rejects.toThrow();
      // Many reads in flight (SFTP: 255 KiB each), answers kept until their turn: the same bytes in the same order.
      const big = Buffer.concat(Array.from({ length: 7 }, (_, i) => Buffer.alloc(1 << 20, i + 1)));
      big.writeUInt32BE(0xdeadbeef, big.length - 4);
      await fs.writeFile(path.join(t.dir, 'metadata.mfs.back'), big.subarray(0, big.length - 3));
      await fs.appendFile(path.join(t.dir, 'metadata.mfs.back'), big.subarray(big.length - 3));
      expect((await readWhole(path.join(t.dir, 'metadata.mfs.back'), big.length)).equals(big)).toBe(true);
      await expect(readWhole(link(), 1 << 20)).rejects.toThrow();
    });

    test('readWhole aborted before anything reads it: the reader gets the bytes or the abort, the process no crash', async () => {
      if (!t.source.readWhole) return;
      const stop = new AbortController();
      const stream = await t.source.readWhole(file(), { size: bytes.length }, stop.signal);
      stop.abort();
      // An 'error' event nobody listened for would end the jest worker here.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const parts: Buffer[] = [];
      const got = await (async () => {
        for await (const chunk of stream) parts.push(chunk as Buffer);
        return Buffer.concat(parts);
      })().catch((err: Error) => err);
      if (got instanceof Error) expect(got.message).toMatch(/aborted/);
      else expect(got).toEqual(bytes);
    });

    test('download: a copy within the bound; beyond it refused with nothing left', async () => {
      await t.source.download(file(), path.join(out, 'whole'), { bound: { size: bytes.length, growth: 0 } });
      expect(await fs.readFile(path.join(out, 'whole'))).toEqual(bytes);
      const cut = t.source.download(file(), path.join(out, 'cut'), { bound: { size: 100, growth: 0 } });
      await expect(cut).rejects.toThrow();
      await expect(fs.lstat(path.join(out, 'cut'))).rejects.toThrow(/ENOENT/);
    });

    // The listing shows a link as no file, but the name may change after it: each read refuses one itself.
    test('a symlink is never read through: download, readStream and readRange refuse it, nothing left', async () => {
      const bound = { size: 1 << 20 };
      await expect(t.source.download(link(), path.join(out, 'link'), { bound })).rejects.toThrow();
      await expect(fs.lstat(path.join(out, 'link'))).rejects.toThrow(/ENOENT/);
      await expect(readAll(link(), 1 << 20)).rejects.toThrow();
      await expect(t.source.readRange(link(), 0, 16)).rejects.toThrow();
    });

    if (traits.ownerRaces)
      test("the DATA_PATH's owner flipping a name between its file and a link to root's file: never root's bytes", async () => {
        const flipper = await NameFlipper.start({ dir: t.dir, name: 'changelog_ml.1.mfs', target: secret });
        const seen = { whole: 0, refused: 0, secret: 0 };
        const deadline = Date.now() + 2000;
        try {
          for (let i = 0; Date.now() < deadline; i++) {
            const local = path.join(out, `race-${i}`);
            const got = await (
              i % 3 === 1
                ? t.source.download(file(), local, { bound: { size: bytes.length } }).then(() => fs.readFile(local))
                : i % 3 === 2 && t.source.readWhole
                  ? readWhole(file(), bytes.length)
                  : t.source.readRange(file(), 0, bytes.length)
            ).catch(() => undefined);
            if (!got) seen.refused++;
            else if (got.equals(bytes)) seen.whole++;
            else if (got.includes(secretBytes.subarray(0, 8))) seen.secret++;
          }
        } finally {
          expect(await flipper.stop()).toBeGreaterThan(0);
        }
        expect(seen.secret).toBe(0);
        expect(seen.refused).toBeGreaterThan(0);
      }, 20_000);

    if (traits.removes)
      test('remove: the file is gone', async () => {
        await t.source.remove(file());
        await expect(fs.lstat(file())).rejects.toThrow(/ENOENT/);
      });
  });
}
