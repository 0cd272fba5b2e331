import { createHash } from 'node:crypto';
import type { Config, CopyConfig } from '../../core/config.js';
import { describeError } from '../../core/errors.js';
import { printable } from '../../core/names.js';
import { MANIFEST, onDisk } from '../manifest.js';
import { listCopy, type RemoteSnapshot } from './listing.js';
import { openCopy } from './open.js';
import { PART_SUFFIX, type CopyRepository } from './repository.js';

/**
 * Verify's look at one off-site copy: reachable, which snapshots are complete, every complete one's
 * files present with their manifest sizes, the newest one re-read end to end (streaming, bounded by
 * its manifest sizes and the copy's idle timeout) and hashed against its manifest.
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
  /** The snapshot whose files were re-read and hashed (the newest). */
  checksummed?: string;
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
    else if (there.size !== f.size) problems.push(`snapshot ${s.id}: ${f.name} is ${there.size} bytes, manifest says ${f.size}`);
  }
  const known = new Set([MANIFEST, ...s.manifest.files.map((f) => onDisk(f).name)]);
  for (const f of s.files) if (!known.has(f.name) && !f.name.endsWith(PART_SUFFIX)) problems.push(`snapshot ${s.id}: ${printable(f.name)} is not in the manifest`);
  return problems;
}

/** `readBack: false`: presence and sizes only (a copy across a slow link, checked on a slower schedule by another config). */
export async function checkCopy(config: Config, copy: CopyConfig, signal: AbortSignal, options: { readBack?: boolean; now?: number } = {}): Promise<CopyCheck> {
  const now = options.now ?? Date.now();
  const check: CopyCheck = { copy: copy.name, type: copy.type, label: copy.name, reachable: false, complete: [], incomplete: [], broken: [], problems: [] };
  let repo: CopyRepository | undefined;
  try {
    repo = await openCopy(config, copy, signal);
    check.label = repo.label;
    const listing = await listCopy(repo);
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
      const listed = new Map(newest.files.map((f) => [f.name, f]));
      for (const f of newest.manifest.files.map(onDisk)) {
        signal.throwIfAborted();
        if (listed.get(f.name)?.size !== f.size) continue;
        try {
          const sha = await sha256Of(repo, newest.id, f.name, f.size);
          if (sha !== f.sha256.toLowerCase()) check.problems.push(`snapshot ${newest.id}: ${f.name}: sha256 ${sha.slice(0, 12)}… does not match the manifest (${f.sha256.slice(0, 12)}…): the copy is damaged`);
        } catch (err) {
          check.problems.push(`snapshot ${newest.id}: ${f.name}: ${describeError(err)}`);
        }
      }
    }
  } catch (err) {
    if (signal.aborted) throw err;
    check.error = describeError(err);
  } finally {
    await repo?.close().catch(() => undefined);
  }
  return check;
}
