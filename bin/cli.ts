import { buildProgram } from '../lib/core/cli.js';
import { drillCommand } from '../lib/commands/drill.js';
import { initCommand } from '../lib/commands/init.js';
import { restoreCommand } from '../lib/commands/restore.js';
import { snapshotCommands } from '../lib/commands/snapshot.js';
import { statusCommand } from '../lib/commands/status.js';
import { JOBS, findJob } from '../jobs/index.js';

await buildProgram(JOBS, [
  snapshotCommands,
  drillCommand(findJob('drill')!),
  restoreCommand(findJob('restore')!),
  statusCommand(JOBS),
  initCommand(JOBS),
]).parseAsync(process.argv);
