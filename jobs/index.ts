import { CARDS } from '../lib/core/job-cards.js';
import type { Job, JobEntry } from '../lib/core/job.js';

// A dynamic import() of each job: a command line loads only the job it runs (start-up, issue #24); the
// cards (lib/core/job-cards.ts) say what the CLI needs without loading any.
const job = (imported: Promise<{ default: unknown }>): Promise<Job> => imported.then((m) => m.default as Job);

const LOADERS: Record<keyof typeof CARDS, () => Promise<Job>> = {
  'check-master': () => job(import('./check-master.js')),
  'check-standby': () => job(import('./check-standby.js')),
  backup: () => job(import('./backup.js')),
  archive: () => job(import('./archive.js')),
  verify: () => job(import('./verify.js')),
  prune: () => job(import('./prune.js')),
  promote: () => job(import('./promote.js')),
  demote: () => job(import('./demote.js')),
  drill: () => job(import('./drill.js')),
  restore: () => job(import('./restore.js')),
};

/** Every job mfs-jobs knows, by name. Add a job: one file in jobs/, its card and its loader here. */
export const JOBS: readonly JobEntry[] = (Object.keys(CARDS) as (keyof typeof CARDS)[]).map((name) => ({
  ...CARDS[name],
  load: LOADERS[name],
}));

export function findJob(name: string): JobEntry | undefined {
  return JOBS.find((j) => j.name === name);
}

/**
 * Every job loaded (the daemon runs them all; tests check them all). One after the other: jest's ESM
 * loader fails on concurrent imports that share modules ("request for … is not in cache").
 */
export async function loadJobs(): Promise<Job[]> {
  const jobs: Job[] = [];
  for (const entry of JOBS) jobs.push(await entry.load());
  return jobs;
}
