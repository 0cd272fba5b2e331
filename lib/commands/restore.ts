import { Option, type Command } from 'commander';
import { runOnce } from '../core/cli.js';
import type { JobEntry } from '../core/job.js';

/**
 * `mfs-jobs restore (--snapshot ID | --latest | --from SOURCE) [--to-version N | --to-time ISO-8601]
 * --data-path DIR [--dry-run] [--json] [--start]`: the restore job run once, by hand, with the same flags,
 * outputs and exit codes as `mfs-jobs run restore`.
 */
export function restoreCommand(job: JobEntry) {
  return (program: Command, ctx: { globals: () => { config?: string; verbose?: boolean } }): void => {
    const cmd = program
      .command('restore')
      .description(
        "point-in-time recovery: rebuild a master's DATA_PATH from a snapshot or a metalogger, to a version or a time",
      )
      .option('--json', 'print the result as JSON')
      .option(
        '-n, --dry-run',
        'copy and cut in a staging directory, report what would be restored and left out, change no DATA_PATH',
      );
    for (const o of job.cliOptions ?? []) cmd.addOption(new Option(o.flags, o.description));
    cmd.addHelpText(
      'after',
      [
        '',
        'Versions are what `mfscli -SIM` shows: --to-version N restores every change before N and none from N on',
        '(after changelog line L the master reports L+1). --to-time T applies every change up to the first one later',
        'than T. The image must be older than the target: --latest takes the newest snapshot whose image is.',
        'Nothing is written when the target lies outside the restore point, inside a hole, or behind a damaged line.',
        "The DATA_PATH's old content is moved into mfs-jobs-aside-<time>/ inside it, never deleted.",
        '',
        'Example: mfs-jobs restore --latest --to-time 2026-12-01T14:01:00Z --data-path /var/lib/mfs --start',
        '',
        'Exit codes: 0 OK, 1 WARNING (e.g. the target is older than the trash time), 2 CRITICAL (refused or failed), 3 UNKNOWN (bad flags or config).',
      ].join('\n'),
    );
    cmd.action(async (opts: Record<string, unknown>) => {
      await runOnce(job, opts, ctx.globals());
    });
  };
}
