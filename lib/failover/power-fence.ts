import type { Config } from '../core/config.js';
import { describeError } from '../core/errors.js';
import { execCapture } from '../core/exec.js';
import type { FenceAnswer } from './fence.js';

/**
 * The power-fence hook (issue #25; Pacemaker's STONITH): `fence.command` (e.g. fence-agents'
 * `fence_ipmilan ...`, or any script) run with the old master's name when probing could not establish its
 * state. Exit 0 counts as fenced (the machine is off); anything else, or no answer in time, refuses.
 */

/** An answer that proves nothing: no TCP answer, and no ARP verdict that the host is down. */
export function stateUnknown(a: FenceAnswer): boolean {
  return a.reachability === 'unreachable' && a.arp?.state !== 'silent';
}

export interface PowerFenceResult {
  master: string;
  fenced: boolean;
  detail: string;
  ms: number;
}

/** Run the hook for each master whose state is unknown (none configured or none unknown: nothing run). */
export async function powerFence(
  config: Config,
  answers: readonly FenceAnswer[],
  signal?: AbortSignal,
): Promise<PowerFenceResult[]> {
  const hook = config.fence;
  if (!hook) return [];
  return Promise.all(
    answers.filter(stateUnknown).map(async (a): Promise<PowerFenceResult> => {
      const [bin, ...args] = hook.command as [string, ...string[]];
      const master = config.masters.find((m) => m.name === a.name);
      const started = Date.now();
      const env = { ...process.env, MFS_JOBS_FENCE_MASTER: a.name, MFS_JOBS_FENCE_HOST: master?.host ?? '' };
      try {
        const res = await execCapture(bin, [...args, a.name], { timeoutMs: hook.timeoutSeconds * 1000, signal, env });
        const out = (res.stderr || res.stdout).trim().split('\n').pop()?.slice(0, 200) ?? '';
        const ms = Date.now() - started;
        if (res.code === 0)
          return {
            master: a.name,
            fenced: true,
            detail: `fence.command fenced ${a.name}${out ? ` (${out})` : ''}`,
            ms,
          };
        const how = res.signal
          ? `killed by ${res.signal} (fence.timeoutSeconds ${hook.timeoutSeconds})`
          : `exit ${res.code}`;
        return {
          master: a.name,
          fenced: false,
          detail: `fence.command failed for ${a.name}: ${how}${out ? `: ${out}` : ''}`,
          ms,
        };
      } catch (err) {
        return {
          master: a.name,
          fenced: false,
          detail: `fence.command for ${a.name}: ${describeError(err)}`,
          ms: Date.now() - started,
        };
      }
    }),
  );
}
