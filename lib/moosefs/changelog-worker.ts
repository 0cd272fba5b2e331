// A worker thread of changelog-pool.ts: scans one changelog at a time with the one parser (changelog.ts),
// reading by the descriptor the main thread opened (a descriptor is the process's, so it is this thread's too).
import { readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { ChangelogScanner } from './changelog.js';

export interface ScanTask {
  id: number;
  fd: number;
  /** Read at most this many bytes: one more is the caller's overflow. */
  limit: number;
  label: string;
}

/** `progress`: bytes read so far (the main thread's stall watchdog); then `scan` or `error`. */
export type ScanReply =
  | { id: number; progress: number }
  | { id: number; scan: ReturnType<ChangelogScanner['finish']> }
  | { id: number; overflow: number }
  | { id: number; error: string; code?: string };

const CHUNK = 1 << 20;
const PROGRESS_EVERY = 16 * CHUNK;
// One buffer for every read: a fresh 1 MB Buffer per chunk, as a read stream makes, was a tenth of the scan in GC.
const buf = Buffer.allocUnsafe(CHUNK);

function scan(t: ScanTask): ScanReply {
  const scanner = new ChangelogScanner(t.label);
  let done = 0;
  let reported = 0;
  for (;;) {
    const n = readSync(t.fd, buf, 0, Math.min(CHUNK, t.limit + 1 - done), done);
    if (n === 0) break;
    done += n;
    if (done > t.limit) return { id: t.id, overflow: done };
    scanner.push(buf.subarray(0, n));
    if (done - reported >= PROGRESS_EVERY) {
      reported = done;
      parentPort!.postMessage({ id: t.id, progress: done } satisfies ScanReply);
    }
  }
  return { id: t.id, scan: scanner.finish() };
}

parentPort!.on('message', (t: ScanTask) => {
  let reply: ScanReply;
  try {
    reply = scan(t);
  } catch (err) {
    reply = { id: t.id, error: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
  }
  parentPort!.postMessage(reply);
});
