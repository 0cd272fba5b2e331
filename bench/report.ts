import { execSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import type { CaseResult } from './bench-case.js';

export interface Machine {
  nproc: number;
  cpu: string;
  memoryGb: number;
  disk: string;
  kernel: string;
  node: string;
  moosefs: string;
  openssh: string;
}

function quiet(cmd: string): string {
  try {
    return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return ((err as { stderr?: string }).stderr ?? '').trim();
  }
}

export function describeMachine(workDir: string): Machine {
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    disk: quiet(`df -hT ${workDir} | tail -1 | awk '{print $1" "$2", "$3" total, "$5" free"}'`),
    kernel: os.release(),
    node: process.version,
    moosefs: quiet(`dpkg-query -W -f='\${Version}' moosefs-master`),
    openssh: quiet('ssh -V 2>&1').split(',')[0] ?? '',
  };
}

export const loadavg = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const s = (x: number | undefined): string =>
  x === undefined || Number.isNaN(x) ? '–' : x < 10 ? x.toFixed(3) : x.toFixed(1);
const mb = (x: number | undefined): string => (x === undefined ? '–' : `${Math.round(x)} MB`);

function metCell(r: CaseResult): string {
  if (r.status !== 'measured') return '–';
  if (r.met === undefined) return 'n/a';
  return r.met ? 'yes' : '**no**';
}

/** The results as the markdown table that goes into BENCHMARKS.md. */
export function markdownTable(results: CaseResult[]): string {
  const head = ['case', 'mfs-jobs', 'median s', 'baseline', 'median s', 'ratio', 'peak RSS mfs-jobs', 'target', 'met'];
  const rows = results.map((r) => {
    const subject = r.status === 'measured' ? `\`${r.subject?.label}\`` : `${r.status} (${r.reason})`;
    return [
      r.title,
      subject,
      s(r.subject?.medianSeconds),
      r.baseline ? `\`${r.baseline.label}\`` : '–',
      s(r.baseline?.medianSeconds),
      r.ratio === undefined ? '–' : `${r.ratio.toFixed(2)}×`,
      mb(r.subject?.maxRssMb),
      r.target.text,
      metCell(r),
    ];
  });
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Extra figures and notes per case, under the table. */
export function markdownNotes(results: CaseResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const figures = Object.entries(r.figures).map(
      ([k, v]) => `${k} ${typeof v !== 'number' ? v : Number.isInteger(v) ? String(v) : s(v)}`,
    );
    const profile = r.profile
      ? [
          `profile (${r.profile.file}): ${r.profile.byModule
            .slice(0, 5)
            .map((m) => `${m.where} ${m.percent}%`)
            .join(', ')}`,
        ]
      : [];
    const others = (r.otherBaselines ?? []).map(
      (b) =>
        `vs \`${b.label}\` (${s(b.medianSeconds)} s): ${r.subject ? `${(r.subject.medianSeconds / b.medianSeconds).toFixed(2)}×` : 'no mfs-jobs figure'}`,
    );
    const parts = [...others, ...figures, ...r.notes, ...profile];
    if (parts.length) out.push(`- ${r.title}: ${parts.join('; ')}`);
  }
  return out.join('\n');
}

export async function writeResults(file: string, document: unknown): Promise<void> {
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(document, null, 2) + '\n');
  await fs.rename(tmp, file);
}
