import { buildProgram } from '../lib/cli.js';
import { JOBS } from '../jobs/index.js';

await buildProgram(JOBS).parseAsync(process.argv);
