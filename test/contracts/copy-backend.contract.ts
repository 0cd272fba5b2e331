import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { plainNameProblem } from '../../lib/core/names.js';
import type { CopyRepository } from '../../lib/store/copy/repository.js';
import { ListingBudget } from '../../lib/transport/listing-bounds.js';

/**
 * What every off-site copy backend promises (lib/store/copy/repository.ts), as one suite each runs — like
 * restic's backend/test/suite.go. `setup` opens a fresh, empty copy (`snapshots/` of a new directory or
 * prefix); `plant` is whoever holds the copy's credentials, writing raw bytes at `<id>/<name>` (or any
 * stranger path) under its `snapshots/`, past the repository.
 */
export interface CopyBackendUnderTest {
  repo: CopyRepository;
  plant(relative: string, bytes: Buffer): Promise<void>;
  teardown(): Promise<void>;
}

export function copyBackendContract(name: string, setup: () => Promise<CopyBackendUnderTest>): void {
  describe(`copy backend contract: ${name}`, () => {
    let t: CopyBackendUnderTest;
    let local: string;
    const id = '20261207T120000Z-v42';
    const budget = (limits?: { entries: number }) =>
      new ListingBudget({ subject: t.repo.name, what: t.repo.label, window: t.repo.window, limits });
    const listed = async (snapshot = id) => {
      const b = budget();
      try {
        return await t.repo.listFiles(snapshot, b);
      } finally {
        b.end();
      }
    };
    const ids = async () => {
      const b = budget();
      try {
        return await t.repo.listSnapshotIds(b);
      } finally {
        b.end();
      }
    };
    const readAll = async (stream: Readable) => {
      const parts: Buffer[] = [];
      for await (const chunk of stream) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    };
    /** A local file to put, and what the manifest would say of it. */
    const file = async (fileName: string, bytes: Buffer) => {
      const at = path.join(local, fileName);
      await fs.writeFile(at, bytes);
      return { at, expect: { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } };
    };
    const bytes = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) % 253));

    beforeEach(async () => {
      local = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-copy-contract-'));
      t = await setup();
    });
    afterEach(async () => {
      await t.teardown();
      await fs.rm(local, { recursive: true, force: true });
    });

    test('put publishes a file: listed with its size, hasFile, read back byte for byte; remove takes it away', async () => {
      const f = await file('metadata.mfs.back', bytes);
      await t.repo.put(id, 'metadata.mfs.back', f.at, f.expect);
      expect((await ids()).ids).toEqual([id]);
      expect(await listed()).toEqual([{ name: 'metadata.mfs.back', size: bytes.length }]);
      expect(await t.repo.hasFile(id, 'metadata.mfs.back', f.expect)).toBe(true);
      expect(await t.repo.hasFile(id, 'metadata.mfs.back', { ...f.expect, size: bytes.length - 1 })).toBe(false);
      expect(await t.repo.hasFile(id, 'changelog.0.mfs', f.expect)).toBe(false);
      expect(await readAll(await t.repo.read(id, 'metadata.mfs.back', { size: bytes.length }))).toEqual(bytes);
      await t.repo.remove(id, 'metadata.mfs.back');
      await t.repo.removeSnapshotDir(id);
      expect(await listed()).toEqual([]);
      expect((await ids()).ids).toEqual([]);
    });

    test('atomic publication: while a file of several parts goes up, every listing shows it whole or not at all', async () => {
      const big = Buffer.alloc(11 * 2 ** 20, 0x5a);
      const f = await file('changelog.1.mfs', big);
      let done = false;
      const seen: number[] = [];
      const put = t.repo.put(id, 'changelog.1.mfs', f.at, f.expect).finally(() => (done = true));
      while (!done) {
        const entry = (await listed()).find((e) => e.name === 'changelog.1.mfs');
        seen.push(entry?.size ?? -1);
      }
      await put;
      // At least one listing ran before the name was published: the put was watched while it went up.
      expect(seen[0]).toBe(-1);
      expect(seen.filter((size) => size !== -1 && size !== big.length)).toEqual([]);
      expect((await listed()).find((e) => e.name === 'changelog.1.mfs')?.size).toBe(big.length);
    });

    test('a put whose bytes do not arrive whole fails and leaves nothing: not the name, no part', async () => {
      const f = await file('changelog.2.mfs', bytes);
      // What the manifest says: 4 KiB more than the local file holds (a staged copy cut short under it).
      const whole = Buffer.concat([bytes, Buffer.alloc(4096)]);
      const short = { size: whole.length, sha256: createHash('sha256').update(whole).digest('hex') };
      await expect(t.repo.put(id, 'changelog.2.mfs', f.at, short)).rejects.toThrow(/changelog\.2\.mfs/);
      expect(await listed()).toEqual([]);
    }, 30_000);

    test('an id or name that is not plain is refused before it becomes a path or a key', async () => {
      const f = await file('ok', bytes);
      const odd: [string, string][] = [
        ['../..', 'metadata.mfs.back'],
        ['20261207T120000Z-v42/..', 'x'],
        [id, '../escape'],
        [id, 'sub/dir'],
        [id, '..'],
        [id, ''],
        [id, 'line\nbreak'],
      ];
      for (const [badId, badName] of odd) {
        const refused = /refused/;
        await expect(t.repo.put(badId, badName, f.at, f.expect)).rejects.toThrow(refused);
        await expect(t.repo.read(badId, badName, { size: 1 })).rejects.toThrow(refused);
        await expect(t.repo.hasFile(badId, badName, f.expect)).rejects.toThrow(refused);
        await expect(t.repo.remove(badId, badName)).rejects.toThrow(refused);
      }
      await expect(t.repo.listFiles('../..', budget())).rejects.toThrow(/refused/);
      expect((await ids()).ids).toEqual([]);
      expect((await ids()).skipped).toEqual([]);
    });

    test('a listing holds only plain files of the snapshot: what was planted beside them is left out', async () => {
      const f = await file('metadata.mfs.back', bytes);
      await t.repo.put(id, 'metadata.mfs.back', f.at, f.expect);
      await t.plant(`${id}/sub/changelog.0.mfs`, bytes);
      await t.plant(`${id}/back\\slash`, bytes);
      await t.plant('not-an-id/metadata.mfs.back', bytes);
      await t.plant('20261207T120000Z-v42x/metadata.mfs.back', bytes);
      const names = (await listed()).map((e) => e.name);
      expect(names).toContain('metadata.mfs.back');
      expect(names.filter((n) => plainNameProblem(n))).toEqual([]);
      expect(names).not.toContain('changelog.0.mfs');
      const { ids: found, skipped } = await ids();
      expect(found).toEqual([id]);
      expect(skipped.sort()).toEqual(['20261207T120000Z-v42x', 'not-an-id']);
    });

    test('sizes: a file replaced by a bigger one is listed as it is, hasFile says no, a bounded read refuses it', async () => {
      const f = await file('metadata.mfs.back', bytes);
      await t.repo.put(id, 'metadata.mfs.back', f.at, f.expect);
      const inflated = Buffer.alloc(2 * 2 ** 20, 1);
      await t.plant(`${id}/metadata.mfs.back`, inflated);
      expect(await listed()).toEqual([{ name: 'metadata.mfs.back', size: inflated.length }]);
      expect(await t.repo.hasFile(id, 'metadata.mfs.back', f.expect)).toBe(false);
      const read = t.repo.read(id, 'metadata.mfs.back', { size: bytes.length }).then(readAll);
      await expect(read).rejects.toThrow(/more than/);
    });

    test('a listing longer than its budget is refused as it arrives, in one line naming the copy', async () => {
      for (let i = 0; i < 12; i++) await t.plant(`${id}/changelog.${i}.mfs`, Buffer.from('x'));
      const small = budget({ entries: 10 });
      try {
        await expect(t.repo.listFiles(id, small)).rejects.toThrow(new RegExp(t.repo.name));
      } finally {
        small.end();
      }
    });
  });
}
