// Start-up, issues #28/#24 (BENCHMARKS.md "Start-up snapshot (issue 28/24)"): is a V8 start-up snapshot of the CLI
// (Node 20: `node --snapshot-blob B --build-snapshot entry.cjs`, run as `node --snapshot-blob B -- args`) worth
// shipping, against the bundle that ships (bin/mfs-jobs → dist/bundle/cli/) and against a V8 code cache of the
// same code? Not part of the product: this builds its prototypes beside the bundle, measures, and removes them.
//
// Sides, alternated round by round with `node -e 0` in the same loop (GNU time: wall, user + system, peak RSS):
//   bundle    bin/mfs-jobs as shipped
//   snapshot  a launcher in sh (what a snapshot needs: `#!/usr/bin/env node` cannot pass --snapshot-blob) that checks
//             a stamp (stat of node, the blob and its directory) and execs `node --snapshot-blob`
//   cache     the same CommonJS bundle compiled by vm.Script with V8 cachedData (one file for every command)
// The snapshot's entry evaluates every module of the CLI and every job at build time, loads node-cron, and parses
// examples/config.yaml once (so the parser's and the schema's functions are compiled into the blob); the cache is
// written after the same warm-up. Run after `npm run build`, as root: node bench/startup-snapshot-choice.mjs [ROUNDS]
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROUNDS = Number(process.argv[2] ?? 15);
const node = process.execPath;
const root = fileURLToPath(new URL('..', import.meta.url));
// Beside the bundle's chunks: the code finds files by `new URL('../../../package.json', import.meta.url)` and
// '../../bin/watch-clients.js', which resolve the same from here.
const out = path.join(root, 'dist/bundle/cli');
const entry = path.join(root, 'dist/bundle/snapshot-choice-entry.mjs');
const cjs = path.join(out, 'snapshot-choice.cjs');
const blob = path.join(out, 'snapshot-choice.blob');
const cache = path.join(out, 'snapshot-choice.cache');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'startup-snapshot-choice-'));
const made = [entry, cjs, blob, cache];

writeFileSync(
  entry,
  `import v8 from 'node:v8';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { tryHandOff } from '../bin/hand-off.js';
import { buildProgram } from '../lib/core/cli.js';
import { drillCommand } from '../lib/commands/drill.js';
import { initCommand } from '../lib/commands/init.js';
import { restoreCommand } from '../lib/commands/restore.js';
import { snapshotCommands } from '../lib/commands/snapshot.js';
import { statusCommand } from '../lib/commands/status.js';
import { JOBS, findJob } from '../jobs/index.js';
import { parseConfig } from '../lib/core/config.js';
import '../lib/core/logger.js';
import '../lib/core/runner.js';
import { loadCronParser } from '../lib/core/schedule-check.js';
export async function main() {
  const argv = process.argv.slice(process.env.MFS_CHOICE_ARGV0 === 'script' ? 2 : 1);
  if (await tryHandOff(argv)) return;
  await buildProgram(JOBS, [snapshotCommands, drillCommand(findJob('drill')), restoreCommand(findJob('restore')),
    statusCommand(JOBS), initCommand(JOBS)]).parseAsync([process.execPath, 'mfs-jobs', ...argv]);
}
export async function warm() {
  for (const job of JOBS) await job.load();
  // node-cron from the bundle: its createRequire() fallback would start the CommonJS loader, which a snapshot
  // must not contain (the blob then fails at every start: ERR_INTERNAL_ASSERTION in setupUserModules).
  await loadCronParser();
  parseConfig(YAML.parse(readFileSync(${JSON.stringify(path.join(root, 'examples/config.yaml'))}, 'utf8')), 'x');
}
if (v8.startupSnapshot.isBuildingSnapshot()) {
  void warm().then(() => v8.startupSnapshot.setDeserializeMainFunction(() => void main()));
}
`,
);

// One CommonJS file: a snapshot's entry must be one, and so is what the code cache compiles. import() of the
// packages left in node_modules becomes require(); the entry's own require() reaches only Node's built-ins, so
// others go through createRequire, made on first use (making it at build time would start the CommonJS loader).
await build({
  absWorkingDir: root,
  entryPoints: [entry],
  outfile: cjs,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['@aws-sdk/*', 'ssh2-sftp-client', 'ssh2', 'tar', 'etcd3'],
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__mfsUrl' },
  banner: {
    js: [
      "var __mfsUrl = require('node:url').pathToFileURL(__filename).href;",
      'var __mfsBuiltin = require, __mfsUser;',
      // a snapshot's entry runs without `module` (esbuild's CommonJS output assigns module.exports)
      "var module = typeof module === 'object' && module ? module : { exports: {} };",
      'require = function (id) {',
      "  if (__mfsBuiltin('node:module').isBuiltin(id)) return __mfsBuiltin(id);",
      "  __mfsUser ??= __mfsBuiltin('node:module').createRequire(__filename);",
      '  return __mfsUser(id);',
      '};',
    ].join('\n'),
  },
  legalComments: 'none',
  minifyWhitespace: true,
  logLevel: 'warning',
});

