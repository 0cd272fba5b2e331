import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncDir, renameDurable, writeFileAtomic } from '../core/atomic.js';
import { ChainError } from '../core/errors.js';
import { printable } from '../core/names.js';
import { MANIFEST, readManifest, signManifest, snapshotsDir, type Manifest, type ManifestFile } from './manifest.js';
import { makeStageDir, TEMP_PREFIX, tmpDir, verifySnapshot } from './snapshot-store.js';
import { copySnapshotFile, storeStagedFile, type StoreWriteSettings } from './stored-file.js';

/**
 * `mfs-jobs snapshot sign`: the migration of a store that gets a key (or of snapshots written before
 * manifests were signed). Readers refuse a manifest without a MAC once a key is configured; this is the
 * only way one becomes trusted again, and only for the local store (root's own directory), only for a
 * manifest that carries no MAC at all (one with a wrong MAC is forged or of another key: never laundered),
 * only after every byte of the snapshot verified against it, and only when the operator says `--yes`.
 * Copies are never signed here: backup sends the re-signed snapshot to each copy again.
 *
 * An encrypted store's snapshot is re-written in the current form (plaintext sha256 and tail dropped,
 * files sealed for their snapshot and name, unencrypted files sealed): decrypted and checked into a stage
 * directory, stored again, then put in place of the old one.
 */
export interface SignPlan {
  /** Unsigned snapshots that verified and will be (or were) signed. */
  sign: string[];
  /** Already signed by the configured key. */
  signed: string[];
  /** Not signed, with why (forged MAC, another key, damaged content). */
  refused: { id: string; error: string }[];
}

export async function signSnapshots(store: string, settings: StoreWriteSettings, apply: boolean): Promise<SignPlan> {
  const plan: SignPlan = { sign: [], signed: [], refused: [] };
  const root = snapshotsDir(store);
  const ids = (await fs.readdir(root).catch(() => [] as string[])).sort();
  for (const id of ids) {
    const dir = path.join(root, id);
    try {
      await readManifest(dir, settings);
      plan.signed.push(id);
      continue;
    } catch {
      // Not trusted as it is: an unsigned one may be migrated below.
    }
    try {
      const legacy = await readManifest(dir, settings, { unsignedToMigrate: true });
      if (legacy.mac !== undefined) {
        const why =
          'its manifest carries a MAC that does not check out with the configured key (forged, or another key)';
        throw new ChainError(dir, `${why}: not re-signed`);
      }
      if (legacy.id !== id) throw new ChainError(dir, `its manifest says id ${printable(legacy.id)}`);
      const problems = await verifySnapshot(dir, legacy, settings);
      if (problems.length) throw new ChainError(dir, `does not verify: ${problems.join('; ')}`);
      plan.sign.push(id);
      if (apply) await (settings.key ? reseal(store, dir, legacy, settings) : writeSigned(dir, legacy, settings));
    } catch (err) {
      plan.refused.push({ id, error: (err as Error).message.replace(`${path.join(dir, MANIFEST)}: `, '') });
    }
  }
  return plan;
}

async function writeSigned(dir: string, m: Manifest, settings: StoreWriteSettings): Promise<void> {
  await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(signManifest(m, settings), null, 2) + '\n');
  await fsyncDir(dir);
}

/** Decrypt and check every file into a stage, store it in the current (sealed) form, sign, swap in. */
async function reseal(store: string, dir: string, m: Manifest, settings: StoreWriteSettings): Promise<void> {
  const stage = await makeStageDir(store, 'sign');
  try {
    const files: ManifestFile[] = [];
    for (const f of m.files) {
      await copySnapshotFile({ id: m.id, dir, manifest: m }, f, path.join(stage, f.name), { keys: settings });
      const { stored: _stored, hmac: _hmac, ...plain } = f;
      // copySnapshotFile checked the content against the legacy sha256 (an unencrypted store's manifests have it).
      files.push(await storeStagedFile(stage, plain, settings, m));
    }
    const next = signManifest({ ...m, files }, settings);
    await writeFileAtomic(path.join(stage, MANIFEST), JSON.stringify(next, null, 2) + '\n');
    const problems = await verifySnapshot(stage, await readManifest(stage, settings), settings);
    if (problems.length) throw new ChainError(dir, `re-sealed copy does not verify: ${problems.join('; ')}`);
    // Old aside, new in, old removed: a crash between the renames leaves the old one whole in .tmp/.
    const doomed = path.join(tmpDir(store), `${TEMP_PREFIX}delete-${m.id}-${process.pid}`);
    await renameDurable(dir, doomed);
    await renameDurable(stage, dir);
    await fs.rm(doomed, { recursive: true, force: true });
    await fsyncDir(tmpDir(store));
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
