import path from 'node:path';
import { type Command } from 'commander';
import { printReport } from '../core/cli.js';
import type { JobEntry } from '../core/job.js';

interface InitFlags {
  master?: string;
  stateDir?: string;
  store?: string;
  dataPath: string;
  masterDataPath?: string;
  metaloggerDataPath?: string;
  chunkserverDataPath: string;
  sshUser: string;
  sshPort: string;
  sshKey?: string;
  knownHosts?: string;
  local: boolean;
  moosefsPrefix?: string;
  force?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

/** Only what is missing and has no default is asked: the master's address. */
async function askMaster(): Promise<string | undefined> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (
      (await rl.question("The master's address (HOST or HOST:PORT of its client port, 9421 by default): ")).trim() ||
      undefined
    );
  } finally {
    rl.close();
  }
}

const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(p));

/**
 * `mfs-jobs init --master HOST[:PORT] [...]`: find the cluster through its master, test reading every
 * DATA_PATH, write the config, run check-master, a first backup and verify, and say how to schedule them.
 * The work is in init-run.ts, loaded only when init runs (start-up, issue #24).
 */
export function initCommand(jobs: readonly JobEntry[]) {
  return (program: Command, ctx: { globals: () => { config?: string; verbose?: boolean } }): void => {
    program
      .command('init')
      .description(
        'set up mfs-jobs for a cluster: discover it through its master, test SSH, write the config, first backup',
      )
      .option('--master <host[:port]>', "the master's client address, host and client port (asked on a terminal)")
      .option('--data-path <dir>', 'DATA_PATH of the master and the metaloggers', '/var/lib/mfs')
      .option('--master-data-path <dir>', "the master's DATA_PATH, when it is not --data-path")
      .option('--metalogger-data-path <dir>', "the metaloggers' DATA_PATH, when it is not --data-path")
      .option(
        '--chunkserver-data-path <dir>',
        "the chunkservers' DATA_PATH (read before MooseFS 1.6.5: changelog_csback.N.mfs)",
        '/var/lib/mfs',
      )
      .option('--state-dir <dir>', 'stateDir (state, locks; default /var/lib/mfs-jobs)')
      .option('--store <dir>', 'snapshot store (default <state-dir>/snapshots)')
      .option('--ssh-user <user>', 'SSH user on the master and metaloggers', 'root')
      .option('--ssh-port <port>', 'SSH port on the master and metaloggers', '22')
      .option('--ssh-key <file>', 'private key (default id_ed25519 beside the config)')
      .option(
        '--known-hosts <file>',
        'known_hosts that host keys are pinned into on first contact (default beside the config)',
      )
      .option(
        '--no-local',
        "read every DATA_PATH over SSH, also this machine's (default: an address of this machine is read locally)",
      )
      .option('--moosefs-prefix <dir>', "where the cluster's generation's own MooseFS is installed (moosefs.prefixes)")
      .option('--force', 'replace an existing config that differs')
      .option('-n, --dry-run', 'print the config it would write; write and run nothing')
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        '\nExit codes: 0 OK, 1 WARNING, 2 CRITICAL (master or a DATA_PATH unreachable, a job failed),' +
          ' 3 UNKNOWN (bad flags, config differs).',
      )
      .action(async (flags: InitFlags) => {
        const globals = ctx.globals();
        const [{ runInit }, { createLogger }, { configPath }] = await Promise.all([
          import('./init-run.js'),
          import('../core/logger.js'),
          import('../core/config.js'),
        ]);
        const log = createLogger({ level: globals.verbose ? 'debug' : 'warn' });
        const master = flags.master ?? (await askMaster());
        const sshPort = Number(flags.sshPort);
        const configFile = path.resolve(configPath(globals.config));
        const report = await runInit(
          {
            master: master ?? '',
            configFile,
            stateDir: abs(flags.stateDir),
            store: abs(flags.store),
            dataPath: path.resolve(flags.dataPath),
            masterDataPath: abs(flags.masterDataPath),
            metaloggerDataPath: abs(flags.metaloggerDataPath),
            chunkserverDataPath: path.resolve(flags.chunkserverDataPath),
            sshUser: flags.sshUser,
            sshPort,
            sshKey: abs(flags.sshKey),
            knownHosts: abs(flags.knownHosts),
            local: flags.local,
            moosefsPrefix: abs(flags.moosefsPrefix),
            force: Boolean(flags.force),
            dryRun: Boolean(flags.dryRun),
          },
          jobs,
          log,
        );
        await printReport(report, Boolean(flags.json));
        await new Promise<void>((resolve) => log.on('finish', resolve).end());
        process.exit(report.exitCode);
      });
  };
}
