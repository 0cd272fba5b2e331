import { promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { LATEST, readManifest, snapshotsDir, TMP_DIR } from '../../lib/store/manifest.js';
import { verifySnapshot } from '../../lib/store/snapshot-store.js';
import { startCli, type CliResult } from '../helpers/cli.js';

/**
 * Shared parts of the faults suite: CI or long mode, seeded kill points, killing a real
 * `mfs-jobs run` by PID, and the checks every fault ends with (store intact, no crash).
 */

/** `MFS_JOBS_FAULTS_LONG=1`: many more iterations (outside CI). */
export const LONG = process.env.MFS_JOBS_FAULTS_LONG === '1';

/** Iterations for CI / long mode; `MFS_JOBS_FAULTS_<NAME>` overrides both. */
export function iterations(name: string, ci: number, long: number): number {
  const forced = Number(process.env[`MFS_JOBS_FAULTS_${name}`]);
  return Number.isInteger(forced) && forced > 0 ? forced : LONG ? long : ci;
}

/** One seed per run, printed with every result so a failing kill point can be replayed (`MFS_JOBS_FAULTS_SEED`). */
export const SEED = Number(process.env.MFS_JOBS_FAULTS_SEED) || Math.floor(Math.random() * 2 ** 31);

export { seededRandom } from '../helpers/random.js';

/**
 * `n` kill delays spread evenly over [fromMs, toMs], each jittered inside its own slice: every part of
 * the run gets hit, and the seed moves the exact points from one CI run to the next.
 */
export function spreadDelays(n: number, fromMs: number, toMs: number, random: () => number): number[] {
  const slice = (toMs - fromMs) / n;
  return Array.from({ length: n }, (_, i) => Math.round(fromMs + slice * (i + random())));
}

/**
 * The shortest of `n` calibration runs (ms): the first run is slower (cold caches), and a kill point
 * spread past the real end of a run is no kill at all.
 */
export async function shortestRun(measure: () => Promise<number>, n = 3): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < n; i++) best = Math.min(best, await measure());
  return best;
}

export interface KilledRun {
  /** False when the run ended by itself before the kill. */
  killed: boolean;
  delayMs: number;
  result: CliResult;
  /** The last log message the run wrote before it died: where the kill landed. */
  lastLog: string;
}

export function lastLogMessage(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  for (const line of lines.reverse()) {
    try {
      const entry = JSON.parse(line) as { message?: string };
      if (entry.message) return entry.message;
    } catch {
      return line.slice(0, 120);
    }
  }
  return '(nothing logged yet: start-up)';
}

/** Start the real CLI and SIGKILL it (by PID) after `delayMs`. */
export async function runAndKill(args: string[], delayMs: number, env: NodeJS.ProcessEnv = {}): Promise<KilledRun> {
  const run = startCli(args, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), delayMs);
  const result = await run.done;
  clearTimeout(timer);
  return { killed: result.signal === 'SIGKILL', delayMs, result, lastLog: lastLogMessage(result.stderr) };
}

/**
 * Start the real CLI and SIGKILL it the moment an entry whose name matches `match` appears in `dir`
 * (inotify, sub-millisecond; `event: 'change'` for a write to it; `nth`: at its nth event): lands a kill in windows too short
 * to hit by time (a snapshot just renamed into place, retention's rename into .tmp). Not killed when
 * the run ends first.
 */
