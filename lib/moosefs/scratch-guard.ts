import { execCapture } from '../core/exec.js';
import { processAlive } from '../core/lock.js';

/** Tables of this kind are named `mfs_jobs_drill_<pid>`: the drill that made it, to clear after a kill -9. */
export const GUARD_TABLE_PREFIX = 'mfs_jobs_drill_';

/**
 * The nft script for one scratch master: on this machine's output hook, a TCP SYN to a loopback
 * address on one of `ports` from a socket of any other user than `uid` is answered with a reset.
 * Pure, for the unit test.
 */
export function guardTableScript(table: string, ports: readonly number[], uid: number): string {
  return [
    `table inet ${table} {`,
    '  chain output {',
    '    type filter hook output priority 0; policy accept;',
    `    ip daddr 127.0.0.0/8 tcp dport { ${ports.join(', ')} } tcp flags & (syn | ack) == syn meta skuid != ${uid} reject with tcp reset`,
    '  }',
    '}',
    '',
  ].join('\n');
}

async function nft(args: string[]): Promise<{ ok: boolean; why: string; stdout: string }> {
  const res = await execCapture('nft', args, { timeoutMs: 5_000 }).catch((err: Error) => ({ code: -1, stderr: err.message, stdout: '' }));
  return { ok: res.code === 0, why: (res.stderr || res.stdout).trim().split('\n')[0] || `exit ${res.code}`, stdout: res.stdout };
}

/**
 * MooseFS 1.5 reads no exports: any local process that reaches a 1.5 scratch master's client port
 * may mount the restored namespace while a drill runs. This keeps every other user out of the
 * scratch master's ports with an nftables table of the drill's own (the user running the drill
 * still asks it over the client protocol), removed when the scratch master has stopped.
 */
export class ScratchGuard {
  private constructor(readonly table: string) {}

  /** The guard, or why there is none (no nft, not allowed to change the ruleset). */
  static async install(ports: readonly number[], uid = process.getuid?.() ?? 0): Promise<ScratchGuard | { failed: string }> {
    const table = `${GUARD_TABLE_PREFIX}${process.pid}`;
    await nft(['delete', 'table', 'inet', table]);
    const made = await nft([guardTableScript(table, ports, uid)]);
    return made.ok ? new ScratchGuard(table) : { failed: made.why };
  }

  async remove(): Promise<void> {
    await nft(['delete', 'table', 'inet', this.table]);
  }

  /** Tables left by drills that were killed (their PID is gone): removed; their names returned. */
  static async clearStale(): Promise<string[]> {
    const listed = await nft(['list', 'tables']);
    if (!listed.ok) return [];
    const cleared: string[] = [];
    for (const m of listed.stdout.matchAll(new RegExp(`^table inet (${GUARD_TABLE_PREFIX}(\\d+))$`, 'gm'))) {
      if (Number(m[2]) === process.pid || processAlive(Number(m[2]))) continue;
      if ((await nft(['delete', 'table', 'inet', m[1]!])).ok) cleared.push(m[1]!);
    }
    return cleared;
  }
}
