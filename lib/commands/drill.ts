import { Option, type Command } from 'commander';
import { runOnce } from '../core/cli.js';
import type { JobEntry } from '../core/job.js';

/**
 * `mfs-jobs drill [--snapshot ID | --from METALOGGER | --latest] [--keep] [--json]`: the drill job run
 * once, by hand, with the same flags, outputs and exit codes as `mfs-jobs run drill`.
 */
export function drillCommand(job: JobEntry) {
  return (program: Command, ctx: { globals: () => { config?: string; verbose?: boolean } }): void => {
    const cmd = program
      .command('drill')
      .description(
        'restore a restore point into a scratch master on loopback, prove it serves, report RTO/RPO, clean up',
      )
      .option('--json', 'print the result as JSON')
      .option('-n, --dry-run', 'say what would be restored and on which ports, change nothing');
    for (const o of job.cliOptions ?? []) cmd.addOption(new Option(o.flags, o.description));
    cmd.addHelpText('after', '\nExit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad flags or config).');
    cmd.action(async (opts: Record<string, unknown>) => {
      await runOnce(job, opts, ctx.globals());
    });
  };
}
