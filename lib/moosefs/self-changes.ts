import path from 'node:path';
import { localSource } from '../transport/remote.js';
import { parseChangelogLine } from './changelog.js';
import type { Generation } from './generations/generation.js';

/** How much of the running master's changelog is read: a restored master's own changes are a few lines. */
const TAIL_BYTES = 64 * 1024;
/**
 * 1.7+ masters write the changelog through a background writer process (`.bgwriter.lock`, fed by a pipe): a line
 * served may not be on disk yet. 2 s was not enough under CI load (a drill's scratch master served its IDLE()
 * line's version while the line was still in the pipe, and the drill reported the restore one version ahead).
 * Only a master that served past the chain waits this long, and only for lines that are not on disk yet.
 */
const WRITER_LAG_MS = 10_000;
const POLL_MS = 50;

/** What a restored master changed by itself after the restore, before anyone touched it. */
export interface SelfChanges {
  /** The version the restore reached: the served version minus the master's own changes. */
  restoredVersion: number;
  /** Their operations, oldest first, e.g. ["IDLE"]. */
  ops: string[];
}

/**
 * A restored master serves `served`; the restore reached `expected`. If every version between is a line
 * of the master's own `changelog.0.mfs` in `dataPath` with one of `generation.selfChanges` (4.x writes
 * `IDLE()` within a second of starting), the restore did reach `expected`: the answer says so and names
 * them. Undefined when any of them is anything else, or is still not on disk after `lagMs` — a real
 * difference, for the caller to report.
 */
export async function selfChangesSince(
  dataPath: string,
  generation: Generation,
  expected: number,
  served: number,
  lagMs = WRITER_LAG_MS,
): Promise<SelfChanges | undefined> {
  if (served <= expected) return undefined;
  const deadline = Date.now() + lagMs;
  for (;;) {
    const found = await readSelfChanges(path.join(dataPath, 'changelog.0.mfs'), generation, expected, served);
    if (found !== 'incomplete') return found;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function readSelfChanges(
  file: string,
  generation: Generation,
  expected: number,
  served: number,
): Promise<SelfChanges | undefined | 'incomplete'> {
  const byVersion = new Map<number, string>();
  for (const line of await tailLines(file)) {
    const parsed = parseChangelogLine(line);
    if (parsed && parsed.version > expected && parsed.version <= served) byVersion.set(parsed.version, parsed.op);
  }
  const ops: string[] = [];
  for (let v = expected + 1; v <= served; v++) {
    const op = byVersion.get(v);
    if (op === undefined) return 'incomplete';
    if (!generation.selfChanges.includes(op)) return undefined;
    ops.push(op);
  }
  return { restoredVersion: expected, ops };
}

/** The whole lines in the last TAIL_BYTES of `file` (none if it does not exist). */
async function tailLines(file: string): Promise<string[]> {
  const source = localSource('scratch master');
  const size = await source.stat(file).then(
    (st) => st.size,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 0 : Promise.reject(err)),
  );
  if (size === 0) return [];
  const start = Math.max(0, size - TAIL_BYTES);
  const lines = (await source.readRange(file, start, size - start)).toString('latin1').split('\n');
  // A partial first line (cut by the window) and the unfinished last one are not lines.
  if (start > 0) lines.shift();
  lines.pop();
  return lines;
}
