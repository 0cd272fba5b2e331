// The clients-back watch after a promotion, as a detached process of its own (lib/failover/clients-watch.ts):
// started by a one-shot `mfs-jobs run promote`, so that the hook returns as soon as the master serves.
import { createLogger } from '../lib/core/logger.js';
import { parseClientsWatchRequest, watchAndRecord } from '../lib/failover/clients-watch.js';

const log = createLogger({ json: true });
try {
  const request = parseClientsWatchRequest(process.argv[2] ?? '');
  await watchAndRecord(request, log);
} catch (err) {
  log.error(`clients-back watch: ${(err as Error).message}`);
  process.exitCode = 3;
}
await new Promise<void>((resolve) => log.on('finish', resolve).end());
