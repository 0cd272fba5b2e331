// bin/mfs-jobs's second step when the bundle is current: run the command line from the CommonJS bundle and its V8
// code cache (dist/bundle/cli/cli.cjs and cli.cjs.cache, both written by npm run build: scripts/bundle.mjs).
// `--version` and `--help` stay on the ES module bundle, which loads only commander for them: reading and
// deserialising the whole CLI would cost them more than it saves.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const TRACE_ENV = 'MFS_JOBS_CODE_CACHE_TRACE';
const QUICK = new Set(['-V', '--version', '-h', '--help', 'help']);

/**
 * false: not for this command line, or no CommonJS bundle: bin/mfs-jobs runs cli.js instead. `handOffAsked`: the
 * launcher's hand-off already answered (a daemon declined, or this is no hook call); else it is asked in full here.
 */
export async function runCachedCli(argv: readonly string[], bundleDir: URL, handOffAsked: boolean): Promise<boolean> {
  if (argv.length === 0 || QUICK.has(argv[0]!)) return false;
  const file = fileURLToPath(new URL('cli.cjs', bundleDir));
  if (!existsSync(file)) return false;
  // Imported here, not at the top: --version and --help load no node:vm.
  const { loadBundle } = await import('../lib/core/code-cache.js');
  const { exports, cache } = loadBundle(file, `${file}.cache`);
  if (process.env[TRACE_ENV] === '1') process.stderr.write(`mfs-jobs: code cache ${cache}\n`);
  if (!handOffAsked && (await (exports.tryHandOff as (argv: readonly string[]) => Promise<boolean>)(argv))) return true;
  await (exports.runCli as (argv: string[]) => Promise<void>)(process.argv);
  return true;
}
