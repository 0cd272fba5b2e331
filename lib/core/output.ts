import path from 'node:path';
import { writeFileAtomic } from './atomic.js';
import type { JobResult, Metric, Status } from './job.js';
import { exitCodeOf } from './job.js';

function perfLabel(m: Metric): string {
  const label = m.labels && Object.keys(m.labels).length ? `${Object.values(m.labels).join('_')}_${m.name}` : m.name;
  return /[\s=']/.test(label) ? `'${label.replace(/'/g, '')}'` : label;
}

/** `MFS VERIFY CRITICAL - ml2: hole 50..50 | lag_versions=0;100;1000` — what a Nagios plugin prints. */
export function nagiosLine(jobName: string, result: JobResult): string {
  const head = `MFS ${jobName.toUpperCase()} ${result.status} - ${result.summary}`;
  const perf = (result.metrics ?? [])
    .map((m) => `${perfLabel(m)}=${Number.isFinite(m.value) ? m.value : 'U'}${m.unit ?? ''};${m.warn ?? ''};${m.crit ?? ''}`.replace(/;+$/, ''))
    .join(' ');
  return perf ? `${head} | ${perf}` : head;
}

function promLabels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** node_exporter textfile format: last run time, status, duration, and every job metric. */
export function prometheusText(jobName: string, result: JobResult, finishedAt: Date, durationMs: number): string {
  const job = { job: jobName };
  const out: string[] = [];
  const gauge = (name: string, help: string, samples: { labels: Record<string, string>; value: number }[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const s of samples) out.push(`${name}${promLabels(s.labels)} ${Number.isFinite(s.value) ? s.value : 'NaN'}`);
  };
  gauge('mfs_jobs_last_run_timestamp_seconds', 'When the job last finished (unix time).', [{ labels: job, value: finishedAt.getTime() / 1000 }]);
  gauge('mfs_jobs_last_status', 'Last status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.', [{ labels: job, value: exitCodeOf(result.status) }]);
  gauge('mfs_jobs_last_duration_seconds', 'How long the last run took.', [{ labels: job, value: durationMs / 1000 }]);
  const byName = new Map<string, Metric[]>();
  for (const m of result.metrics ?? []) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  for (const [name, metrics] of byName) {
    const unitSuffix = metrics[0]?.unit === 's' && !name.endsWith('_seconds') ? '_seconds' : metrics[0]?.unit === 'B' && !name.endsWith('_bytes') ? '_bytes' : '';
    gauge(`mfs_jobs_${name.replace(/[^a-zA-Z0-9_]/g, '_')}${unitSuffix}`, metrics[0]?.help ?? name.replace(/_/g, ' '), metrics.map((m) => ({ labels: { ...job, ...m.labels }, value: m.value })));
  }
  return out.join('\n') + '\n';
}

export async function writePrometheusTextfile(dir: string, jobName: string, result: JobResult, finishedAt: Date, durationMs: number): Promise<string> {
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
  return json ? JSON.stringify(report, null, 2) + '\n' : [nagiosLine(report.job, report), ...report.lines.map((l) => `  ${l}`)].join('\n') + '\n';
}
