import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { sealFile } from '../../lib/core/atomic.js';
import { snapshotId, type Manifest, type StoredSnapshot } from '../../lib/store/manifest.js';
import { finaliseSnapshot, makeStageDir, refreshLatest, sha256File } from '../../lib/store/snapshot-store.js';

/** A real MFSM 2.0 header (version 10, the given metaid) and EOF marker around a few bytes of body. */
export function imageBytes(version: number, metaid: bigint): Buffer {
  const head = Buffer.alloc(24);
  head.write('MFSM 2.0', 0, 'latin1');
  head.writeBigUInt64BE(BigInt(version), 8);
  head.writeBigUInt64BE(metaid, 16);
  return Buffer.concat([head, Buffer.from('body'), Buffer.from('[MFS EOF MARKER]')]);
}

/**
 * A small snapshot that verifies (image v10 + a changelog 9..11, reaching 12), staged in `store` the way
 * backup stages one, with its manifest not yet written.
 */
export async function stageSyntheticSnapshot(
  store: string,
  o: { at?: Date; metaid?: bigint } = {},
): Promise<{ stage: string; manifest: Manifest }> {
  const at = o.at ?? new Date();
  const metaid = o.metaid ?? 0xabn;
  const stage = await makeStageDir(store, 'synthetic');
  await fs.writeFile(path.join(stage, 'metadata.mfs.back'), imageBytes(10, metaid));
  await fs.writeFile(path.join(stage, 'changelog.0.mfs'), '9: 1|A(1)\n10: 1|B(1)\n11: 1|C(1)\n');
  for (const f of await fs.readdir(stage)) await sealFile(path.join(stage, f));
  const file = async (name: string) => ({
    name,
    size: (await fs.stat(path.join(stage, name))).size,
    sha256: await sha256File(path.join(stage, name)),
    sourcePath: `/src/${name}`,
    sourceSize: 0,
    sourceMtimeMs: 0,
  });
  const manifest: Manifest = {
    formatVersion: 1,
    id: snapshotId(at, 12),
    source: { name: 'm', host: 'h', role: 'master', dataPath: '/src' },
    image: {
      name: 'metadata.mfs.back',
      version: 10,
      metaid: metaid.toString(16).toUpperCase().padStart(16, '0'),
      empty: false,
    },
    changelogs: { first: 9, last: 11 },
    reachesVersion: 12,
    files: [
      { ...(await file('metadata.mfs.back')), role: 'image' },
      { ...(await file('changelog.0.mfs')), role: 'changelog', firstVersion: 9, lastVersion: 11 },
    ],
    mfsJobsVersion: 'test',
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
  };
  return { stage, manifest };
}

/**
 * That snapshot written into `store` as backup writes one, for tests of the store's import/export/list
 * without a MooseFS lab. `edit` changes the manifest before it is written (a hostile or odd archive).
 */
export async function syntheticSnapshot(
  store: string,
  o: { at?: Date; metaid?: bigint; edit?: (m: Manifest) => void } = {},
): Promise<StoredSnapshot> {
  const { stage, manifest } = await stageSyntheticSnapshot(store, o);
  o.edit?.(manifest);
  const dir = await finaliseSnapshot(store, stage, manifest, {});
  await refreshLatest(store, {});
  return { id: manifest.id, dir, manifest };
}

/** A scratch directory with a config whose snapshot store is `<dir>/<name>`; `configFor` adds more stores. */
export async function scratchStores(): Promise<{
  dir: string;
  configFor: (name: string) => Promise<{ store: string; config: string }>;
  remove: () => Promise<void>;
}> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-archive-'));
  return {
    dir,
    configFor: async (name) => {
      const store = path.join(dir, name);
      const config = path.join(dir, `${name}.yaml`);
      await fs.writeFile(
        config,
        YAML.stringify({
          stateDir: path.join(dir, 'state'),
          daemon: { socket: false },
          snapshotStore: { path: store },
        }),
        { mode: 0o600 },
      );
      return { store, config };
    },
    remove: () => fs.rm(dir, { recursive: true, force: true }),
  };
}
