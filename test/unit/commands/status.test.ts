import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collectStatus } from '../../../lib/commands/status-report.js';
import { loadConfig } from '../../../lib/core/config.js';
import { writeJobState, type JobState } from '../../../lib/core/state.js';
import { JOBS } from '../../../jobs/index.js';

/** What status makes of recorded results the lab suite does not produce: copies, chunkservers, a job gone quiet. */
describe('status from recorded results', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-status-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const state = (
    job: string,
    finishedAt: Date,
    status: JobState['status'],
    summary: string,
    details?: Record<string, unknown>,
  ): JobState => ({
    job,
    startedAt: finishedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: 1,
    status,
    exitCode: ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'].indexOf(status),
    summary,
    dryRun: false,
    details,
  });

  test('RPO per metalogger, chunkserver, snapshot and copy; a verdict gone stale is a WARNING of its own', async () => {
    const file = path.join(dir, 'config.yaml');
    const stateDir = path.join(dir, 'state');
    await fs.writeFile(
      file,
      `stateDir: ${stateDir}\nmasters: [{ name: m, host: 127.0.0.1, dataPath: /nonexistent }]\nsnapshotStore: { path: ${dir}/store }\n`,
      { mode: 0o600 },
    );
    const config = await loadConfig(file);
    const now = new Date('2026-06-01T12:03:00Z');
    const verifiedAt = new Date(now.getTime() - 60_000);
    await writeJobState(
      stateDir,
      state('verify', verifiedAt, 'WARNING', 'copy:off1: newest snapshot S1 is 1.0 h old', {
        master: { version: 100 },
        sources: {
          ml1: { status: 'OK', restorableVersion: 100, lagVersions: 0, lagSeconds: 0 },
          cs1: { status: 'OK', restorableVersion: 95, lagVersions: 5, lagSeconds: 12, snapshot: 'S2' },
          'snapshot S2': { status: 'OK', store: `${dir}/store`, id: 'S2', ageSeconds: 30, restorableVersion: 90 },
          'older snapshots': { status: 'OK', store: `${dir}/store`, checked: 3 },
          'copy:off1': { status: 'WARNING', copy: 'off1', newestReaches: 80, newestAgeSeconds: 3600 },
          // The changelog archive on a copy (issue #26), as judgeArchive records it.
          'archive (copy off1)': {
            status: 'WARNING',
            destination: 'copy off1',
            restorableVersion: 70,
            lagVersions: 30,
            lagSeconds: 40,
          },
        },
      }),
    );
    // check-master every 5 min; last heard of at 11:50: the 11:55 and 12:00 runs left no result.
    await writeJobState(
      stateDir,
      state('check-master', new Date('2026-06-01T11:50:00Z'), 'OK', 'm serves metadata version 100', {
        masters: [
          {
            name: 'm',
            info: {
              softwareVersion: '4.59.2',
              metadataVersion: 100,
              metaid: '0000000012345678',
              generation: { name: '4' },
            },
          },
        ],
      }),
    );

    const r = await collectStatus(config, JOBS, now);
    expect(r.rpo.masterVersion).toBe(100);
    expect(r.rpo.sources).toEqual([
      { source: 'ml1', kind: 'metalogger', status: 'OK', restorableVersion: 100, behindVersions: 0, rpoSeconds: 0 },
      { source: 'cs1', kind: 'chunkserver', status: 'OK', restorableVersion: 95, behindVersions: 5, rpoSeconds: 12 },
      {
        source: 'snapshot S2',
        kind: 'snapshot',
        status: 'OK',
        restorableVersion: 90,
        behindVersions: 10,
        rpoSeconds: 90,
      },
      {
        source: 'copy:off1',
        kind: 'copy',
        status: 'WARNING',
        restorableVersion: 80,
        behindVersions: 20,
        rpoSeconds: 3660,
      },
      {
        source: 'archive (copy off1)',
        kind: 'archive',
        status: 'WARNING',
        restorableVersion: 70,
        behindVersions: 30,
        rpoSeconds: 40,
      },
    ]);
    expect(r.cluster.masters).toEqual([
      expect.objectContaining({
        name: 'm',
        answers: true,
        softwareVersion: '4.59.2',
        generation: '4',
        metaid: '0000000012345678',
      }),
    ]);
    expect(r.problems).toContainEqual({
      status: 'WARNING',
      text: 'verify: copy:off1: newest snapshot S1 is 1.0 h old',
    });
    expect(r.problems).toContainEqual({
      status: 'WARNING',
      text: 'check-master last ran 13 min ago and has missed runs since (schedule */5 * * * *): is the daemon or cron running it?',
    });
    expect(r.jobs.find((j) => j.job === 'verify')).toMatchObject({
      missedRuns: false,
      nextRun: '2026-06-01T12:10:00Z',
    });
    // The empty store is what makes it CRITICAL.
    expect(r).toMatchObject({ status: 'CRITICAL', exitCode: 2 });
    expect(r.problems[0]).toEqual({
      status: 'CRITICAL',
      text: `no restore point in the snapshot store ${dir}/store (has backup run?)`,
    });
  });
});
