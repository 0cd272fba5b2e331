import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { gzipSync } from 'node:zlib';
import { runCli } from '../helpers/cli.js';
import { scratchStores, syntheticSnapshot } from '../helpers/synthetic-snapshot.js';
import { listSnapshots, readManifest } from '../../lib/store/manifest.js';
import { attackTest } from '../faults/results.js';
import { exportSnapshot } from '../../lib/store/snapshot-archive.js';

/**
 * Hostile archives against the real `mfs-jobs snapshot import | export | list | show`: real stores on
 * disk, real tar.gz files, the real executable.
 */
describe('snapshot import/export/list refuse hostile archives', () => {
  let scratch: Awaited<ReturnType<typeof scratchStores>>;
  beforeEach(async () => {
    scratch = await scratchStores();
  });
  afterEach(async () => {
    await scratch.remove();
  });

  /** A snapshot made in its own store and exported with the real CLI. */
  async function archiveOf(
    name: string,
    o: Parameters<typeof syntheticSnapshot>[1] = {},
  ): Promise<{ id: string; archive: string }> {
    const { store, config } = await scratch.configFor(`${name}-source`);
    const snap = await syntheticSnapshot(store, o);
    const archive = path.join(scratch.dir, `${name}.tar.gz`);
    const res = await runCli(['snapshot', 'export', snap.id, archive, '--config', config]);
    expect(res.stderr).toBe('');
    return { id: snap.id, archive };
  }

  /** An archive of `<id>/…` written by hand (what export would never make). */
  async function handMade(
    name: string,
    id: string,
    files: Record<string, string | Buffer>,
    options: { uid?: number; mode?: number } = {},
  ): Promise<string> {
    const root = path.join(scratch.dir, `${name}-tree`);
    await fs.mkdir(path.join(root, id), { recursive: true });
    for (const [n, body] of Object.entries(files)) {
      await fs.writeFile(path.join(root, id, n), body, { mode: options.mode ?? 0o644 });
      if (options.uid !== undefined) await fs.chown(path.join(root, id, n), options.uid, options.uid);
    }
    if (options.uid !== undefined) await fs.chown(path.join(root, id), options.uid, options.uid);
    const archive = path.join(scratch.dir, `${name}.tar.gz`);
    await tar.c({ gzip: true, file: archive, cwd: root, portable: options.uid === undefined }, [id]);
    return archive;
  }

  attackTest(
    'hostile archive',
    'snapshot of another metaid (import)',
    'a snapshot of another filesystem (metaid) is refused naming both metaids; --other-filesystem takes it; an empty store takes any',
    async () => {
      const { archive, id } = await archiveOf('foreign', { metaid: 0xcdn, at: new Date(Date.now() - 3600_000) });
      const target = await scratch.configFor('target');
      await syntheticSnapshot(target.store, { metaid: 0xabn, at: new Date(Date.now() - 7200_000) });
      const refused = await runCli(['snapshot', 'import', archive, '--config', target.config]);
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toContain(archive);
      expect(refused.stderr).toContain('metaid 00000000000000CD');
      expect(refused.stderr).toContain('holds metaid 00000000000000AB');
      expect(refused.stderr).toContain('--other-filesystem');
      expect((await listSnapshots(target.store, {})).snapshots.map((s) => s.id)).not.toContain(id);
      const moved = await runCli(['snapshot', 'import', archive, '--other-filesystem', '--config', target.config]);
      expect(moved.stdout).toContain(`imported snapshot ${id}`);
      const empty = await scratch.configFor('empty');
      expect((await runCli(['snapshot', 'import', archive, '--config', empty.config])).stdout).toContain(
        `imported snapshot ${id}`,
      );
    },
  );

  attackTest(
    'hostile archive',
    'snapshot from the future (import)',
    'a snapshot from more than 10 minutes in the future is refused naming its id; 5 minutes of skew is fine',
    async () => {
      const future = await archiveOf('future', { at: new Date(Date.now() + 3600_000) });
      const target = await scratch.configFor('target');
      const refused = await runCli(['snapshot', 'import', future.archive, '--config', target.config]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        new RegExp(`^mfs-jobs: .*future\\.tar\\.gz: snapshot ${future.id} is from the future`),
      );
      expect((await listSnapshots(target.store, {})).snapshots).toEqual([]);
      const skewed = await archiveOf('skewed', { at: new Date(Date.now() + 5 * 60_000) });
      expect((await runCli(['snapshot', 'import', skewed.archive, '--config', target.config])).stdout).toContain(
        `imported snapshot ${skewed.id}`,
      );
    },
  );

  attackTest(
    'hostile archive',
    'manifest names outside the snapshot (import)',
    'a manifest naming a file outside the snapshot (../, /, control characters) is refused before it is opened, the name shown escaped',
    async () => {
      const good = await archiveOf('good', { at: new Date(Date.now() - 60_000) });
      const tree = path.join(scratch.dir, 'unpacked');
      await fs.mkdir(tree);
      await tar.x({ file: good.archive, cwd: tree });
      const manifest = await readManifest(path.join(tree, good.id), {});
      const target = await scratch.configFor('target');
      for (const bad of ['../../outside', '/etc/shadow', 'changelog.0.mfs\u001b[2J', '..', '']) {
        const m = { ...manifest, files: manifest.files.map((f, i) => (i === 1 ? { ...f, name: bad } : f)) };
        const files = {
          'manifest.json': JSON.stringify(m),
          'metadata.mfs.back': await fs.readFile(path.join(tree, good.id, 'metadata.mfs.back')),
          'changelog.0.mfs': await fs.readFile(path.join(tree, good.id, 'changelog.0.mfs')),
        };
        const archive = await handMade(`bad-name-${bad.length}`, good.id, files);
        const res = await runCli(['snapshot', 'import', archive, '--config', target.config]);
        expect(res.code).toBe(2);
        expect(res.stderr).toMatch(/files\[1\]\.name .* is not a plain file name/);
        expect(res.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
        expect(res.stderr.trim().split('\n')).toHaveLength(1);
      }
      const garbled = await handMade('garbled', good.id, {
        'manifest.json': '{"formatVersion": 1, secret-content \u001b[2J',
        'metadata.mfs.back': 'x',
      });
      const res = await runCli(['snapshot', 'import', garbled, '--config', target.config]);
      expect(res.stderr).toMatch(/manifest\.json: unreadable manifest \(not valid JSON\)$/m);
      expect(res.stderr).not.toContain('secret');
      expect((await listSnapshots(target.store, {})).snapshots).toEqual([]);
    },
  );

  attackTest(
    'hostile archive',
    'archive bigger than the free space (import)',
    "an archive bigger than the store's free space is refused before a byte is extracted, naming the archive",
    async () => {
      // One entry whose header claims 1 TiB: what a gzip bomb or a wrong archive would ask for.
      const header = new tar.Header({
        path: '20260101T000000Z-v12/changelog.0.mfs',
        type: 'File',
        size: 2 ** 40,
        mode: 0o644,
        mtime: new Date(),
      });
      const block = Buffer.alloc(512);
      header.encode(block, 0);
      const archive = path.join(scratch.dir, 'huge.tar.gz');
      await fs.writeFile(archive, gzipSync(Buffer.concat([block, Buffer.alloc(4096)])));
      const target = await scratch.configFor('target');
      const res = await runCli(['snapshot', 'import', archive, '--config', target.config]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(
        /^mfs-jobs: .*huge\.tar\.gz: refused before extracting: .*not enough free space for archive .*huge\.tar\.gz/,
      );
      expect(await fs.readdir(path.join(target.store, '.tmp'))).toEqual([]);
    },
  );

  attackTest(
    'hostile archive',
    'foreign owner and setuid mode (import)',
    'imported files belong to the importing user with mode 0600 (dir 0700), whatever uid and mode the archive carries',
    async () => {
      const good = await archiveOf('good', { at: new Date(Date.now() - 60_000) });
      const tree = path.join(scratch.dir, 'unpacked');
      await fs.mkdir(tree);
      await tar.x({ file: good.archive, cwd: tree });
      const files = Object.fromEntries(
        await Promise.all(
          (await fs.readdir(path.join(tree, good.id))).map(
            async (n) => [n, await fs.readFile(path.join(tree, good.id, n))] as const,
          ),
        ),
      );
      const archive = await handMade('foreign-owner', good.id, files, { uid: 4242, mode: 0o4755 });
      const target = await scratch.configFor('target');
      expect((await runCli(['snapshot', 'import', archive, '--config', target.config])).stdout).toContain(
        `imported snapshot ${good.id}`,
      );
      const dir = path.join(target.store, 'snapshots', good.id);
      const dirStat = await fs.stat(dir);
      expect([dirStat.uid, dirStat.mode & 0o7777]).toEqual([process.getuid!(), 0o700]);
      for (const n of await fs.readdir(dir)) {
        const st = await fs.stat(path.join(dir, n));
        expect([n, st.uid, st.gid, st.mode & 0o7777]).toEqual([n, process.getuid!(), process.getgid!(), 0o600]);
      }
    },
  );

  attackTest(
    'hostile archive',
    'symlinks planted at export temp names',
    'export never follows a symlink planted at a temp name: the victim is untouched, the archive is private and whole',
    async () => {
      const { store } = await scratch.configFor('source');
      const snap = await syntheticSnapshot(store, { at: new Date(Date.now() - 60_000) });
      const outDir = path.join(scratch.dir, 'out');
      await fs.mkdir(outDir);
      const victim = path.join(scratch.dir, 'victim');
      await fs.writeFile(victim, 'precious\n');
      const target = path.join(outDir, 'x.tar.gz');
      // Every name the old scheme (.<name>.tmp-<pid>-<ms base36>) could pick in the next few seconds.
      const now = Date.now();
      for (let ms = 0; ms < 5000; ms++)
        await fs.symlink(victim, path.join(outDir, `.x.tar.gz.tmp-${process.pid}-${(now + ms).toString(36)}`));
      const res = await exportSnapshot(store, snap.id, target, {});
      expect(await fs.readFile(victim, 'utf8')).toBe('precious\n');
      expect((await fs.lstat(target)).isFile()).toBe(true);
      expect((await fs.stat(target)).mode & 0o777).toBe(0o600);
      expect(res.bytes).toBeGreaterThan(0);
      const listed: string[] = [];
      await tar.t({ file: target, onReadEntry: (e) => listed.push(e.path) });
      expect(listed.sort()).toEqual([
        `${snap.id}/changelog.0.mfs`,
        `${snap.id}/manifest.json`,
        `${snap.id}/metadata.mfs.back`,
      ]);
      const regular = [];
      for (const n of await fs.readdir(outDir))
        if (!(await fs.lstat(path.join(outDir, n))).isSymbolicLink()) regular.push(n);
      expect(regular).toEqual(['x.tar.gz']);
    },
  );

  attackTest(
    'hostile archive',
    'escape sequences in a manifest (list, show)',
    'snapshot list and show print escape sequences and control characters from a manifest visibly, never raw',
    async () => {
      const { store, config } = await scratch.configFor('store');
      await syntheticSnapshot(store, {
        at: new Date(Date.now() - 60_000),
        edit: (m) => {
          m.source.name = 'evil\u001b]0;pwned\u0007';
          m.source.host = 'h\u001b[2J';
          m.files[0]!.sourcePath = '/src/\u009bmeta\rdata';
          m.mfsJobsVersion = 'v\u001b[31mred';
        },
      });
      for (const args of [['list'], ['show', 'latest']]) {
        const res = await runCli(['snapshot', ...args, '--config', config]);
        expect(res.code).toBe(0);
        expect(res.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
        expect(res.stdout).toContain('evil\\x1b]0;pwned\\x07');
      }
      const show = await runCli(['snapshot', 'show', 'latest', '--config', config]);
      expect(show.stdout).toContain('/src/\\x9bmeta\\x0ddata');
      expect(show.stdout).toContain('v\\x1b[31mred');
    },
  );
});
