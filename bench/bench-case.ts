import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { findJob } from '../jobs/index.js';
import type { JsonReport } from '../lib/core/output.js';
import { MFS_JOBS_BIN } from '../test/helpers/cli.js';
import type { LabSshd } from '../test/lab/sshd.js';
import { median, summarize, timeCommand, type Command, type Measured, type Sample, type Side } from './measure.js';

export type { Side };
import { profileSide, type ProfileSummary } from './profile.js';

/** What every case gets from the runner. */
export interface BenchContext {
  quick: boolean;
  /** Measured repetitions per side (a warm-up run comes first and is not counted). */
  reps: number;
  /** false: no warm-up round in any case (`--no-warmup`). */
  warmup?: boolean;
  /** Cache of generated metadata (kept between runs). */
  workDir: string;
  /** Scratch space of this run (removed at the end). */
  runDir: string;
  /** The loopback sshd every transfer goes through, with its client key and known_hosts. */
  sshd: LabSshd;
  /** Profile the mfs-jobs side (`node --cpu-prof`, one extra run): of every case, of misses only, or never. */
  profile: 'all' | 'misses' | 'none';
  profileDir: string;
  log(message: string): void;
}

export interface CaseResult {
  id: string;
  title: string;
  /** `measured`; `not available` (job not merged yet); `failed` (a run did not succeed: no figure). */
  status: 'measured' | 'not available' | 'failed';
  reason?: string;
  subject?: Measured;
  baseline?: Measured;
  /** Context, not the target: e.g. scp plus the checksum and fsync backup does. */
  otherBaselines?: Measured[];
  /** subject median / baseline median. */
  ratio?: number;
  target: { text: string; maxRatio?: number; maxSeconds?: number; maxRssMb?: number };
  met?: boolean;
  /** Other figures worth keeping (RTO reported by the job, bytes, lines …). */
  figures: Record<string, number | string>;
  notes: string[];
  /** Where the mfs-jobs side spends its time (see bench/profile.ts). */
  profile?: ProfileSummary;
}

export const mfsJobs = (...args: string[]): Command => ({ cmd: MFS_JOBS_BIN, args });

export const jobAvailable = (name: string): boolean => findJob(name) !== undefined;

/** An mfs-jobs run must end OK (0) or WARNING (1); anything else is a failed run, with its first line. */
export function expectJobSuccess(sample: Sample): void {
  if (sample.code === 0 || sample.code === 1) return;
  const line = (sample.stdout.trim().split('\n')[0] || sample.stderr.trim().split('\n').pop() || '').slice(0, 300);
  throw new Error(`exit ${sample.code}: ${line}`);
}

/** The `--json` report of an mfs-jobs run that ended OK or WARNING; throws otherwise. */
export function jobReport(sample: Sample): JsonReport {
  expectJobSuccess(sample);
  try {
    return JSON.parse(sample.stdout) as JsonReport;
  } catch {
    throw new Error(`not a JSON report: ${sample.stdout.slice(0, 200)}`);
  }
}

/** Whether compare() runs (and drops) a warm-up round: the case's wish, unless the run said `--no-warmup`. */
export const warmedUp = (ctx: BenchContext, wanted = true): boolean => wanted && ctx.warmup !== false;

/** Per-sample numbers (e.g. a job's own timings) → their medians, for `figures`. */
export class FigureSamples {
  private readonly values = new Map<string, number[]>();
  add(figures: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(figures))
      if (typeof v === 'number') this.values.set(k, [...(this.values.get(k) ?? []), v]);
  }
  /** Medians, dropping the first `skip` samples (the warm-up round). */
  medians(skip: number, unit = (v: number) => v): Record<string, number> {
    return Object.fromEntries(
      [...this.values].map(([k, v]) => [k, Math.round(unit(median(v.slice(skip))) * 1000) / 1000]),
    );
  }
}

export function metricValue(report: JsonReport, name: string): number | undefined {
  return report.metrics.find((m) => m.name === name)?.value;
}

export function expectExitZero(sample: Sample): void {
  if (sample.code !== 0)
    throw new Error(`exit ${sample.code}: ${(sample.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}`);
}

async function sampleOnce(side: Side): Promise<Sample> {
  await side.prepare?.();
  try {
    const sample = await timeCommand(side.command, { rss: side.rss });
    await side.check?.(sample);
    return sample;
  } finally {
    await side.cleanup?.();
  }
}