const run = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr.slice(-2000)}`);
  return r;
};
const timed = (label, cmd, args, env = {}) => {
  const r = run('/usr/bin/time', ['-f', '%e %U %S %M', cmd, ...args], env);
  const [wall, user, sys, rss] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  console.log(`${label}: ${wall} s wall, ${(user + sys).toFixed(2)} s CPU, peak RSS ${Math.round(rss / 1024)} MB`);
};

// The snapshot, its warnings (builtins Node has not verified in snapshots) and its cost.
timed('build the snapshot', process.execPath, ['--snapshot-blob', blob, '--build-snapshot', cjs]);
const warnings = run(process.execPath, ['--snapshot-blob', path.join(tmp, 'w.blob'), '--build-snapshot', cjs]);
console.log(`  built-ins Node warns about: ${[...warnings.stderr.matchAll(/module "([^"]+)"/g)].map((m) => m[1])}`);
chmodSync(blob, 0o644);
console.log(
  `  blob ${(statSync(blob).size / 1e6).toFixed(2)} MB; the CommonJS bundle ${(statSync(cjs).size / 1e6).toFixed(2)} MB`,
);
// The code cache: compile, warm up as the snapshot did, write what V8 compiled.
const runner = path.join(tmp, 'cache-run.cjs');
writeFileSync(
  runner,
  `const fs = require('node:fs'), vm = require('node:vm'), path = require('node:path');
const file = ${JSON.stringify(cjs)}, cacheFile = ${JSON.stringify(cache)};
let cachedData; try { cachedData = fs.readFileSync(cacheFile); } catch {}
const script = new vm.Script('(function (exports, require, module, __filename, __dirname) {' +
  fs.readFileSync(file, 'utf8') + '\\n})', { filename: file, cachedData });
if (cachedData && script.cachedDataRejected) process.stderr.write('code cache rejected\\n');
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require('node:module').createRequire(file), mod, file, path.dirname(file));
if (process.env.MFS_CHOICE_TRAIN === '1') mod.exports.warm().then(() => fs.writeFileSync(cacheFile, script.createCachedData()));
else void mod.exports.main();
`,
);
timed('write the code cache', node, [runner], { MFS_CHOICE_TRAIN: '1' });
console.log(`  cache ${(statSync(cache).size / 1e6).toFixed(2)} MB`);

// After every file is in place: the stamp names the directory's mtime too.
const stampOf = (...files) =>
  run('stat', ['-L', '-c', '%u:%a:%d:%i:%s:%Y:%Z', ...files])
    .stdout.trim()
    .split('\n')
    .join(' ');
writeFileSync(path.join(tmp, 'stamp'), stampOf(node, out, blob) + '\n');
// The launcher a snapshot would need: sh, one stat, then exec; --version and --help keep the bundle.
const launcher = path.join(tmp, 'launcher.sh');
writeFileSync(
  launcher,
  `#!/bin/sh
case "$1" in -V | --version | -h | --help | help | '') ;; *)
  id=$(stat -L -c '%u:%a:%d:%i:%s:%Y:%Z' ${node} ${out} ${blob} 2>/dev/null) && read -r want <${tmp}/stamp &&
    [ "$(echo $id)" = "$want" ] && exec ${node} --snapshot-blob ${blob} -- "$@"
  [ "$MFS_CHOICE_STRICT" = 1 ] && exit 99 ;; # measuring: no quiet fallback to the bundle
esac
exec ${node} ${path.join(root, 'bin/mfs-jobs')} "$@"
`,
  { mode: 0o755 },
);

const config = path.join(tmp, 'config.yaml');
writeFileSync(
  config,
  `timezone: UTC\nstateDir: ${tmp}/state\nlog:\n  level: warn\njobs:\n  check-master:\n    schedule: '*/5 * * * *'\n`,
);
const commands = {
  '--version': ['--version'],
  'list-jobs': ['list-jobs', '--config', config],
  'run promote (no standby:)': ['run', 'promote', '--config', config],
};
const sides = [['node -e 0', [node, '-e', '0'], {}]];
for (const [name, args] of Object.entries(commands)) {
  sides.push([`${name}, bundle`, [node, path.join(root, 'bin/mfs-jobs'), ...args], {}]);
  if (name !== '--version') sides.push([`${name}, snapshot`, [launcher, ...args], { MFS_CHOICE_STRICT: '1' }]);
  sides.push([`${name}, snapshot (direct)`, [node, '--snapshot-blob', blob, '--', ...args], {}]);
  sides.push([`${name}, code cache`, [node, runner, ...args], { MFS_CHOICE_ARGV0: 'script' }]);
}
const samples = new Map(sides.map(([label]) => [label, []]));
const load = () => os.loadavg()[0].toFixed(1);
const loadBefore = load();
for (let round = 0; round < ROUNDS; round++) {
  for (const [label, [cmd, ...args], env] of sides) {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', cmd, ...args], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    const [wall, user, sys, rss] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
    samples.get(label).push({
      code: r.status,
      out: r.stdout.replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, 'T'),
      wall,
      cpu: user + sys,
      rss,
    });
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const [, nodeSamples] = [...samples][0];
const base = { wall: median(nodeSamples.map((s) => s.wall)), cpu: median(nodeSamples.map((s) => s.cpu)) };
console.log(`\n${ROUNDS} rounds, medians, load average ${loadBefore} → ${load()}, ${process.version}`);
console.log('| side | wall s (× node -e 0) | CPU s (×) | peak RSS MB | exit codes | same stdout as the bundle |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const [label, xs] of samples) {
  const wall = median(xs.map((s) => s.wall));
  const cpu = median(xs.map((s) => s.cpu));
  const bundle = samples.get(label.replace(/, [^,]+$/, ', bundle'));
  const same = bundle ? String(xs.every((s, i) => s.out === bundle[i].out && s.code === bundle[i].code)) : '';
  console.log(
    `| ${label} | ${wall.toFixed(3)} (${(wall / base.wall).toFixed(2)}×) | ${cpu.toFixed(2)} (${(cpu / base.cpu).toFixed(2)}×) | ` +
      `${Math.round(median(xs.map((s) => s.rss)) / 1024)} | ${[...new Set(xs.map((s) => s.code))]} | ${same} |`,
  );
}
if (!process.argv.includes('--keep')) for (const f of [...made, tmp]) rmSync(f, { recursive: true, force: true });
