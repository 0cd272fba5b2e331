// npm run build, second step: bundle the compiled CLI (dist/bin/hand-off.js and dist/bin/cli.js) into a few ES
// modules in dist/bundle/cli/ with esbuild, so that start-up reads and compiles a few dozen files instead of
// hundreds (`run promote`: 45 instead of 336; our modules, yaml, zod, winston, commander). Code splitting keeps
// every job an import() of its own chunk: a command line still loads only the job it runs. bin/mfs-jobs runs the
// bundle when it is current.
//
// Kept external (left to node_modules): packages loaded only when used (S3, SFTP, tar, etcd) — bundling them
// would only enlarge the chunks of the jobs that import them.
//
// The output directory is three levels below the package root on purpose: the modules locate files by
// `new URL('../../../package.json', import.meta.url)` (dist/lib/core/cli.js), '../../../examples/…' and
// '../../bin/watch-clients.js' (dist/lib/failover/…), which resolve the same from dist/bundle/cli/.
import { build } from 'esbuild';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// zod's `z` namespace re-exports all of its ~60 message locales (`z.locales`), so none can be tree-shaken: 360 KB
// of the bundle's 770 KB zod chunk, about 30 ms of CPU at every start. We use only English, its default, which
// zod's schemas import directly; the namespace keeps just `en`. If zod moves the file, nothing matches and the
// bundle simply keeps them all.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";',
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

const root = fileURLToPath(new URL('..', import.meta.url));

await build({
  absWorkingDir: root,
  // The changelog scanner's worker thread is a file of its own: changelog-pool.js starts it by
  // new URL('./changelog-worker.js', import.meta.url), which names this output beside the chunks.
  entryPoints: {
    'hand-off': 'dist/bin/hand-off.js',
    'cached-cli': 'dist/bin/cached-cli.js',
    cli: 'dist/bin/cli.js',
    'changelog-worker': 'dist/lib/moosefs/changelog-worker.js',
  },
  outdir: 'dist/bundle/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@aws-sdk/*', 'ssh2-sftp-client', 'ssh2', 'tar', 'etcd3'],
  // CommonJS packages inside an ES module bundle call require() for Node's built-ins.
  banner: {
    js: [
      "import { createRequire as __mfsCreateRequire } from 'node:module';",
      'const require = __mfsCreateRequire(import.meta.url);',
    ].join('\n'),
  },
  chunkNames: 'chunk-[hash]',
  legalComments: 'none',
  // Without comments and indentation the chunks are 40 % smaller and ASCII only (a comment's "—" or "é" made V8 read a
  // whole chunk as UTF-16): ≈ 30 ms of CPU less per `run` (issue #28). Names are kept: stack traces stay readable.
  minifyWhitespace: true,
  logLevel: 'warning',
  plugins: [zodEnglishOnly],
});

// The same CLI as one CommonJS file, for V8's code cache (issue #28; lib/core/code-cache.ts): Node 20 caches no ES
// module's compiled code, but a script's. One file because esbuild splits only ES modules: every job is in it, and
// its import() is a function call that evaluates the job's modules (compiled already, from the cache) when first
// used. It sits beside the chunks, so import.meta.url (here its file's URL) names the same files from it.
const outdir = path.join(root, 'dist/bundle/cli');
const cjs = path.join(outdir, 'cli.cjs');
await build({
  absWorkingDir: root,
  entryPoints: ['dist/bin/program.js'],
  outfile: cjs,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['@aws-sdk/*', 'ssh2-sftp-client', 'ssh2', 'tar', 'etcd3'],
  // import() of the packages left outside (S3, SFTP, tar) becomes require() of their CommonJS builds: a script's
  // import() needs vm's experimental loader hook, which a function compiled from the cache does not keep (measured:
  // ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING on the first SFTP source).
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__mfsImportMetaUrl' },
  banner: { js: "var __mfsImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  legalComments: 'none',
  minifyWhitespace: true,
  logLevel: 'warning',
  plugins: [zodEnglishOnly],
});
// The cache: what V8 compiled after the warm-up (bin/program.ts), written 0644 like the code beside it. At build time
// only, by whoever builds (root for a system install: scripts/setup-debian.sh, the .deb's prepack).
const { produceCodeCache } = await import(path.join(root, 'dist/lib/core/code-cache.js'));
const { writeFileAtomic } = await import(path.join(root, 'dist/lib/core/atomic.js'));
const example = new URL('../examples/config.yaml', import.meta.url);
await writeFileAtomic(`${cjs}.cache`, await produceCodeCache(cjs, (m) => m.warmUpForCodeCache(example)), 0o644);

if (/\bimport\(/.test(readFileSync(cjs, 'latin1'))) {
  console.error('bundle: cli.cjs still has an import(), which fails when run from the code cache');
  process.exit(1);
}

// The relative URLs above must still name files from the bundle's directory: fail the build, not a run, if not.
for (const name of readdirSync(outdir)) {
  const text = readFileSync(path.join(outdir, name), 'utf8');
  if (name.endsWith('.cache')) continue;
  for (const [, rel] of text.matchAll(/new URL\("([^"]+)",\s*(?:import\.meta\.url|__mfsImportMetaUrl)\)/g)) {
    if (!existsSync(path.resolve(outdir, rel))) {
      console.error(`bundle: ${name}: new URL("${rel}", import.meta.url) names no file from dist/bundle/cli/`);
      process.exit(1);
    }
  }
}
