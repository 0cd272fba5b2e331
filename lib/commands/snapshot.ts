import type { Command } from 'commander';
import { ConfigError, describeError, UsageError } from '../core/errors.js';
import type { Globals } from './snapshot-actions.js';

/**
 * `mfs-jobs snapshot list | show | export | import | sign`: the snapshot store by hand. Exit codes: 0 done,
 * 2 a snapshot or archive that does not verify (or any other failure), 3 bad config or arguments.
 * The store's code (snapshot-actions.ts) loads only when one of them runs: every other command starts faster.
 */
const actions = () => import('./snapshot-actions.js');

function fail(err: unknown, verbose: boolean): never {
  process.stderr.write(`mfs-jobs: ${describeError(err)}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(err instanceof ConfigError || err instanceof UsageError ? 3 : 2);
}

/** Register `snapshot …` on the program (an extension for buildProgram). */
export function snapshotCommands(program: Command, ctx: { globals: () => Globals }): void {
  const wrap =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A) => {
      try {
        await fn(...args);
      } catch (err) {
        fail(err, Boolean(ctx.globals().verbose));
      }
    };
  const snapshot = program
    .command('snapshot')
    .description('list, show, export and import snapshots of the snapshot store');
  snapshot
    .command('list')
    .description('the snapshots in the store, oldest first')
    .option('--json', 'print as JSON')
    .option('--copy <name>', 'list an off-site copy (snapshotStore.copies) instead of the local store')
    .action(
      wrap(async (opts: { json?: boolean; copy?: string }) =>
        (await actions()).list(ctx.globals(), Boolean(opts.json), opts.copy),
      ),
    );
  snapshot
    .command('show')
    .description("one snapshot's manifest: source, versions, files and checksums")
    .argument('<id>', 'snapshot id, or "latest"')
    .option('--json', 'print as JSON')
    .action(
      wrap(async (id: string, opts: { json?: boolean }) =>
        (await actions()).show(ctx.globals(), id, Boolean(opts.json)),
      ),
    );
  snapshot
    .command('export')
    .description('write a snapshot (files + manifest) to a tar.gz, after verifying its checksums')
    .argument('<id>', 'snapshot id, or "latest"')
    .argument('<file>', 'the .tar.gz to write')
    .action(wrap(async (id: string, file: string) => (await actions()).exportCmd(ctx.globals(), id, file)));
  snapshot
    .command('import')
    .description('add a snapshot from a tar.gz made by export; checksums, image and chain are verified first')
    .argument('<file>', 'the .tar.gz to read')
    .option(
      '--other-filesystem',
      "accept a snapshot whose metaid differs from the cluster's (cluster.metaid or learnt) or the store's snapshots (a deliberate move)",
    )
    .action(
      wrap(async (file: string, opts: { otherFilesystem?: boolean }) =>
        (await actions()).importCmd(ctx.globals(), file, Boolean(opts.otherFilesystem)),
      ),
    );
  snapshot
    .command('pin')
    .description('keep a snapshot whatever retention says (store and copies), with a note shown by list and show')
    .argument('<id>', 'snapshot id, or "latest"')
    .option('--note <text>', 'why it is kept, e.g. "before the 4.x upgrade"')
    .action(
      wrap(async (id: string, opts: { note?: string }) => (await actions()).pinCmd(ctx.globals(), id, opts.note ?? '')),
    );
  snapshot
    .command('unpin')
    .description('let retention decide about a pinned snapshot again')
    .argument('<id>', 'snapshot id')
    .action(wrap(async (id: string) => (await actions()).unpinCmd(ctx.globals(), id)));
  snapshot
    .command('sign')
    .description(
      'sign local snapshots written before manifests were signed (verified in full first; re-sealed if encrypted)',
    )
    .option('--yes', 'do it (without: only list what would be signed)')
    .action(wrap(async (opts: { yes?: boolean }) => (await actions()).signCmd(ctx.globals(), Boolean(opts.yes))));
}
