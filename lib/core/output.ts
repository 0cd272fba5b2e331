import path from 'node:path';
import { writeFileAtomic } from './atomic.js';
import type { JobResult, Metric, Status } from './job.js';
import { exitCodeOf } from './job.js';
import { METRIC_PREFIX, metricSpec } from './metrics.js';

/** Plugin guidelines: a label is any text but `=` and `'`; quoted when it holds a space. */
function perfLabel(m: Metric): string {
  const raw = m.labels && Object.keys(m.labels).length ? `${Object.values(m.labels).join('_')}_${m.name}` : m.name;
  const label = raw.replace(/[=']/g, '_');
  return /\s/.test(label) ? `'${label}'` : label;
}

/** A perfdata number: plain decimal ([-0-9.]), never an exponent; `U` (no unit) when it is unknown. */
function perfNumber(n: number): string {
  if (!Number.isFinite(n)) return 'U';
  const s = String(n);
  if (!/e/i.test(s)) return s;
  return Math.abs(n) >= 1 ? BigInt(Math.round(n)).toString() : n.toFixed(20).replace(/\.?0+$/, '');
}

/** `'label'=value[UOM];[warn];[crit];[min];[max]`, trailing empty fields left out (Nagios plugin guidelines). */
function perfData(m: Metric): string {
  const value = perfNumber(m.value);
  const fields = [
    `${perfLabel(m)}=${value}${value === 'U' ? '' : (m.unit ?? '')}`,
    m.warn === undefined ? '' : perfNumber(m.warn),
    m.crit === undefined ? '' : perfNumber(m.crit),
  ];
  return fields.join(';').replace(/;+$/, '');
}

/** `MFS VERIFY CRITICAL - ml2: hole 50..50 | lag_versions=0;100;1000` — what a Nagios plugin prints. */
export function nagiosLine(jobName: string, result: JobResult): string {
  const head = `MFS ${jobName.toUpperCase()} ${result.status} - ${result.summary.replace(/\|/g, '/')}`;
  const perf = (result.metrics ?? []).map(perfData).join(' ');
  return perf ? `${head} | ${perf}` : head;
}

function promLabels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

function promNumber(n: number): string {
  return Number.isNaN(n) ? 'NaN' : n === Infinity ? '+Inf' : n === -Infinity ? '-Inf' : String(n);
}

/**
 * node_exporter textfile format: last run time, status, duration, and every job metric, each with the
 * name, type and HELP of its entry in metrics.ts (a name not in it is a bug: refused here).
 */
export function prometheusText(jobName: string, result: JobResult, finishedAt: Date, durationMs: number): string {
  const job = { job: jobName };
  const out: string[] = [];
  const family = (name: string, samples: { labels: Record<string, string>; value: number }[]) => {
    const spec = metricSpec(name);
    // A programming error (every metric is declared in metrics.ts), caught by the unit tests.
    if (!spec)
      throw new Error(`metric ${JSON.stringify(name)} of job ${jobName} is not declared in lib/core/metrics.ts`);
    const full = METRIC_PREFIX + name;
    out.push(`# HELP ${full} ${spec.help}`, `# TYPE ${full} ${spec.type}`);
    for (const s of samples) out.push(`${full}${promLabels(s.labels)} ${promNumber(s.value)}`);
  };
  family('last_run_timestamp_seconds', [{ labels: job, value: finishedAt.getTime() / 1000 }]);
  family('last_status', [{ labels: job, value: exitCodeOf(result.status) }]);
  family('last_duration_seconds', [{ labels: job, value: durationMs / 1000 }]);
  const byName = new Map<string, Metric[]>();
  for (const m of result.metrics ?? []) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  for (const [name, metrics] of byName)
    family(
      name,
      metrics.map((m) => ({ labels: { ...job, ...m.labels }, value: m.value })),
    );
  return out.join('\n') + '\n';
}

export async function writePrometheusTextfile(
  dir: string,
  jobName: string,
  result: JobResult,
  finishedAt: Date,
  durationMs: number,
): Promise<string> {
  const file = path.join(dir, `mfs_jobs_${jobName.replace(/-/g, '_')}.prom`);
  // node_exporter reads as another user: world-readable, like any textfile collector file.
  await writeFileAtomic(file, prometheusText(jobName, result, finishedAt, durationMs), 0o644);
  return file;
}

export interface JsonReport {
  job: string;
  status: Status;
  exitCode: number;
  summary: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  details: Record<string, unknown>;
  metrics: Metric[];
  lines: string[];
}

/** What `run` prints: the report as JSON, or the Nagios line and its detail lines. */
export function formatReport(report: JsonReport, json: boolean): string {
  return json
    ? JSON.stringify(report, null, 2) + '\n'
    : [nagiosLine(report.job, report), ...report.lines.map((l) => `  ${l}`)].join('\n') + '\n';
}
