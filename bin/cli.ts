import { buildProgram } from '../lib/cli.js';
import { drillCommand } from '../lib/commands/drill.js';
import { JOBS, findJob } from '../jobs/index.js';

await buildProgram(JOBS, [drillCommand(findJob('drill')!)]).parseAsync(process.argv);
