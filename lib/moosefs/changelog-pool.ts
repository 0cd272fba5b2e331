import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { TransferError } from '../core/errors.js';
import { limitOf, overflowError, ReadWatchdog } from '../transport/bounded.js';
import type { FileSource } from '../transport/remote.js';
import type { ReadBound } from '../transport/bounded.js';
import type { ChangelogScan } from './changelog.js';
import type { ScanReply, ScanTask } from './changelog-worker.js';

/**
 * Changelogs of a local source scanned in worker threads, one file per worker at a time (issue #28: verify of a
 * gigabyte of changelogs). The parsing is changelog.ts's; what the pool adds is both cores, and reads into one
 * reused buffer. The file is opened here as the source opens it (FileSource.openLocal: no symlink, a regular file),
 * read by its descriptor in the worker, and bounded as readStream bounds it: more bytes than the limit fail with
 * the same ReadBoundError, a read with no progress for the idle window with the same stall error.
 */
export class ChangelogScanPool {
  private readonly idle: Worker[] = [];
  private readonly queue: (() => void)[] = [];
  private nextId = 1;

  private readonly workers: Worker[];

  private constructor(
    private readonly url: URL,
    n: number,
  ) {
    this.workers = Array.from({ length: n }, () => new Worker(url));
    this.idle.push(...this.workers);
  }

  /** Worth it from a few tens of MB on: a worker costs ≈ 30 ms to start. */
  static readonly MIN_BYTES = 64 * 2 ** 20;

  /** One worker per core, at most `max` (default 4); undefined on a single core (the caller scans inline). */
  static open(max = 4): ChangelogScanPool | undefined {
    const warm = ChangelogScanPool.warmed;
    ChangelogScanPool.warmed = undefined;
    if (warm && warm.size === ChangelogScanPool.sizeFor(max)) {
      for (const w of warm.workers) w.ref();
      return warm;
    }
    void warm?.close();
    const n = ChangelogScanPool.sizeFor(max);
    return n < 2 ? undefined : new ChangelogScanPool(new URL('./changelog-worker.js', import.meta.url), n);
  }

  private static sizeFor(max: number): number {
    return Math.min(max, os.availableParallelism());
  }

  private static warmed: ChangelogScanPool | undefined;

  /**
   * Start the workers of the next `open()` now: a worker's own start-up (≈ 50 ms of Node's bootstrap on a quiet
   * core, 0.3 s on a loaded one) then runs beside the caller's other work (verify asks the masters and lists the
   * DATA_PATH meanwhile; issue #28). Unreferenced until adopted: a warm pool never holds the process open.
   * `cool()` ends one no `open()` took (the DATA_PATH was small, or remote).
   */
  static warm(max = 4): void {
    const n = ChangelogScanPool.sizeFor(max);
    if (ChangelogScanPool.warmed || n < 2) return;
    const pool = new ChangelogScanPool(new URL('./changelog-worker.js', import.meta.url), n);
    for (const w of pool.workers) w.unref();
    ChangelogScanPool.warmed = pool;
  }

  static async cool(): Promise<void> {
    const warm = ChangelogScanPool.warmed;
    ChangelogScanPool.warmed = undefined;
    await warm?.close();
  }

  get size(): number {
    return this.workers.length;
  }

  /** Scan `file` of a source that has openLocal; `label` names it in the scan (as scanSourceChangelog does). */
  async scan(source: FileSource, file: string, bound: ReadBound, label: string): Promise<ChangelogScan> {
    if (!source.openLocal)
      throw new TransferError(source.label, `${source.label}: not a local source: no scan in a worker thread`);
    const { handle, limits } = await source.openLocal(file, bound);
    try {
      let worker = await this.take();
      try {
        return await new Promise<ChangelogScan>((resolve, reject) => {
          const id = this.nextId++;
          const watchdog = new ReadWatchdog(limits, (err) => {
            // A read blocked in the kernel cannot be interrupted: that worker is left to it, a new one takes its place.
            worker.off('message', onMessage);
            worker.off('error', onError);
            void worker.terminate();
            worker = this.replace(worker);
            reject(err);
          });
          const settle = (f: () => void) => {
            watchdog.stop();
            worker.off('message', onMessage);
            worker.off('error', onError);
            f();
          };
          const onMessage = (m: ScanReply) => {
            if (m.id !== id) return;
            if ('progress' in m) watchdog.progress(m.progress);
            else if ('scan' in m) settle(() => resolve(m.scan));
            else if ('overflow' in m) settle(() => reject(overflowError(limits, m.overflow)));
            else
              settle(() =>
                reject(Object.assign(new TransferError(limits.host, `${limits.what}: ${m.error}`), { code: m.code })),
              );
          };
          // A worker that failed (an uncaught error, out of memory) is gone: a new one takes its place.
          const onError = (err: Error) =>
            settle(() => {
              worker = this.replace(worker);
              reject(err);
            });
          worker.on('message', onMessage);
          worker.on('error', onError);
          const task: ScanTask = { id, fd: handle.fd, limit: limitOf(limits.bound), label };
          worker.postMessage(task);
        });
      } finally {
        this.give(worker);
      }
    } finally {
      await handle.close();
    }
  }

  private async take(): Promise<Worker> {
    for (;;) {
      const w = this.idle.pop();
      if (w) return w;
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
  }

  private replace(lost: Worker): Worker {
    const fresh = new Worker(this.url);
    this.workers[this.workers.indexOf(lost)] = fresh;
    return fresh;
  }

  private give(w: Worker): void {
    this.idle.push(w);
    this.queue.shift()?.();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
