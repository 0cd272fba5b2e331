import type { Job } from '../lib/core/job.js';
import backup from './backup.js';
import checkMaster from './check-master.js';
import checkStandby from './check-standby.js';
import demote from './demote.js';
import drill from './drill.js';
import promote from './promote.js';
import prune from './prune.js';
import restore from './restore.js';
import verify from './verify.js';

/** Every job mfs-jobs knows, by name. Add a job: one file in jobs/, one line here. */
export const JOBS: readonly Job[] = [checkMaster, checkStandby, backup, verify, prune, promote, demote, drill, restore] as unknown as Job[];

export function findJob(name: string): Job | undefined {
  return JOBS.find((j) => j.name === name);
}
