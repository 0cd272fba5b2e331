import { randomBytes } from 'node:crypto';
import { promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { runCli, startCli } from '../helpers/cli.js';
import { withoutStore } from '../helpers/store-loss.js';
import { FakeClock, LIBFAKETIME } from '../lab/clock.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, LabMount } from '../lab/moosefs.js';
import { LabSshd } from '../lab/sshd.js';
import { archiveChain, listSegments } from '../../lib/store/segments.js';
import { loadStoreKey } from '../../lib/store/sealed.js';

/**
 * Archive compaction (issue #26) against the real thing: a master (its wall clock under libfaketime, so its
 * changelog lines span two UTC hours in seconds), `mfs-jobs run archive` sealing one segment per few lines
 * (zstd, sealed with the store key) and pushing each to an SFTP copy (a real sshd). `mfs-jobs run prune`, an
 * hour and more later by its own clock (libfaketime), merges the first hour into one segment in the store and
 * on the copy. It is killed (SIGKILL) right after it sealed the merged segment in the store, while it removes
 * the parts: readers see one gap-free chain (the merged segment, not an overlap), restore --to-version across
 * the merged and the newer segments gives a master with exactly the files before that version, and the next
 * prune removes the leftovers and compacts the copy, from which alone the same restore works.
 */
describe('archive compaction: merged hours in the store and on a copy, a kill -9 between merging and removing', () => {
  let lab: Lab;
  let clock: FakeClock;
  let copySshd: LabSshd;
  let remote: string;
  let config: string;
  let store: string;
  let keyFile: string;
  let beforeTarget = '';
  let afterTarget = '';
  let target = 0;

  /** Every run on the master's clock (the archiver refuses lines stamped in its future), or `env`'s. */
  const cli = (args: string[], env?: NodeJS.ProcessEnv) =>
    runCli([...args, '--config', config, '--json'], { env: env ?? later(0), timeoutMs: 180_000 });
  const ok = async (args: string[], env?: NodeJS.ProcessEnv) => {
    const res = await cli(args, env);
    expect(res.code === 0 ? 'ok' : `${res.stdout.slice(0, 3000)}${res.stderr.slice(0, 2000)}`).toBe('ok');
    return JSON.parse(res.stdout) as { summary: string; lines: string[]; details: Record<string, unknown> };
  };
  /** The CLI's clock: the master's, plus `hours` (so the master's first hour ended long enough ago). */
  const later = (hours: number): NodeJS.ProcessEnv => ({
    LD_PRELOAD: LIBFAKETIME,
    FAKETIME: `+${Math.round((clock.now() - Date.now()) / 1000 + hours * 3600)}s`,
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  });
  const keys = async () => ({ key: await loadStoreKey(keyFile) });
  const onCopy = async () =>
    (await fs.readdir(path.join(remote, 'archive')).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: true, masterExtra: { METADATA_SAVE_FREQ: 1 } });
    clock = await FakeClock.create(lab.dir);
    // The clean stop writes an image with these in it; the master restarts on the clock the test moves.
    await lab.makeChanges('image', 3);
    await lab.master.stop();
    await lab.master.start({ wrap: clock.wrap });
    // A fresh hour: the first hour's lines all fall in one UTC hour whenever the test runs.
    await clock.nextHour(lab.master);
    copySshd = await LabSshd.start(path.join(lab.dir, 'copy-ssh'));
    remote = path.join(lab.dir, 'offsite');
    store = path.join(lab.dir, 'store');
    keyFile = path.join(lab.dir, 'store.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    config = await lab.writeConfig({
      snapshotStore: {
        path: store,
        compression: 'zstd',
        encryption: { keyFile },
        copies: [copySshd.copyConfig('offsite', remote, { timeoutSeconds: 10 })],
      },
      // A segment every round of a few lines: many parts in one hour (the default seals one per 5 s).
      jobs: { archive: { segmentBytes: 1, readBytes: 200 } },
    });
  }, 120_000);
  afterAll(async () => {
    await copySshd?.stop();
    await lab?.stop();
  });

  test('the first hour merged; killed after sealing it: one gap-free chain, restore --to-version right', async () => {
    await ok(['run', 'backup']);
    await lab.makeChanges('hour1', 120);
    await ok(['run', 'archive']);
    await clock.nextHour(lab.master);
    await lab.makeChanges('hour2a', 10);
    target = (await lab.master.info()).metadataVersion;
    await lab.makeChanges('hour2b', 10);
    await ok(['run', 'archive']);
    const before = await listSegments(store, await keys());
    expect(before.segments.length).toBeGreaterThan(60);
    expect((await onCopy()).sort()).toEqual(before.segments.map((s) => s.id).sort());
    beforeTarget = 'hour2a';
    afterTarget = 'hour2b';

    // Killed once the merged segment is in (a new directory under archive/), while it removes the parts.
    const known = new Set(before.segments.map((s) => s.id));
    const run = startCli(['run', 'prune', '--config', config], later(1.1));
    const watcher = watch(path.join(store, 'archive'), (_event, name) => {
      if (name && !name.startsWith('.') && !known.has(name)) run.child.kill('SIGKILL');
    });
    const done = await run.done;
    watcher.close();
    expect(done.signal).toBe('SIGKILL');

    const listed = await listSegments(store, await keys());
    // The lines before the clock's first jump are an hour of their own: merged first, then the first hour's.
    expect(listed.segments.filter((s) => s.manifest.parts !== undefined).length).toBeGreaterThan(0);
    expect(listed.superseded.length).toBeGreaterThan(0);
    expect(archiveChain(listed.segments.map((s) => s.manifest))).toMatchObject({
      first: before.segments[0]!.manifest.first,
      last: before.segments.at(-1)!.manifest.last,
      holes: [],
      overlaps: [],
    });
    const verify = await cli(['run', 'verify']);
    expect(verify.stdout).not.toMatch(/overlap/i);

    await restoreAndCheck('restored', ['--latest']);
  }, 300_000);

  test('the next prune removes the leftovers and compacts the copy; restore from the copy alone', async () => {
    expect(target).toBeGreaterThan(0);
    const report = await ok(['run', 'prune'], later(1.1));
    expect(report.lines.join('\n')).toMatch(/copy offsite: archive: pushed \d merged segment/);
    const listed = await listSegments(store, await keys());
    expect(listed.superseded).toEqual([]);
    const ids = listed.segments.map((s) => s.id).sort();
    // The hour before the first jump, the first hour, and the second hour's segments as they were sealed.
    expect(listed.segments.filter((s) => s.manifest.parts !== undefined)).toHaveLength(2);
    expect((await onCopy()).sort()).toEqual(ids);
    // Nothing left to do.
    await ok(['run', 'prune'], later(1.1));
    expect((await listSegments(store, await keys())).segments.map((s) => s.id).sort()).toEqual(ids);
    expect((await onCopy()).sort()).toEqual(ids);

    await withoutStore(store, () => restoreAndCheck('restored-copy', ['--from', 'copy:offsite']));
  }, 300_000);

  /** Restore --to-version `target` into a fresh DATA_PATH; served by a fresh master, read through a mount. */
  async function restoreAndCheck(name: string, from: string[]): Promise<void> {
    const restored = await LabMaster.create(path.join(lab.dir, name), { bootstrap: false });
    const res = await cli(['restore', ...from, '--to-version', String(target), '--data-path', restored.dataPath]);
    expect({ code: res.code, out: res.stdout.slice(0, 3000) }).toMatchObject({ code: 0 });
    expect((JSON.parse(res.stdout) as { details: { restoredVersion: number } }).details.restoredVersion).toBe(target);
    await restored.start({ autoRestore: true });
    const where = { host: restored.cliHost, port: restored.ports.cl };
    const mount = await LabMount.mount(path.join(lab.dir, `${name}-mnt`), where, path.join(lab.dir, `${name}-mnt.log`));
    try {
      expect((await fs.readdir(path.join(mount.dir, 'hour1'))).length).toBe(120);
      expect((await fs.readdir(path.join(mount.dir, beforeTarget))).length).toBe(10);
      expect(await fs.readdir(path.join(mount.dir, afterTarget)).catch(() => 'absent')).toBe('absent');
    } finally {
      await mount.unmount();
      await restored.stop();
    }
  }
});
