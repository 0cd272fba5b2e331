import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listSnapshots, snapshotId } from '../../../lib/store/manifest.js';
import {
  finaliseSnapshot,
  freeSnapshotId,
  isNoSpace,
  leftoverTemps,
  makeStageDir,
  readLatest,
  refreshLatest,
  removeLeftoverTemps,
  removeSnapshot,
  verifySnapshot,
  viewStore,
} from '../../../lib/store/snapshot-store.js';
import { trimCutLastLine } from '../../../lib/transport/transfer.js';
import { stageSyntheticSnapshot } from '../../helpers/synthetic-snapshot.js';

const stagedSnapshot = (store: string, at: Date) => stageSyntheticSnapshot(store, { at });

describe('snapshot store write side', () => {
  let store: string;
  beforeEach(async () => {
    store = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-store-'));
  });
  afterEach(async () => {
    await fs.rm(store, { recursive: true, force: true });
  });

  test('a staged snapshot appears complete under snapshots/<id>, verifies, and latest points at it', async () => {
    const { stage, manifest } = await stagedSnapshot(store, new Date('2026-05-01T10:00:00Z'));
    const dir = await finaliseSnapshot(store, stage, manifest, {});
    expect(path.basename(dir)).toBe('20260501T100000Z-v12');
    await expect(fs.stat(stage)).rejects.toThrow();
    expect(await verifySnapshot(dir, undefined, {})).toEqual([]);
    expect(await refreshLatest(store, {})).toBe('20260501T100000Z-v12');
    expect(await readLatest(store)).toBe('20260501T100000Z-v12');
    expect(await fs.readlink(path.join(store, 'latest'))).toBe('snapshots/20260501T100000Z-v12');
  });

  test('verify names a changed byte, a missing file, an extra file, and a chain that stops short', async () => {
    const { stage, manifest } = await stagedSnapshot(store, new Date('2026-05-01T10:00:00Z'));
    const dir = await finaliseSnapshot(store, stage, { ...manifest, reachesVersion: 13 }, {});
    expect(await verifySnapshot(dir, undefined, {})).toEqual(['chain reaches version 12, manifest says 13']);
    await fs.writeFile(path.join(dir, 'changelog.0.mfs'), '9: 1|A(1)\n11: 1|C(1)\n');
    await fs.writeFile(path.join(dir, 'stray'), 'x');
    const problems = await verifySnapshot(dir, undefined, {});
    expect(problems).toContain('stray: not in the manifest');
    expect(problems.some((p) => /^changelog\.0\.mfs: \d+ bytes, manifest says \d+$/.test(p))).toBe(true);
    // Size first (it explains the checksum); the same size with a changed byte is named by its sha256.
    const original = (await fs.readFile(path.join(dir, 'changelog.0.mfs'), 'latin1')).length;
    await fs.writeFile(
      path.join(dir, 'changelog.0.mfs'),
      'y'.repeat(manifest.files.find((f) => f.name === 'changelog.0.mfs')!.size),
    );
    expect(original).toBeGreaterThan(0);
    expect(
      (await verifySnapshot(dir, undefined, {})).some((p) =>
        /^changelog\.0\.mfs: sha256 [0-9a-f]{12}… does not match the manifest/.test(p),
      ),
    ).toBe(true);
    await fs.rm(path.join(dir, 'metadata.mfs.back'));
    expect(await verifySnapshot(dir, undefined, {})).toContain('metadata.mfs.back: missing');
    const view = await viewStore(store, {});
    expect(view.healthy).toEqual([]);
    expect(view.broken[0]).toMatchObject({ id: manifest.id, error: 'metadata.mfs.back is missing' });
  });

  test('an id taken in the same second moves on by a second', async () => {
    const at = new Date('2026-05-01T10:00:00Z');
    const { stage, manifest } = await stagedSnapshot(store, at);
    await finaliseSnapshot(store, stage, manifest, {});
    expect(await freeSnapshotId(store, at, 12, snapshotId)).toBe('20260501T100001Z-v12');
  });

  test('removal never shows half a snapshot; leftovers of killed runs are found and removed', async () => {
    const { stage, manifest } = await stagedSnapshot(store, new Date('2026-05-01T10:00:00Z'));
    await finaliseSnapshot(store, stage, manifest, {});
    const killed = await makeStageDir(store, 'snapshot');
    await fs.writeFile(path.join(killed, 'metadata.mfs.back'), 'partial');
    await fs.writeFile(path.join(store, '.tmp', 'not-ours'), 'x');
    expect(await leftoverTemps(store)).toEqual([path.basename(killed)]);
    await removeSnapshot(store, manifest.id);
    expect((await listSnapshots(store, {})).snapshots).toEqual([]);
    expect(await removeLeftoverTemps(store)).toEqual([path.basename(killed)]);
    expect(await fs.readdir(path.join(store, '.tmp'))).toEqual(['not-ours']);
    expect(await refreshLatest(store, {})).toBeUndefined();
    expect(await readLatest(store)).toBeUndefined();
  });

  test('a changelog copy loses only its cut last line', async () => {
    const f = path.join(store, 'changelog.0.mfs');
    await fs.writeFile(f, '1: 1|A(1)\n2: 1|B(1)\n3: 1|C(');
    expect(await trimCutLastLine(f)).toBe(7);
    expect(await fs.readFile(f, 'utf8')).toBe('1: 1|A(1)\n2: 1|B(1)\n');
    expect(await trimCutLastLine(f)).toBe(0);
    await fs.writeFile(f, 'no newline at all');
    expect(await trimCutLastLine(f)).toBe(17);
    expect((await fs.stat(f)).size).toBe(0);
  });

  test('ENOSPC is recognised however deep an SFTP library wraps it; plain transfer errors are not', () => {
    const local = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(isNoSpace(local)).toBe(true);
    expect(
      isNoSpace(new Error('download x: fastGet->sftp: ENOSPC: no space left on device, write Remote: x Local: y')),
    ).toBe(true);
    expect(isNoSpace(new Error('wrapped', { cause: new Error('again', { cause: local }) }))).toBe(true);
    expect(isNoSpace(new Error('fastGet->sftp: No such file'))).toBe(false);
  });
});
