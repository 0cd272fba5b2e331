import type { Command } from 'commander';
import type { JobEntry } from '../core/job.js';

const EXIT_UNKNOWN = 3;

/**
 * `mfs-jobs status [--json]`: one screen answering "am I safe right now?". Exit code as a Nagios check:
 * the worst of what it shows (2 when anything is CRITICAL), 3 when the config cannot be read.
 */
export function statusCommand(jobs: readonly JobEntry[]) {
  return (program: Command, ctx: { globals: () => { config?: string; verbose?: boolean } }): void => {
    program
      .command('status')
      .description('am I safe right now? cluster, restore points, RPO per source and copy, standby, lease, every job')
      .option('--json', 'print as JSON')
      .addHelpText('after', '\nExit codes: 0 OK, 1 WARNING, 2 CRITICAL (anything shown is), 3 UNKNOWN (bad config).')
      .action(async (opts: { json?: boolean }) => {
        const { verbose } = ctx.globals();
        // Loaded here, not at start-up: `mfs-jobs --version` and the other commands never pay for them.
        const [{ loadConfig }, { collectStatus, formatStatus }, { describeError }] = await Promise.all([
          import('../core/config.js'),
          import('./status-report.js'),
          import('../core/errors.js'),
        ]);
        let text: string;
        let code: number;
        try {
          const report = await collectStatus(await loadConfig(ctx.globals().config), jobs);
          text = opts.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report);
          code = report.exitCode;
        } catch (err) {
          process.stderr.write(`mfs-jobs: ${describeError(err)}\n`);
          if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
          process.exit(EXIT_UNKNOWN);
        }
        await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
        process.exit(code);
      });
  };
}
