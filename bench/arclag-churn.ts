import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * The archive-lag bench's change generator, as its own process (a FUSE call blocks a thread, not the
 * bench's sampler): a steady `rate` metadata changes per second through a MooseFS mount — one `utimes`
 * (a SETATTR changelog line) each, spread over a few files so that one slow round trip does not stall the
 * pace. Paced against the clock, never ahead of it; prints how many it made on SIGTERM.
 *
 *   node arclag-churn.js <dir-on-mfs> <changes-per-second>
 */
const WORKERS = 4;

async function main(dir: string, rate: number): Promise<void> {
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  const files = Array.from({ length: WORKERS }, (_, i) => path.join(dir, `churn-${i}`));
  for (const f of files) await fs.writeFile(f, '');
  const started = Date.now();
  let made = 0;
  let failures = 0;
  const worker = async (file: string) => {
    while (!stopping) {
      if (made >= ((Date.now() - started) * rate) / 1000) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      // Each call a different time: a change the master logs (a SETATTR line).
      const t = started / 1000 + made++;
      await fs.utimes(file, t, t).catch(() => failures++);
    }
  };
  await Promise.all(files.map(worker));
  process.stdout.write(`${JSON.stringify({ made, failures, seconds: (Date.now() - started) / 1000 })}\n`);
}

const [dir, rate] = process.argv.slice(2);
if (!dir || !(Number(rate) > 0)) {
  process.stderr.write('usage: arclag-churn <dir-on-mfs> <changes-per-second>\n');
  process.exit(3);
}
main(dir, Number(rate)).catch((err: Error) => {
  process.stderr.write(`arclag-churn: ${err.message}\n`);
  process.exit(2);
});
