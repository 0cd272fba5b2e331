import { promises as fs } from 'node:fs';
import path from 'node:path';
import { JOBS, loadJobs } from '../../../jobs/index.js';
import { REPO_ROOT } from '../../helpers/cli.js';

/**
 * jobs/index.ts carries each job's card (name, description, schedule, flags) so that the CLI parses a
 * command line and lists the jobs without importing any job; the card must say what the job says.
 */
describe('job registry', () => {
  test('each card equals what its job defines', async () => {
    const jobs = await loadJobs();
    const card = (j: {
      name: string;
      description: string;
      defaultSchedule?: string;
      cliOptions?: readonly unknown[];
    }) => ({
      name: j.name,
      description: j.description,
      defaultSchedule: j.defaultSchedule,
      cliOptions: j.cliOptions ?? [],
    });
    expect(JOBS.map(card)).toEqual(jobs.map(card));
  });

  test('every file in jobs/ has a card', async () => {
    const files = (await fs.readdir(path.join(REPO_ROOT, 'jobs'))).filter((f) => f.endsWith('.ts') && f !== 'index.ts');
    const jobs = await loadJobs();
    expect(jobs.map((j) => `${j.name}.ts`).sort()).toEqual(files.sort());
  });
});
