import { execCapture } from '../core/exec.js';
import { ProcessError } from '../core/errors.js';

export interface MasterInfo {
  /** Address the master reports for itself. */
  ip: string;
  /** MooseFS software version, e.g. 3.0.117. */
  softwareVersion: string;
  /** The metadata version: the next change the master will write. */
  metadataVersion: number;
  /** State column (`-` for a running 3.0 master, `DEAD` while it cannot be reached, leader/follower in Pro). */
  state: string;
}

export interface CliTarget {
  host: string;
  port: number;
  bin?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const SEP = '\t';

function num(field: string | undefined): number {
  // mfscli prints big numbers with spaces as thousands separators ("1 000 103").
  const cleaned = (field ?? '').replace(/\s+/g, '');
  return /^\d+$/.test(cleaned) ? Number(cleaned) : NaN;
}

async function mfscli(target: CliTarget, section: string): Promise<string> {
  const bin = target.bin ?? 'mfscli';
  const where = `${target.host}:${target.port}`;
  const res = await execCapture(bin, ['-H', target.host, '-P', String(target.port), section, '-p', '-s', SEP], {
    timeoutMs: target.timeoutMs ?? 10_000,
    signal: target.signal,
  });
  if (res.signal === 'SIGKILL') throw new ProcessError(where, `master ${where}: mfscli ${section} timed out`);
  const text = res.stdout + res.stderr;
  if (res.code !== 0 || /can't connect|connection refused|timed out/i.test(text)) {
    const reason = text.trim().split('\n').filter(Boolean).pop() ?? `exit ${res.code}`;
    throw new ProcessError(where, `master ${where} does not answer (mfscli ${section}: ${reason})`);
  }
  return res.stdout;
}

/** `mfscli -SIM`: the master's own line with its metadata version. */
export function parseMasterInfo(output: string, where: string): MasterInfo {
  const line = output.split('\n').find((l) => l.startsWith('metadata servers:'));
  const f = line?.split(SEP).map((s) => s.trim());
  // metadata servers: IP VERSION STATE LOCALTIME METAVERSION ... METAID
  if (!f || f.length < 6 || Number.isNaN(num(f[5]))) {
    throw new ProcessError(
      where,
      `master ${where}: unexpected mfscli -SIM output: ${JSON.stringify(output.slice(0, 200))}`,
    );
  }
  // A master that is still loading (or gone) is listed as DEAD with version 0.
  if (/Working master servers not found/.test(output) || f[3] === 'DEAD') {
    throw new ProcessError(where, `master ${where} does not answer (mfscli -SIM: no working master server)`);
  }
  return { ip: f[1]!, softwareVersion: f[2]!, metadataVersion: num(f[5]), state: f[3]! };
}

export async function masterInfo(target: CliTarget): Promise<MasterInfo> {
  return parseMasterInfo(await mfscli(target, '-SIM'), `${target.host}:${target.port}`);
}

/** `mfscli -SMB`: metaloggers the master sees connected (host and version; no lag figure). */
export async function connectedMetaloggers(target: CliTarget): Promise<{ host: string; version: string }[]> {
  const out = await mfscli(target, '-SMB');
  return out
    .split('\n')
    .filter((l) => l.startsWith('metadata backup loggers:'))
    .map((l) => l.split(SEP).map((s) => s.trim()))
    .map((f) => ({ host: f[1] ?? '', version: f[2] ?? '' }));
}

/** `mfscli -SIG`: general info as a key → value map ("files", "directories", "last save status", …). */
export async function generalInfo(target: CliTarget): Promise<Record<string, string>> {
  const out = await mfscli(target, '-SIG');
  const info: Record<string, string> = {};
  for (const l of out.split('\n')) {
    const f = l.split(SEP);
    if (f[0]?.startsWith('master info:') && f.length >= 3) info[f[1]!.trim()] = f.slice(2).join(' ').trim();
  }
  return info;
}

export function infoNumber(info: Record<string, string>, key: string): number | undefined {
  const n = num(info[key]);
  return Number.isNaN(n) ? undefined : n;
}
