import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../core/atomic.js';
import type { Config, CopyConfig } from '../../core/config.js';
import { describeError } from '../../core/errors.js';
import { printable } from '../../core/names.js';
import { MANIFEST, onDisk } from '../manifest.js';
import { storeKeys } from '../stored-file.js';
import { listCopy, type RemoteSnapshot } from './listing.js';
import { openCopy } from './open.js';
import { PART_SUFFIX, type CopyRepository } from './repository.js';

/**
 * Verify's look at one off-site copy: reachable, which snapshots are complete, every complete one's
 * files present with their manifest sizes, and their bytes re-read (streaming, bounded by the manifest
 * sizes and the copy's idle timeout) and hashed against the manifest — the newest every run, each older
 * one when it was not verified clean within `recheckMs` (`<stateDir>/verify-copy-<name>.json`), so every
 * retained snapshot of a copy is re-read on a schedule without moving the whole copy across the link
 * each run. A damaged file is never cached: it is read and named again every run.
 */
export interface CopyCheck {
  copy: string;
  type: CopyConfig['type'];
  label: string;
  reachable: boolean;
  error?: string;
  complete: string[];
  incomplete: string[];
  broken: { id: string; error: string }[];
  newest?: string;
  newestAgeSeconds?: number;
  /** Metadata version a restore from the newest snapshot there reaches. */
  newestReaches?: number;
  /** The snapshot whose files were re-read and hashed every run (the newest). */
  checksummed?: string;
  /** Files re-read and hashed this run, and files of older snapshots taken as verified from the cache. */
  rechecked?: number;
  cached?: number;
  /** One line per damaged or missing file, naming the snapshot and the file. */
  problems: string[];
}

async function sha256Of(repo: CopyRepository, id: string, name: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of await repo.read(id, name, { size })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function presenceProblems(s: RemoteSnapshot): string[] {
  const listed = new Map(s.files.map((f) => [f.name, f]));
  const problems: string[] = [];
  // The copy holds the stored bytes (compressed, sealed): their names, sizes and checksums.
  for (const f of s.manifest.files.map(onDisk)) {
    const there = listed.get(f.name);
    if (!there) problems.push(`snapshot ${s.id}: ${f.name} is missing`);
    else if (there.size !== f.size)
      problems.push(`snapshot ${s.id}: ${f.name} is ${there.size} bytes, manifest says ${f.size}`);
  }
  const known = new Set([MANIFEST, ...s.manifest.files.map((f) => onDisk(f).name)]);
  for (const f of s.files)
    if (!known.has(f.name) && !f.name.endsWith(PART_SUFFIX))
      problems.push(`snapshot ${s.id}: ${printable(f.name)} is not in the manifest`);
  return problems;
}

/** A copy's cache file: one per copy (names are plain), so copies checked side by side never share one. */
export function copyCacheFile(stateDir: string, copy: string): string {
  return path.join(stateDir, `verify-copy-${copy}.json`);
}

/** Snapshot id → stored file name → when it was last verified clean, at which size and sha256. */
type CopyCache = Record<string, Record<string, { size: number; sha256: string; verifiedAt: number }>>;

async function readCopyCache(file: string): Promise<CopyCache> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as { formatVersion?: number; snapshots?: CopyCache };
    if (parsed?.formatVersion === 1 && parsed.snapshots && typeof parsed.snapshots === 'object')
      return parsed.snapshots;
  } catch {
    // Missing or unreadable: every snapshot is read again, and the file written anew.
  }
  return {};
}

/**
 * `readBack: false`: presence and sizes only (a copy across a slow link, checked on a slower schedule by
 * another config). `recheckMs`: how long a clean older snapshot is taken from the cache (default 7 days).
 */
export async function checkCopy(
  config: Config,
  copy: CopyConfig,
  signal: AbortSignal,
  options: { readBack?: boolean; now?: number; recheckMs?: number } = {},
): Promise<CopyCheck> {
  const now = options.now ?? Date.now();
  const check: CopyCheck = {
    copy: copy.name,
    type: copy.type,
    label: copy.name,
    reachable: false,
    complete: [],
    incomplete: [],
    broken: [],
    problems: [],
  };
  let repo: CopyRepository | undefined;
  try {
    repo = await openCopy(config, copy, signal);
    check.label = repo.label;
    // With a key, a snapshot whose manifest the store did not sign is broken (named), never "complete".
    const listing = await listCopy(repo, await storeKeys(config), { signal });
    check.reachable = true;
    check.complete = listing.complete.map((s) => s.id);
    check.incomplete = listing.incomplete;
    check.broken = listing.broken;
    for (const s of listing.complete) check.problems.push(...presenceProblems(s));
    const newest = listing.complete[listing.complete.length - 1];
    if (newest) {
      check.newest = newest.id;
      check.newestAgeSeconds = Math.round((now - Date.parse(newest.manifest.startedAt)) / 1000);
      check.newestReaches = newest.manifest.reachesVersion;
    }
    if (newest && options.readBack !== false) {
      check.checksummed = newest.id;
      const recheckMs = options.recheckMs ?? 7 * 86_400_000;
      const cacheFile = copyCacheFile(config.stateDir, copy.name);
      const cache = await readCopyCache(cacheFile);
      const next: CopyCache = {};
      check.rechecked = 0;
      check.cached = 0;
      // Newest first: it is the restore point that matters most, and re-read every run.
      for (const s of [...listing.complete].reverse()) {
        const listed = new Map(s.files.map((f) => [f.name, f]));
        const kept: CopyCache[string] = {};
        for (const f of s.manifest.files.map(onDisk)) {
          signal.throwIfAborted();
          if (listed.get(f.name)?.size !== f.size) continue;
          const was = cache[s.id]?.[f.name];
          if (
            s !== newest &&
            was &&
            was.size === f.size &&
            was.sha256 === f.sha256 &&
            now - was.verifiedAt < recheckMs
          ) {
            check.cached++;
            kept[f.name] = was;
            continue;
          }
          check.rechecked++;
          try {
            const sha = await sha256Of(repo, s.id, f.name, f.size);
            if (sha === f.sha256.toLowerCase()) kept[f.name] = { size: f.size, sha256: f.sha256, verifiedAt: now };
            else
              check.problems.push(
                `snapshot ${s.id}: ${f.name}: sha256 ${sha.slice(0, 12)}… does not match the manifest (${f.sha256.slice(0, 12)}…): the copy is damaged`,
              );
          } catch (err) {
            check.problems.push(`snapshot ${s.id}: ${f.name}: ${describeError(err)}`);
          }
        }
        if (Object.keys(kept).length) next[s.id] = kept;
      }
      await writeFileAtomic(cacheFile, JSON.stringify({ formatVersion: 1, snapshots: next }, null, 2) + '\n');
    }
  } catch (err) {
    if (signal.aborted) throw err;
    check.error = describeError(err);
  } finally {
    await repo?.close().catch(() => undefined);
  }
  return check;
}