/**
 * Run the sides alternately (A B A B …) so that drift in the machine's load hits both alike;
 * the first round is a warm-up (page cache, JIT) and is dropped.
 */
export async function compare(
  ctx: BenchContext,
  sides: Side[],
  options: { warmup?: boolean } = {},
): Promise<Measured[]> {
  const samples: Sample[][] = sides.map(() => []);
  const warm = warmedUp(ctx, options.warmup);
  const rounds = ctx.reps + (warm ? 1 : 0);
  for (let round = 0; round < rounds; round++) {
    for (const [i, side] of sides.entries()) {
      const sample = await sampleOnce(side);
      if (round > 0 || !warm) samples[i]!.push(sample);
    }
  }
  return sides.map((side, i) => summarize(side.label, describeCommand(side.command), samples[i]!));
}

function describeCommand(c: Command): string {
  return [c.cmd === MFS_JOBS_BIN ? 'mfs-jobs' : path.basename(c.cmd), ...c.args].join(' ');
}

/** Ratio and verdict for a subject measured against a baseline. */
export function verdict(result: CaseResult): CaseResult {
  const { subject, baseline, target } = result;
  if (!subject) return result;
  const ratio = baseline ? subject.medianSeconds / baseline.medianSeconds : undefined;
  const checks: boolean[] = [];
  if (target.maxRatio !== undefined && ratio !== undefined) checks.push(ratio <= target.maxRatio);
  if (target.maxSeconds !== undefined) checks.push(subject.medianSeconds <= target.maxSeconds);
  if (target.maxRssMb !== undefined && subject.maxRssMb !== undefined) checks.push(subject.maxRssMb <= target.maxRssMb);
  return { ...result, ratio, met: checks.length ? checks.every(Boolean) : undefined };
}

/** Verdict, then a profile of the mfs-jobs side when asked for (always for a missed target by default). */
export async function finish(ctx: BenchContext, result: CaseResult, side: Side): Promise<CaseResult> {
  const judged = verdict(result);
  const wanted = ctx.profile === 'all' || (ctx.profile === 'misses' && judged.met === false);
  if (!wanted) return judged;
  ctx.log(`profiling ${side.label} …`);
  try {
    return { ...judged, profile: await profileSide(side, ctx.profileDir) };
  } catch (err) {
    return { ...judged, notes: [...judged.notes, `profile failed: ${(err as Error).message}`] };
  }
}

/** Write an mfs-jobs config (YAML, 0600) for a case; `stateDir` inside the run dir. */
export async function writeJobsConfig(ctx: BenchContext, name: string, doc: Record<string, unknown>): Promise<string> {
  const file = path.join(ctx.runDir, `${name}.yaml`);
  const full = {
    timezone: 'UTC',
    stateDir: path.join(ctx.runDir, `${name}-state`),
    log: { level: 'warn' },
    ssh: {
      port: ctx.sshd.port,
      user: 'root',
      privateKey: ctx.sshd.clientKey,
      knownHosts: ctx.sshd.knownHosts,
      connectTimeoutSeconds: 10,
    },
    ...doc,
  };
  await fs.writeFile(file, YAML.stringify(full), { mode: 0o600 });
  return file;
}

/** OpenSSH client options that make scp/ssh use the lab's key and verify its host key, no prompts. */
export function sshClientOptions(ctx: BenchContext): string[] {
  return [
    '-i',
    ctx.sshd.clientKey,
    '-o',
    `UserKnownHostsFile=${ctx.sshd.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
  ];
}

/** A case whose mfs-jobs side cannot run yet: the baseline is still measured, the subject is not faked. */
export function notAvailable(result: Omit<CaseResult, 'status' | 'reason'>, job: string): CaseResult {
  return { ...result, status: 'not available', reason: `job ${job} not merged` };
}

export function failed(result: Omit<CaseResult, 'status' | 'reason'>, err: unknown): CaseResult {
  return { ...result, status: 'failed', reason: (err as Error).message.split('\n')[0] };
}

/** The off-site SFTP copy of a case's store, on the bench's loopback sshd. */
export function benchSftpCopy(ctx: BenchContext, dir: string): Record<string, unknown> {
  const { host, port, clientKey, knownHosts } = ctx.sshd;
  return { name: 'offsite', type: 'sftp', host, port, user: 'root', identityFile: clientKey, knownHosts, path: dir };
}
