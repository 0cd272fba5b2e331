import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../core/exec.js';
import { ProcessError } from '../core/errors.js';
import { processAlive } from '../core/lock.js';
import { masterInfo, type MasterInfo } from './mfscli.js';

/** `KEY = VALUE` lines of an mfsmaster.cfg (comments and blanks skipped). */
export async function readMfsConfig(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ProcessError(file, `cannot read MooseFS config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_]+)\s*=\s*(.*?)\s*$/.exec(line.replace(/#.*$/, ''));
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export function mfsConfigText(values: Record<string, string | number>): string {
  return Object.entries(values).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

/** PID of the mfsmaster that holds DATA_PATH's `.mfsmaster.lock`, if it is alive. */
export async function runningMasterPid(dataPath: string): Promise<number | undefined> {
  const text = await fs.readFile(path.join(dataPath, '.mfsmaster.lock'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
}

/** The line of mfsmaster's output that says why it failed (e.g. "hole in change files …"). */
export function mfsmasterErrorLine(output: string): string {
  const lines = output.split('\n').map((l) => l.replace(/^mfsmaster\[\d+\]: /, '').trim()).filter(Boolean);
  const telling = [/hole in change files/, /can't find valid metadata/, /different id number/, /version mismatch/, /garbage at the end/, /wrong header/, /can't find metadata/, /EADDRINUSE|can't listen/, /error applying changelogs/, /lock/];
  for (const re of telling) {
    const hit = lines.find((l) => re.test(l));
    if (hit) return hit;
  }
  return lines.filter((l) => !/^(open files limit|working directory|initializing|exports file|topology file|loading metadata)/.test(l)).pop() ?? 'no output';
}

export interface StartResult {
  code: number | null;
  output: string;
  durationMs: number;
}

/**
 * `mfsmaster -c CFG [-a] start`: daemonises and returns once the master initialised (exit 0) or
 * failed (exit 1, reason in the output). `-a` restores from the newest image and every changelog
 * in DATA_PATH — the only safe way to start a promoted or restored master.
 */
export async function startMaster(o: { configFile: string; bin?: string; autoRestore: boolean; timeoutMs?: number; signal?: AbortSignal }): Promise<StartResult> {
  const started = Date.now();
  const res = await execCapture(o.bin ?? 'mfsmaster', ['-c', o.configFile, ...(o.autoRestore ? ['-a'] : []), 'start'], {
    timeoutMs: o.timeoutMs ?? 600_000,
    signal: o.signal,
  });
  return { code: res.code, output: res.stdout + res.stderr, durationMs: Date.now() - started };
}

/** `mfsmaster -c CFG stop`: clean stop (writes metadata.mfs), waits for the process to go. */
export async function stopMaster(o: { configFile: string; bin?: string; timeoutMs?: number }): Promise<StartResult> {
  const started = Date.now();
  const res = await execCapture(o.bin ?? 'mfsmaster', ['-c', o.configFile, 'stop'], { timeoutMs: o.timeoutMs ?? 120_000 });
  return { code: res.code, output: res.stdout + res.stderr, durationMs: Date.now() - started };
}

/** Poll `mfscli -SIM` until the master serves (at `minVersion` or later when given). */
export async function waitServing(o: { host: string; port: number; bin?: string; minVersion?: number; timeoutMs?: number; signal?: AbortSignal }): Promise<MasterInfo> {
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (o.signal?.aborted) throw new ProcessError(`${o.host}:${o.port}`, 'aborted while waiting for the master to serve');
    try {
      const info = await masterInfo({ host: o.host, port: o.port, bin: o.bin, timeoutMs: 3000 });
      if (o.minVersion === undefined || info.metadataVersion >= o.minVersion) return info;
      last = `serving at version ${info.metadataVersion}, expected ${o.minVersion}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new ProcessError(`${o.host}:${o.port}`, `master ${o.host}:${o.port} not serving after ${o.timeoutMs ?? 60_000} ms: ${last}`);
}
