import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Option } from 'commander';
import { z } from 'zod';
import { jobOptionsSchema, parseConfig } from '../../../lib/core/config.js';
import { defineJob, NO_ARGS } from '../../../lib/core/job.js';
import { silentLogger } from '../../../lib/core/logger.js';
import { runJob } from '../../../lib/core/runner.js';
import { loadJobs } from '../../../jobs/index.js';

/**
 * A job's command-line arguments are declared once, as a zod schema beside its options; the runner
 * parses them before the job runs, so a job never sees a flag it did not declare.
 */
describe('job arguments', () => {
  test("each job's args schema declares exactly its card's flags", async () => {
    for (const job of await loadJobs()) {
      const schema = (job.args ?? NO_ARGS) as z.ZodObject;
      const flags = (job.cliOptions ?? []).map((o) => new Option(o.flags, '').attributeName()).sort();
      expect({ job: job.name, args: Object.keys(schema.shape).sort() }).toEqual({ job: job.name, args: flags });
    }
  });

  describe('parsed once by the runner', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-args-'));
      for (const d of ['state', 'locks']) await fs.mkdir(path.join(dir, d), { mode: 0o700 });
    });
    afterAll(() => fs.rm(dir, { recursive: true, force: true }));
    const config = () =>
      parseConfig(
        { stateDir: path.join(dir, 'state'), lockDir: path.join(dir, 'locks'), masters: [{ name: 'm1', host: 'm1' }] },
        path.join(dir, 'c.yaml'),
      );
    const seen: unknown[] = [];
    const job = defineJob({
      name: 'typed',
      description: 'records its arguments',
      options: jobOptionsSchema({}),
      args: z.strictObject({ keep: z.boolean().optional(), toVersion: z.string().optional() }),
      run: async (ctx) => {
        seen.push(ctx.args);
        return { status: 'OK', summary: 'ran' };
      },
    });

    test('declared flags reach the job typed; unset ones are absent', async () => {
      const { report } = await runJob(job, {
        config: config(),
        log: silentLogger(),
        dryRun: true,
        args: { keep: true, toVersion: undefined },
      });
      expect(report.status).toBe('OK');
      expect(seen.pop()).toEqual({ keep: true });
    });

    test('an undeclared flag is a usage error (UNKNOWN) and the job does not run', async () => {
      const { report } = await runJob(job, {
        config: config(),
        log: silentLogger(),
        dryRun: true,
        args: { force: true },
      });
      expect(report.status).toBe('UNKNOWN');
      expect(report.summary).toBe('option --force does not apply to job typed');
      expect(seen).toEqual([]);
    });

    test('a flag of the wrong type names the flag', async () => {
      const { report } = await runJob(job, {
        config: config(),
        log: silentLogger(),
        dryRun: true,
        args: { toVersion: 7 },
      });
      expect(report.status).toBe('UNKNOWN');
      expect(report.summary).toMatch(/^--to-version: /);
    });
  });
});
