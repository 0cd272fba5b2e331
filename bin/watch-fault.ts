// The watch of keepalived's FAULT after a refused promotion, as a detached process of its own
// (lib/failover/keepalived-fault.ts): releases it once the master that made promote refuse stops answering.
import { createLogger } from '../lib/core/logger.js';
import { parseFaultWatchRequest, watchFault } from '../lib/failover/keepalived-fault.js';

const log = createLogger({ json: true });
try {
  await watchFault(parseFaultWatchRequest(process.argv[2] ?? ''), log);
} catch (err) {
  log.error(`keepalived fault watch: ${(err as Error).message}`);
  process.exitCode = 3;
}
await new Promise<void>((resolve) => log.on('finish', resolve).end());
