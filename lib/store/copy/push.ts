import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, CopyConfig } from '../../core/config.js';
import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { MANIFEST, onDisk, type ManifestFile, type StoredSnapshot } from '../manifest.js';
import { sha256File } from '../snapshot-store.js';
import { storeKeys } from '../stored-file.js';
import { listCopy, listSnapshotFiles } from './listing.js';
import { planCopy } from './plan.js';
import { readPins } from '../pins.js';
import { restoreFrom } from '../../moosefs/metadata.js';
import { openCopy } from './open.js';
import type { CopyRepository } from './repository.js';

/**
 * Push the store's verified snapshots to one off-site copy and apply the copy's retention. Data
 * files first, manifest.json last: a snapshot on a copy is complete exactly when its manifest is
 * there. A file already there (hasFile) is not sent again, so an interrupted push resumes. Any
 * failure ends this copy's run with its error; it never touches the local store.
 */
export interface CopyRun {
  copy: string;
  type: CopyConfig['type'];
  /** Where, for the operator (no secrets). */
  label: string;
  ok: boolean;
  error?: string;
  sentFiles: number;
  skippedFiles: number;
  sentBytes: number;
  /** Snapshots completed on the copy by this run. */
  pushed: string[];
  /** Snapshots retention removed from the copy. */
  removed: string[];
  /** Incomplete leftovers removed (an upload nothing will finish). */
  removedIncomplete: string[];
  /** Complete snapshots on the copy after the run (as far as it got). */
  complete: string[];
  seconds: number;
  /** --dry-run: what a real run would send and remove. */
  wouldPush?: string[];
  wouldRemove?: string[];
  /** The version each complete snapshot left on the copy restores from (what its archive must reach). */
  retainedStarts?: number[];
  /** Archive segments removed from the copy: older than every image it keeps (issue #26). */
  removedSegments?: string[];
}

/** A run that has sent nothing yet (push, and the archive's pushes and compaction). */
export function emptyCopyRun(copy: string, type: CopyRun['type'], label: string): CopyRun {
  return {
    copy,
    type,
    label,
    ok: false,
    sentFiles: 0,
    skippedFiles: 0,
    sentBytes: 0,
    pushed: [],
    removed: [],
    removedIncomplete: [],
    complete: [],
    seconds: 0,
  };
}

/** Remove a remote snapshot so it never looks complete while half gone: the manifest goes first. */
export async function removeRemoteSnapshot(repo: CopyRepository, id: string): Promise<void> {
  const files = await listSnapshotFiles(repo, id);
  if (files.some((f) => f.name === MANIFEST)) await repo.remove(id, MANIFEST);
  for (const f of files) if (f.name !== MANIFEST) await repo.remove(id, f.name);
  await repo.removeSnapshotDir(id);
}

/** One snapshot (or archive segment: the same form) onto the copy: its stored files, then its manifest. */
export async function pushSnapshot(
  repo: CopyRepository,
  snapshot: { id: string; dir: string; manifest: { files: ManifestFile[] } },
  run: CopyRun,
  signal: AbortSignal,
): Promise<void> {
  const listed = new Map((await listSnapshotFiles(repo, snapshot.id, signal)).map((f) => [f.name, f]));
  // The stored bytes (compressed, sealed), byte for byte: a copy needs no key and decompresses nothing.
  for (const f of snapshot.manifest.files.map(onDisk)) {
    signal.throwIfAborted();
    const expect = { size: f.size, sha256: f.sha256 };
    const there = listed.get(f.name);
    if (there && (await repo.hasFile(snapshot.id, f.name, expect, there))) {
      run.skippedFiles++;
      continue;
    }
    await repo.put(snapshot.id, f.name, path.join(snapshot.dir, f.name), expect);
    run.sentFiles++;
    run.sentBytes += f.size;
  }
  signal.throwIfAborted();
  const manifestFile = path.join(snapshot.dir, MANIFEST);
  const { size } = await fs.stat(manifestFile);
  await repo.put(snapshot.id, MANIFEST, manifestFile, { size, sha256: await sha256File(manifestFile) });
  run.sentFiles++;
  run.sentBytes += size;
  run.pushed.push(snapshot.id);
}

/** `dryRun`: list the copy and plan, send and remove nothing (`wouldPush`, `wouldRemove`). */
export async function pushToCopy(
  config: Config,
  copy: CopyConfig,
  local: readonly StoredSnapshot[],
  log: Logger,
  signal: AbortSignal,
  dryRun = false,
): Promise<CopyRun> {
  const started = Date.now();
  const run = emptyCopyRun(copy.name, copy.type, copy.name);
  let repo: CopyRepository | undefined;
  const complete = new Set<string>();
  try {
    repo = await openCopy(config, copy, signal);
    run.label = repo.label;
    // A copy's snapshot whose manifest is not signed by the store's key (forged, or from before signing)
    // is not complete: a local snapshot of that id is sent again, its signed manifest over the old one.
    const listing = await listCopy(repo, await storeKeys(config), { signal });
    for (const s of listing.complete) complete.add(s.id);
    const plan = planCopy({
      local,
      complete: listing.complete,
      incomplete: listing.incomplete,
      retention: copy.retention ?? config.snapshotStore!.retention,
      zone: config.timezone,
      pinned: new Set(Object.keys(await readPins(config.snapshotStore!.path))),
    });
    const images = new Map([...local, ...listing.complete].map((s) => [s.id, s.manifest.image]));
    const startsOf = (ids: Iterable<string>) =>
      [...new Set([...ids].map((id) => restoreFrom(images.get(id)!)))].sort((a, b) => a - b);
    if (dryRun) {
      const dropped = new Set(plan.remove);
      run.retainedStarts = startsOf([...plan.push, ...[...complete].filter((id) => !dropped.has(id))]);
      run.wouldPush = plan.push;
      run.wouldRemove = [...plan.remove, ...plan.removeIncomplete];
      run.ok = true;
      return run;
    }
    for (const id of plan.push) {
      await pushSnapshot(
        repo,
        local.find((s) => s.id === id)!,
        run,
        signal,
      );
      complete.add(id);
      log.info('snapshot pushed to copy', { copy: copy.name, snapshot: id });
    }
    for (const id of plan.remove) {
      await removeRemoteSnapshot(repo, id);
      complete.delete(id);
      run.removed.push(id);
    }
    for (const id of plan.removeIncomplete) {
      await removeRemoteSnapshot(repo, id);
      run.removedIncomplete.push(id);
    }
    run.retainedStarts = startsOf(complete);
    run.ok = true;
  } catch (err) {
    if (signal.aborted) throw err;
    run.error = describeError(err);
  } finally {
    await repo?.close().catch(() => undefined);
    run.complete = [...complete].sort();
    run.seconds = (Date.now() - started) / 1000;
  }
  return run;
}
