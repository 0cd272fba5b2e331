import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { listSnapshots } from '../../lib/store/manifest.js';
import { readLatest, verifySnapshot } from '../../lib/store/snapshot-store.js';
import { MFS_JOBS_BIN, runCli, startCli } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import type { LabMaster } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { FaultProxy, knownHostsAt } from '../lab/proxy.js';

/**
 * The image being copied into a staged snapshot right now, if any bytes have landed: a default (zstd) store
 * copies it over SFTP as `<name>.download`, then stores it as `<name>.zst` (issue 28).
 */
async function partialImage(store: string, notIn?: string): Promise<{ stage: string; size: number } | undefined> {
  const tmp = path.join(store, '.tmp');
  for (const stage of await fs.readdir(tmp).catch(() => [] as string[])) {
    if (stage === notIn) continue;
    const st = await fs.stat(path.join(tmp, stage, 'metadata.mfs.back.download')).catch(() => undefined);
    if (st && st.size > 0) return { stage, size: st.size };
  }
  return undefined;
}

describe('backup interrupted mid-transfer (a throttled link to the real sshd)', () => {
  let lab: Lab;
  let big: LabMaster;
  let link: FaultProxy;
  let imageSize: number;
  let linkKnownHosts: string;
  const image = () => path.join(big.dataPath, 'metadata.mfs.back');
  const storeOf = (name: string) => path.join(lab.dir, name);

  /** A config backing up the big master into its own store, through the slow link or directly. */
  async function configFor(name: string, slow: boolean): Promise<string> {
    return lab.writeConfig(
      {
        masters: [masterEntry('big', big, slow ? { port: link.port, knownHosts: linkKnownHosts } : undefined)],
        snapshotStore: { path: storeOf(name) },
      },
      `${name}-${slow ? 'slow' : 'direct'}.yaml`,
    );
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: false });
    big = await bigMaster(path.join(lab.dir, 'big'), 40_000);
    imageSize = (await fs.stat(image())).size;
    link = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port }, { bytesPerSecond: 1_000_000 });
    linkKnownHosts = await knownHostsAt(lab, link.port, 'link');
  });
  afterAll(async () => {
    await link?.stop();
    await big?.stop();
    await lab?.stop();
  });

  test('kill -9 of `mfs-jobs run backup` mid-transfer: no snapshot appears; the next run removes the temp dir and succeeds', async () => {
    expect(imageSize).toBeGreaterThan(2_000_000);
    const store = storeOf('killed');
    const run = startCli(['run', 'backup', '--config', await configFor('killed', true)]);
    const partial = await waitFor('image bytes to land in the staged snapshot', () => partialImage(store), 30_000, 10);
    process.kill(run.child.pid!, 'SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    expect(partial.size).toBeLessThan(imageSize);
    expect((await listSnapshots(store, {})).snapshots).toEqual([]);
    expect(await readLatest(store)).toBeUndefined();
    expect(await fs.readdir(path.join(store, '.tmp'))).toEqual([partial.stage]);

    const next = await runCli(['run', 'backup', '--config', await configFor('killed', false)]);
    expect(next.code).toBe(0);
    expect(next.stdout).toContain(`removed leftover temp ${partial.stage} (from an interrupted run)`);
    expect(await fs.readdir(path.join(store, '.tmp'))).toEqual([]);
    const [snap] = (await listSnapshots(store, {})).snapshots;
    expect(snap!.manifest.files[0]!.size).toBe(imageSize);
    expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
  });

  test('SIGTERM mid-transfer stops at once and cleans up: CRITICAL, no snapshot, no temp dir', async () => {
    const store = storeOf('terminated');
    const run = startCli(['run', 'backup', '--config', await configFor('terminated', true)]);
    await waitFor('image bytes to land', () => partialImage(store), 30_000, 10);
    run.child.kill('SIGTERM');
    const res = await run.done;
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/^MFS BACKUP CRITICAL - interrupted by SIGTERM/);
    expect((await listSnapshots(store, {})).snapshots).toEqual([]);
    expect(await fs.readdir(path.join(store, '.tmp'))).toEqual([]);
  });

  test('an image rewritten during the copy is noticed (size/mtime before and after) and fetched once more', async () => {
    const store = storeOf('changed-once');
    const run = startCli(['run', 'backup', '--config', await configFor('changed-once', true), '--json']);
    await waitFor('image bytes to land', () => partialImage(store), 30_000, 10);
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
    await fs.utimes(image(), mtime, mtime);
    const res = await run.done;
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.details.sources[0]).toMatchObject({ result: 'snapshot', attempts: 2 });
    expect(res.stderr).toMatch(/metadata\.mfs\.back: size\/mtime changed during the copy.*trying once more/);
    const [snap] = (await listSnapshots(store, {})).snapshots;
    expect(snap!.manifest.files[0]!.sourceMtimeMs).toBe(mtime.getTime());
    expect(await verifySnapshot(snap!.dir, undefined, {})).toEqual([]);
  });

  test('an image that changes during the copy and again during the retry: CRITICAL, no snapshot', async () => {
    const store = storeOf('changed-twice');
    const run = startCli(['run', 'backup', '--config', await configFor('changed-twice', true)]);
    const first = await waitFor('image bytes to land', () => partialImage(store), 30_000, 10);
    let mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 7_200_000);
    await fs.utimes(image(), mtime, mtime);
    await waitFor('the retry to copy the image', () => partialImage(store, first.stage), 30_000, 10);
    mtime = new Date(mtime.getTime() - 3_600_000);
    await fs.utimes(image(), mtime, mtime);
    const res = await run.done;
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(
      /^MFS BACKUP CRITICAL - big: big:.*metadata\.mfs\.back: size\/mtime changed during the copy .*; changed again on the retry, no snapshot taken/,
    );
    expect((await listSnapshots(store, {})).snapshots).toEqual([]);
    expect(await fs.readdir(path.join(store, '.tmp'))).toEqual([]);
  });

  test('on a terminal, the transfer shows its progress', async () => {
    const cfg = await configFor('tty', true);
    const res = await execCapture(
      'script',
      ['-qec', `${process.execPath} ${MFS_JOBS_BIN} run backup --config ${cfg}`, '/dev/null'],
      { timeoutMs: 60_000 },
    );
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/big: metadata\.mfs\.back +\d+% [\d.]+ [kM]B\/[\d.]+ MB/);
    expect(res.stdout).toMatch(/big: metadata\.mfs\.back 100% /);
    expect(res.stdout).toContain('MFS BACKUP OK - big: snapshot');
  });
});