export async function runAndKillOn(
  args: string[],
  dir: string,
  match: RegExp,
  options: { event?: 'rename' | 'change'; nth?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<KilledRun> {
  const run = startCli(args, options.env);
  const started = Date.now();
  let delayMs = -1;
  let seen = 0;
  const watcher = watch(dir, (event, name) => {
    if (
      delayMs < 0 &&
      name &&
      match.test(name) &&
      (!options.event || event === options.event) &&
      ++seen >= (options.nth ?? 1)
    ) {
      run.child.kill('SIGKILL');
      delayMs = Date.now() - started;
    }
  });
  const result = await run.done.finally(() => watcher.close());
  return { killed: result.signal === 'SIGKILL', delayMs, result, lastLog: lastLogMessage(result.stderr) };
}

/** How a run ended, for failure messages. */
/**
 * A timed kill that came after its run had finished (the calibration ran at a busier moment) is replaced by
 * one inside the time that run really took, while `budget.left` lasts: the suite keeps its count of real kills.
 */
export function replaceLateKill<T extends { delay?: number }>(
  plan: T[],
  step: T,
  killed: KilledRun,
  ranMs: number,
  random: () => number,
  budget: { left: number },
): void {
  if (killed.killed || step.delay === undefined || budget.left <= 0) return;
  budget.left--;
  plan.push({ ...step, delay: spreadDelays(1, 100, Math.max(150, ranMs * 0.8), random)[0]! });
}

export function describeRun(r: CliResult): string {
  const trace = r.stderr.includes('    at ') ? ' (stack trace on stderr)' : '';
  return `exit ${r.code ?? r.signal}: ${firstLine(r.stdout)}${trace}`;
}

/** The plugin line, or a --json report's status and summary (its first line alone is "{"). */
function firstLine(stdout: string): string {
  const text = stdout.trim();
  if (text.startsWith('{')) {
    try {
      const report = JSON.parse(text) as { status?: string; summary?: string };
      return `${report.status ?? '?'} - ${report.summary ?? ''}`;
    } catch {
      // Not one JSON document: its first line as it is.
    }
  }
  return text.split('\n')[0] ?? '';
}

/**
 * A run that met bad input or a fault: a Nagios code 1–3 (never 0, never a signal or Node's crash
 * codes) and no stack trace on stderr. Returns what is wrong, empty when it behaved.
 */
export function crashProblems(r: CliResult, allowOk = false): string[] {
  const problems: string[] = [];
  if (r.signal) problems.push(`ended by ${r.signal}`);
  else if (r.code === 0 && !allowOk) problems.push('exit 0 for bad input');
  else if (r.code === null || r.code > 3) problems.push(`exit ${r.code} (not a Nagios code: a crash?)`);
  const trace = r.stderr.split('\n').find((l) => /^\s{4}at /.test(l));
  if (trace) problems.push(`stack trace on stderr: ${trace.trim()}`);
  return problems;
}

export interface StoreCheck {
  /** Snapshot ids that are complete and verify (sha256, header, chain), oldest first. */
  good: string[];
  /** `<id>: <problem>` for every directory in snapshots/ that is partial or does not verify. */
  problems: string[];
  /** Entries in `.tmp/` (allowed after a kill until the next run removes them). */
  temps: string[];
  /** Anything else in the store's top directory (a leftover `.latest.tmp-*`, …). */
  strays: string[];
  latest: string | undefined;
}

/** Everything a reader of the store could trip over, checked the slow way (every byte). */
export async function checkStore(store: string): Promise<StoreCheck> {
  const out: StoreCheck = { good: [], problems: [], temps: [], strays: [], latest: undefined };
  const names = (await fs.readdir(snapshotsDir(store)).catch(() => [] as string[])).sort();
  for (const id of names) {
    const dir = path.join(snapshotsDir(store), id);
    try {
      const problems = await verifySnapshot(dir, await readManifest(dir, {}), {});
      if (problems.length) out.problems.push(`${id}: ${problems.join('; ')}`);
      else out.good.push(id);
    } catch (err) {
      out.problems.push(`${id}: partial snapshot: ${(err as Error).message}`);
    }
  }
  out.temps = (await fs.readdir(path.join(store, TMP_DIR)).catch(() => [] as string[])).sort();
  const top = await fs.readdir(store).catch(() => [] as string[]);
  out.strays = top.filter((n) => ![path.basename(snapshotsDir(store)), TMP_DIR, LATEST].includes(n)).sort();
  const link = await fs.readlink(path.join(store, LATEST)).catch(() => undefined);
  if (link !== undefined) {
    out.latest = path.basename(link);
    if (!out.good.includes(out.latest)) out.problems.push(`latest points to ${link}, not a good snapshot`);
  }
  return out;
}

/**
 * The image being copied into a staged snapshot has bytes: the transfer is under way. A compressing store
 * copies over SFTP to `<name>.download` first (issue 28), a plain one to the name.
 */
export async function transferUnderWay(store: string): Promise<boolean | undefined> {
  for (const stage of await fs.readdir(path.join(store, '.tmp')).catch(() => [] as string[])) {
    for (const name of ['metadata.mfs.back', 'metadata.mfs.back.download']) {
      const st = await fs.stat(path.join(store, '.tmp', stage, name)).catch(() => undefined);
      if (st && st.size > 0) return true;
    }
  }
  return undefined;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export { processesIn } from '../lab/proc.js';
