import type { Job } from '../lib/job.js';
import checkMaster from './check-master.js';
import prune from './prune.js';

/** Every job mfs-jobs knows, by name. Add a job: one file in jobs/, one line here. */
export const JOBS: readonly Job[] = [checkMaster as unknown as Job, prune as unknown as Job];

export function findJob(name: string): Job | undefined {
  return JOBS.find((j) => j.name === name);
}
