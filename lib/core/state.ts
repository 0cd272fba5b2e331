import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './atomic.js';
import type { Status } from './job.js';

/** What `list-jobs` shows as "last result": one small JSON file per job, written atomically. */
export interface JobState {
  job: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  status: Status;
  exitCode: number;
  summary: string;
  dryRun: boolean;
  details?: Record<string, unknown>;
}

export function stateFile(stateDir: string, job: string): string {
  return path.join(stateDir, 'state', `${job}.json`);
}

export async function writeJobState(stateDir: string, state: JobState): Promise<void> {
  await writeFileAtomic(stateFile(stateDir, state.job), JSON.stringify(state, null, 2) + '\n');
}

export async function readJobState(stateDir: string, job: string): Promise<JobState | undefined> {
  try {
    return JSON.parse(await fs.readFile(stateFile(stateDir, job), 'utf8')) as JobState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return undefined;
  }
}
