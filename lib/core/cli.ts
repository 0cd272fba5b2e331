import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Config } from './config.js';
import { describeError, UsageError } from './errors.js';
import type { Job, JobEntry } from './job.js';
import type { JsonReport } from './output.js';

// Everything past commander is imported where a command needs it (start-up, issue #24): `--version` and
// `--help` load nothing else, `list-jobs` no job, `run X` only job X and what it uses.

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Exit code for errors before any job ran (bad config, unknown job): Nagios UNKNOWN. */
const EXIT_UNKNOWN = 3;

interface GlobalOptions {
  config?: string;
  verbose?: boolean;
}

function fail(err: unknown, verbose: boolean): never {
  process.stderr.write(`mfs-jobs: ${describeError(err)}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(EXIT_UNKNOWN);
}

/** Resolves once stdout took the whole report: process.exit() right after a write to a pipe cuts it off at 64 KiB. */
export async function printReport(report: JsonReport, json: boolean): Promise<void> {
  const { formatReport } = await import('./output.js');
  const text = formatReport(report, json);
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}

/** Run a job once and exit with its Nagios code; shared by `run <job>` and the per-job shortcuts. */
export async function runOnce(entry: JobEntry, opts: Record<string, unknown>, globals: GlobalOptions): Promise<never> {
  const verbose = Boolean(globals.verbose);
  // The job's modules load while the config is read and checked.
  const loading = Promise.all([entry.load(), import('./logger.js'), import('./runner.js')]);
  loading.catch(() => undefined); // a bad config is reported first; a load failure below
  let config: Config;
  try {
    const { loadConfig } = await import('./config.js');
    config = await loadConfig(globals.config);
  } catch (err) {
    fail(err, verbose);
  }
  const [job, { createLogger }, { runJob }] = await loading;
  const log = createLogger({ level: verbose ? 'debug' : config.log.level });
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    log.warn(`received ${sig}: aborting ${job.name} at its next safe point`);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const { json, dryRun, ...args } = opts;
  // Hold the event loop open until the job settles: if some library call never settles, Node would
  // otherwise exit 0 mid-job with no output — a silent "success" cron would believe.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const { report } = await runJob(job, {
    config,
    log,
    dryRun: Boolean(dryRun),
    args,
    signal: controller.signal,
  }).finally(() => clearInterval(keepAlive));
  await printReport(report, Boolean(json));
  await new Promise<void>((resolve) => log.on('finish', resolve).end());
  process.exit(report.exitCode);
}

async function listJobs(jobs: readonly JobEntry[], globals: GlobalOptions, json: boolean): Promise<void> {
  const [{ loadConfig }, { jobOverview }, { formatTable }, { DateTime }] = await Promise.all([
    import('./config.js'),
    import('./job-overview.js'),
    import('./table.js'),
    import('luxon'),
  ]);
  const config = await loadConfig(globals.config);
  const rows = await jobOverview(config, jobs);
  if (json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  const when = (iso: string | null) =>
    iso ? DateTime.fromISO(iso, { zone: config.timezone }).toFormat('yyyy-LL-dd HH:mm:ss') : '-';
  process.stdout.write(
    formatTable(
      ['JOB', 'SCHEDULE', `NEXT RUN (${config.timezone})`, 'LAST RUN', 'LAST RESULT'],
      rows.map((r) => [
        r.enabled ? r.job : `${r.job} (disabled)`,
        r.schedule ?? (r.enabled ? 'hook/manual' : '-'),
        r.enabled ? when(r.nextRun) : '-',
        r.last ? when(r.last.finishedAt) : 'never',
        r.last ? `${r.last.status} - ${r.last.summary}` : '-',
      ]),
    ) + '\n',
  );
}

/** Build the command line. Extra commands (snapshot, drill, lab) register themselves via `extensions`. */
export function buildProgram(
  jobs: readonly JobEntry[],
  extensions: ((program: Command, ctx: { globals: () => GlobalOptions }) => void)[] = [],
): Command {
  const program = new Command('mfs-jobs')
    .description("Keep a MooseFS cluster's master metadata safe and its standby master ready")
    .version(VERSION, '-V, --version')
    .option('-c, --config <file>', 'config file (default $MFS_JOBS_CONFIG or /etc/mfs-jobs/config.yaml)')
    .option('-v, --verbose', 'debug logging and stack traces on errors')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const globals = () => program.opts<GlobalOptions>();

  const run = program
    .command('run')
    .description('run one job once and exit with its status (what a crontab calls)')
    .argument('<job>', `job name: ${jobs.map((j) => j.name).join(', ')}`)
    .option('--json', 'print the result as JSON')
    .option('-n, --dry-run', 'show what would be done, change nothing');
  const seen = new Set<string>();
  for (const job of jobs) {
    for (const o of job.cliOptions ?? []) {
      if (seen.has(o.flags)) continue;
      seen.add(o.flags);
      run.addOption(new Option(o.flags, `${o.description} (${job.name})`));
    }
  }
  run.addHelpText(
    'after',
    '\nExit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (config error, skipped because already running).',
  );
  run.action(async (name: string, opts: Record<string, unknown>) => {
    const job = jobs.find((j) => j.name === name);
    if (!job)
      fail(
        new UsageError(name, `unknown job "${name}" (known: ${jobs.map((j) => j.name).join(', ')})`),
        Boolean(globals().verbose),
      );
    const allowed = new Set([
      'json',
      'dryRun',
      ...(job.cliOptions ?? []).map((o) => new Option(o.flags, '').attributeName()),
    ]);
    const foreign = Object.keys(opts).filter((k) => opts[k] !== undefined && !allowed.has(k));
    if (foreign.length)
      fail(
        new UsageError(
          foreign[0]!,
          `option --${foreign[0]!.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} does not apply to job ${name}`,
        ),
        false,
      );
    await runOnce(job, opts, globals());
  });

  program
    .command('daemon')
    .description('run every scheduled job on its cron schedule (node-cron) until SIGTERM/SIGINT')
    .action(async () => {
      const verbose = Boolean(globals().verbose);
      const loadAll = async () => {
        const loaded: Job[] = [];
        for (const entry of jobs) loaded.push(await entry.load());
        return loaded;
      };
      const loading = Promise.all([loadAll(), import('./logger.js'), import('./daemon.js')]);
      loading.catch(() => undefined); // a bad config is reported first; a load failure below
      let config: Config;
      try {
        const { loadConfig } = await import('./config.js');
        config = await loadConfig(globals().config);
      } catch (err) {
        fail(err, verbose);
      }
      const [loaded, { createLogger }, { runDaemon }] = await loading;
      const log = createLogger({ level: verbose ? 'debug' : config.log.level });
      const code = await runDaemon(config, loaded, log);
      await new Promise<void>((resolve) => log.on('finish', resolve).end());
      process.exit(code);
    });

  program
    .command('list-jobs')
    .description('show the jobs, their schedules, next run time and last result')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      try {
        await listJobs(jobs, globals(), Boolean(opts.json));
      } catch (err) {
        fail(err, Boolean(globals().verbose));
      }
    });

  for (const extend of extensions) extend(program, { globals });
  return program;
}
