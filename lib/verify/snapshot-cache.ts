import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { planRestore } from '../moosefs/restore-model.js';
import type { StoredSnapshot } from '../store/manifest.js';

import { storedPathOf, type StoreKeys } from '../store/stored-file.js';
import { inspectSnapshot, type SnapshotFacts } from './source.js';

/**
 * Verify reads every retained snapshot, but not every run: a snapshot that verified clean and whose
 * files are unchanged since (size and mtime on disk, the manifest's stored and content sha256, the
 * key) is taken from `<stateDir>/verify-snapshots.json`. A damaged one is never cached: it is read
 * again (and named again) every run. Written like every state file: temp, fsync, rename, 0600.
 */
export const CACHE_FILE = 'verify-snapshots.json';

interface CacheEntry {
  signature: string;
  checkedAt: string;
  facts: Omit<SnapshotFacts, 'snapshot' | 'plan'>;
}

interface CacheFile {
  formatVersion: 1;
  /** Store path → snapshot id → entry. */
  stores: Record<string, Record<string, CacheEntry>>;
}

export function cacheFile(stateDir: string): string {
  return path.join(stateDir, CACHE_FILE);
}

async function readCache(file: string): Promise<CacheFile> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as CacheFile;
    if (parsed?.formatVersion === 1 && parsed.stores && typeof parsed.stores === 'object') return parsed;
  } catch {
    // Missing or unreadable: everything is read again, and the file written anew.
  }
  return { formatVersion: 1, stores: {} };
}

/** What must not change for a cached verdict to stand; undefined when a file is missing. */
async function signatureOf(s: StoredSnapshot, keys: StoreKeys | undefined): Promise<string | undefined> {
  const parts: unknown[] = [s.manifest.finishedAt, keys?.key?.id ?? null];
  for (const f of s.manifest.files) {
    const st = await fs.stat(storedPathOf(s, f)).catch(() => undefined);
    if (!st) return undefined;
    parts.push([f.name, f.stored?.name ?? null, st.size, st.mtimeMs, st.ino, f.sha256, f.stored?.sha256 ?? null]);
  }
  return JSON.stringify(parts);
}

export interface SweepResult {
  /** Every snapshot's facts, oldest first. */
  facts: SnapshotFacts[];
  /** Snapshots read this run (new, changed, or damaged before). */
  rechecked: string[];
  /** Snapshots taken from the cache. */
  cached: string[];
}

function clean(f: SnapshotFacts): boolean {
  return (
    f.files.every((x) => !x.problem) &&
    f.images.every((i) => i.header && !i.error) &&
    f.changelogs.every((c) => c.scan.problems.length === 0)
  );
}

/** Check every snapshot of `store`, reading only those the cache cannot vouch for. */
export async function sweepSnapshots(
  stateDir: string,
  store: string,
  snapshots: readonly StoredSnapshot[],
  o: { keys?: StoreKeys; signal?: AbortSignal; maxAgeMs?: number },
): Promise<SweepResult> {
  const file = cacheFile(stateDir);
  const cache = await readCache(file);
  const before = cache.stores[store] ?? {};
  const after: Record<string, CacheEntry> = {};
  const result: SweepResult = { facts: [], rechecked: [], cached: [] };
  for (const s of snapshots) {
    const signature = await signatureOf(s, o.keys);
    const hit = before[s.id];
    const fresh = hit && (o.maxAgeMs === undefined || Date.now() - Date.parse(hit.checkedAt) < o.maxAgeMs);
    if (signature !== undefined && hit && fresh && hit.signature === signature) {
      result.facts.push({ snapshot: s, ...hit.facts, plan: planRestore(hit.facts.images, hit.facts.changelogs) });
      result.cached.push(s.id);
      after[s.id] = hit;
      continue;
    }
    const facts = await inspectSnapshot(s, o);
    result.facts.push(facts);
    result.rechecked.push(s.id);
    // The signature is taken before the read: a file replaced while we read it is read again next run.
    if (signature !== undefined && clean(facts))
      after[s.id] = {
        signature,
        checkedAt: new Date().toISOString(),
        facts: { files: facts.files, images: facts.images, changelogs: facts.changelogs },
      };
  }
  cache.stores[store] = after;
  await writeFileAtomic(file, JSON.stringify(cache) + '\n');
  return result;
}
