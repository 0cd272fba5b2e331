import { execCapture } from '../core/exec.js';
import { processAlive } from '../core/lock.js';
import { listening } from '../core/tcp-table.js';

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
  const res = await execCapture('nft', args, { timeoutMs: 5_000 }).catch((err: Error) => ({
    code: -1,
    stderr: err.message,
    stdout: '',
  }));
  return {
    ok: res.code === 0,
    why: (res.stderr || res.stdout).trim().split('\n')[0] || `exit ${res.code}`,
    stdout: res.stdout,
  };
}

/**
 * A drill's scratch master serves the restored metadata on loopback, and any local process reaches
 * loopback: its metalogger port hands the image to whoever asks (ANTOMA_DOWNLOAD_START needs no
 * registration, and no export or password guards it), and 1.5 reads no exports at all. So on every
 * generation the drill keeps every other user out of the scratch master's ports with an nftables table
 * of its own (the drill's user, root, still asks it over the client protocol), put up before the
 * master listens and removed once it has stopped.
 *
 * Why nftables and not a network namespace of the scratch master's own: both need root, but a
 * namespace moves every conversation of the drill with its master (mfscli, the protocol client in this
 * process, which cannot enter a namespace per socket, mfsmaster's start and stop) behind nsenter or a
 * helper process, on every step of every generation; the table is one rule in front of the same
 * loopback ports, and it was already proven against real attackers for 1.5. What it lets through is
 * the drill's own uid: another root process could connect, and root is trusted anyway.
 */
export class ScratchGuard {
  private constructor(
    readonly table: string,
    private readonly ports: readonly number[],
  ) {}

  /** The guard, or why there is none (no nft, not allowed to change the ruleset). */
  static async install(
    ports: readonly number[],
    uid = process.getuid?.() ?? 0,
  ): Promise<ScratchGuard | { failed: string }> {
    const table = `${GUARD_TABLE_PREFIX}${process.pid}`;
    // One nft run, one transaction: a table of this name (a reused PID's) emptied, then made afresh.
    const script = `add table inet ${table}\ndelete table inet ${table}\n${guardTableScript(table, ports, uid)}`;
    const made = await nft([script]);
    return made.ok ? new ScratchGuard(table, ports) : { failed: made.why };
  }

  /**
   * Down once nothing listens on its ports any more (at most `waitMs`): a master's sockets outlive the
   * moment its PID looks gone. Returns whether they were closed by then.
   */
  async remove(waitMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    let open = await listening(this.ports);
    while (open && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      open = await listening(this.ports);
    }
    await nft(['delete', 'table', 'inet', this.table]);
    return !open;
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
