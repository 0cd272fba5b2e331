// The whole command line, shared by cli.ts (the ES module bundle and dist/bin) and the CommonJS bundle that
// cached-cli.ts runs from V8's code cache (scripts/bundle.mjs, issue #28).
import { readFileSync } from 'node:fs';
import { buildProgram } from '../lib/core/cli.js';
import { drillCommand } from '../lib/commands/drill.js';
import { initCommand } from '../lib/commands/init.js';
import { restoreCommand } from '../lib/commands/restore.js';
import { snapshotCommands } from '../lib/commands/snapshot.js';
import { statusCommand } from '../lib/commands/status.js';
import { JOBS, findJob } from '../jobs/index.js';

export { tryHandOff } from './hand-off.js';

export async function runCli(argv: string[]): Promise<void> {
  await buildProgram(JOBS, [
    snapshotCommands,
    drillCommand(findJob('drill')!),
    restoreCommand(findJob('restore')!),
    statusCommand(JOBS),
    initCommand(JOBS),
  ]).parseAsync(argv);
}

/**
 * What the build runs before it writes the code cache: V8 keeps in the cache only the functions compiled so far, so
 * the config's parse and schema (every command's) and every job's module are compiled here once, not at each start.
 * Pure: nothing is printed, written or started.
 */
export async function warmUpForCodeCache(exampleConfig: URL): Promise<void> {
  const [{ default: YAML }, { parseConfig }, { loadCronParser }] = await Promise.all([
    import('yaml'),
    import('../lib/core/config.js'),
    import('../lib/core/schedule-check.js'),
    import('../lib/core/logger.js'),
    import('../lib/core/runner.js'),
    ...JOBS.map((job) => job.load()),
  ]);
  await loadCronParser();
  parseConfig(YAML.parse(readFileSync(exampleConfig, 'utf8')), exampleConfig.pathname);
}
