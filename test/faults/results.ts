import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatTable } from '../../lib/core/table.js';

/**
 * The faults suite's ledger: every test writes one row per kind of fault it injected (how many times,
 * how many it survived, what was lost) into a JSON-lines file; the suite's reporter
 * (test/faults-summary-reporter.cjs) prints them as one table at the end of `npm test`.
 */
export interface FaultRow {
  /** Group in the table: kill, disk, network, bad file, concurrency, failover. */
  area: string;
  fault: string;
  injected: number;
  /** Injections after which every check held (no partial snapshot, next run OK, …). */
  survived: number;
  /** Acknowledged client files missing or different afterwards (failover), or snapshot files corrupted. */
  dataLost: number;
  /** Snapshots (or promoted metadata versions) that existed before the fault and did not after. */
  lostRestorePoints: number;
  note?: string;
  /** The test file that recorded it (set by recordFaults), so a fault suite that recorded nothing shows. */
  file?: string;
}

/** The reporter sets this for the whole run; a file run alone (no reporter) gets its own directory. */
const ENV = 'MFS_JOBS_FAULTS_RESULTS';

function resultsDir(): string {
  if (!process.env[ENV]) process.env[ENV] = mkdtempSync(path.join(os.tmpdir(), 'mfs-jobs-faults-results-'));
  return process.env[ENV];
}

/** The running test file, as jest knows it (undefined outside jest). */
function currentTestFile(): string | undefined {
  const e = (globalThis as { expect?: { getState?: () => { testPath?: string } } }).expect;
  return e?.getState?.().testPath;
}

export function recordFaults(row: FaultRow): void {
  appendFileSync(
    path.join(resultsDir(), `${process.pid}.jsonl`),
    JSON.stringify({ ...row, file: row.file ?? currentTestFile() }) + '\n',
  );
}

/**
 * Why the ledger of a run cannot be trusted, or undefined: test files under `faultsDir` ran and the
 * table is empty, or one of them recorded no row (its faults would silently be missing from the table).
 */
export function faultLedgerProblem(
  ranFiles: readonly string[],
  rows: readonly FaultRow[],
  faultsDir: string,
): string | undefined {
  const inDir = (f: string) => !path.relative(faultsDir, f).startsWith('..') && f.endsWith('.test.js');
  const faultFiles = ranFiles.filter(inDir);
  if (faultFiles.length === 0) return undefined;
  if (rows.length === 0)
    return `${faultFiles.length} fault test file(s) ran and the faults table is empty (nothing recorded in MFS_JOBS_FAULTS_RESULTS): ${faultFiles.map((f) => path.basename(f)).join(', ')}`;
  const recorded = new Set(rows.map((r) => r.file).filter((f): f is string => f !== undefined));
  const silent = faultFiles.filter((f) => !recorded.has(f));
  if (silent.length)
    return `fault test file(s) that recorded no row in the faults table: ${silent.map((f) => path.basename(f)).join(', ')}`;
  return undefined;
}

export function readFaultRows(dir: string): FaultRow[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
  return files.flatMap((f) =>
    readFileSync(path.join(dir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FaultRow),
  );
}

export function formatFaultTable(rows: FaultRow[], header: string): string {
  const sorted = [...rows].sort((a, b) => a.area.localeCompare(b.area) || a.fault.localeCompare(b.fault));
  const total = sorted.reduce(
    (t, r) => ({
      injected: t.injected + r.injected,
      survived: t.survived + r.survived,
      dataLost: t.dataLost + r.dataLost,
      lost: t.lost + r.lostRestorePoints,
    }),
    { injected: 0, survived: 0, dataLost: 0, lost: 0 },
  );
  const table = formatTable(
    ['AREA', 'FAULT', 'INJECTED', 'SURVIVED', 'DATA LOST', 'LOST RESTORE POINTS', 'NOTE'],
    [
      ...sorted.map((r) => [
        r.area,
        r.fault,
        String(r.injected),
        String(r.survived),
        String(r.dataLost),
        String(r.lostRestorePoints),
        r.note ?? '',
      ]),
      ['total', '', String(total.injected), String(total.survived), String(total.dataLost), String(total.lost), ''],
    ],
  );
  return `${header}\n${table}\n`;
}

/** For a file run without the reporter: print its own rows (the reporter prints everything otherwise). */
export function printOwnRowsUnlessReported(): void {
  if (process.env.MFS_JOBS_FAULTS_REPORTER) return;
  const dir = process.env[ENV];
  if (!dir) return;
  const mine = existsSync(dir) ? readFaultRows(dir) : [];
  if (mine.length) process.stdout.write(formatFaultTable(mine, `faults injected (results in ${dir}):`));
}

/** Something a faults suite started: a lab, a proxy, a mount, a master, or a step of its own. */
export type Started =
  { stop(): Promise<unknown> } | { unmount(): Promise<unknown> } | (() => Promise<unknown>) | undefined;

/** One network fault tried once: survived or not, and what was seen. */
export interface NetworkTrial {
  fault: string;
  ok: boolean;
  note: string;
}

/**
 * A faults suite's afterAll: stop what it started in the order given (each one even when an earlier
 * one failed, the first failure rethrown at the end), record its network trials, print its rows.
 */
export async function tearDownFaults(started: Started[], trials: NetworkTrial[] = []): Promise<void> {
  let failure: { err: unknown } | undefined;
  for (const s of started) {
    if (!s) continue;
    try {
      if (typeof s === 'function') await s();
      else if ('stop' in s) await s.stop();
      else await s.unmount();
    } catch (err) {
      failure ??= { err };
    }
  }
  for (const t of trials)
    recordFaults({
      area: 'network',
      fault: t.fault,
      injected: 1,
      survived: t.ok ? 1 : 0,
      dataLost: 0,
      lostRestorePoints: 0,
      note: t.note,
    });
  printOwnRowsUnlessReported();
  if (failure) throw failure.err;
}

/**
 * A test of one attack that, when it passes, is a row of the closing table (`area`, `fault`): the
 * hostile-server, archive and identity suites outside test/faults appear there too.
 */
export function attackTest(
  area: string,
  fault: string,
  title: string,
  fn: () => Promise<void>,
  timeout?: number,
): void {
  test(
    title,
    async () => {
      await fn();
      recordFaults({ area, fault, injected: 1, survived: 1, dataLost: 0, lostRestorePoints: 0 });
    },
    timeout,
  );
}
