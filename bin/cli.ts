import { buildProgram } from '../lib/cli.js';
import { snapshotCommands } from '../lib/commands/snapshot.js';
import { JOBS } from '../jobs/index.js';

await buildProgram(JOBS, [snapshotCommands]).parseAsync(process.argv);
