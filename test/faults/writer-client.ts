import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, promises as fs, writeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256, writeDurably } from '../lab/failover.js';

/**
 * A MooseFS client under load, as its own process (a FUSE call that waits for a dead master blocks a
 * thread, not the test): writes file after file into `<dir>`, each written, fsynced and closed, and
 * notes every outcome in a ledger on local disk (fsynced line by line). A file is *acknowledged* when
 * its close returned; only those count when the test looks for losses afterwards.
 *
 *   node writer-client.js <dir-on-mfs> <ledger-file>     (SIGTERM: finish the files in flight, exit 0)
 */

export interface LedgerEntry {
  i: number;
  /** Path relative to the writer's directory. */
  name: string;
  startedAt: number;
  /** Acknowledged: write, fsync and close returned. */
  ackAt?: number;
  sha256?: string;
  size?: number;
  /** The error the client got instead (EIO, ENOTCONN, …): not acknowledged, not counted. */
  error?: string;
}

/** Reads the writer's ledger as it grows: each call parses only the lines added since the last. */
export class LedgerReader {
  readonly entries: LedgerEntry[] = [];
  private offset = 0;

  constructor(readonly file: string) {}

  async update(): Promise<LedgerEntry[]> {
    const h = await fs.open(this.file, 'r').catch(() => undefined);
    if (!h) return this.entries;
    try {
      const { size } = await h.stat();
      const buf = Buffer.alloc(size - this.offset);
      await h.read(buf, 0, buf.length, this.offset);
      // Only whole lines: the writer may be in the middle of one (or was killed there).
      const end = buf.lastIndexOf(0x0a) + 1;
      this.offset += end;
      for (const line of buf.subarray(0, end).toString('utf8').split('\n'))
        if (line) this.entries.push(JSON.parse(line) as LedgerEntry);
      return this.entries;
    } finally {
      await h.close();
    }
  }
}

/** A file unacknowledged this long counts as stalled: the client goes on with a new one beside it. */
const STALL_MS = 2_000;
const MAX_IN_FLIGHT = 48;

async function main(dir: string, ledger: string): Promise<void> {
  let stopping = false;
  process.on('SIGTERM', () => (stopping = true));
  const fd = openSync(ledger, 'a', 0o600);
  const note = (entry: LedgerEntry) => {
    writeSync(fd, JSON.stringify(entry) + '\n');
    fsyncSync(fd);
  };
  const writeOne = async (i: number) => {
    const name = path.join(`d${Math.floor(i / 100)}`, `f${i}`);
    const data = randomBytes(512 + Math.floor(Math.random() * 64 * 1024));
    const startedAt = Date.now();
    try {
      await fs.mkdir(path.join(dir, path.dirname(name)), { recursive: true });
      await writeDurably(path.join(dir, name), data);
      note({ i, name, startedAt, ackAt: Date.now(), sha256: sha256(data), size: data.length });
    } catch (err) {
      note({ i, name, startedAt, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
      await sleep(100);
    }
  };
  // One file at a time, like a simple application; but a write caught by a master crash can wait for
  // minutes (MooseFS keeps the chunk locked), so after STALL_MS a new file starts beside it, as another
  // thread of a real application would. (UV_THREADPOOL_SIZE must exceed MAX_IN_FLIGHT: see the test.)
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; !stopping;) {
    if (inFlight.size >= MAX_IN_FLIGHT) {
      await Promise.race([...inFlight, sleep(STALL_MS)]);
      continue;
    }
    const write: Promise<void> = writeOne(i++).finally(() => inFlight.delete(write));
    inFlight.add(write);
    await Promise.race([write, sleep(STALL_MS)]);
  }
  await Promise.all(inFlight);
  closeSync(fd);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [dir, ledger] = process.argv.slice(2);
  if (!dir || !ledger) {
    console.error('usage: writer-client.js <dir> <ledger>');
    process.exit(2);
  }
  main(dir, ledger).catch((err: Error) => {
    console.error(`writer-client: ${err.message}`);
    process.exit(1);
  });
}
