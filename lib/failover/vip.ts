import os from 'node:os';
import { execCapture } from '../core/exec.js';
import { ProcessError } from '../core/errors.js';

/** Addresses in `ip -o addr` output, without prefix length ("10.0.0.100", "fe80::1"). */
export function addressesFromIpOutput(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    // "2: eth0    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0\       valid_lft forever ..."
    const m = /\sinet6?\s+([0-9a-fA-F.:]+)(?:\/\d+)?\s/.exec(line);
    if (m) out.push(m[1]!.toLowerCase());
  }
  return out;
}

/** Every address configured on this host's (this network namespace's) interfaces. */
export async function localAddresses(signal?: AbortSignal): Promise<string[]> {
  const res = await execCapture('ip', ['-o', 'addr', 'show'], { timeoutMs: 5_000, signal });
  if (res.code !== 0)
    throw new ProcessError(
      'ip -o addr',
      `ip -o addr show failed: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`,
    );
  return addressesFromIpOutput(res.stdout);
}

/**
 * Is the virtual IP on one of our interfaces right now? ucarp's up-script and keepalived add it;
 * a CARP/VRRP flap at boot can take it away again a moment later, so promote asks before and after.
 */
export async function vipHeld(vip: string, signal?: AbortSignal): Promise<boolean> {
  const want = vip.toLowerCase();
  // Node's own list (getifaddrs, no child process: a spawn is 20-45 ms of a loaded CPU, issue 24) holds only the
  // interfaces that are up and running, so an address found there is held; one not found is asked of `ip`.
  const up = Object.values(os.networkInterfaces()).flatMap((list) => list ?? []);
  if (up.some((a) => a.address.toLowerCase() === want)) return true;
  return (await localAddresses(signal)).includes(want);
}

/**
 * Take the virtual IP off this host's interfaces (each interface that has it, with its own prefix
 * length). After fencing found the old master alive — a partition: this standby stopped hearing its
 * adverts, but it still serves — a VIP left here would answer the clients' ARP beside the live master's,
 * and every client sent here would find no master. Returns the interfaces it was removed from.
 */
export async function releaseVip(vip: string, signal?: AbortSignal): Promise<string[]> {
  const res = await execCapture('ip', ['-o', 'addr', 'show'], { timeoutMs: 5_000, signal });
  if (res.code !== 0)
    throw new ProcessError(
      'ip -o addr',
      `ip -o addr show failed: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`,
    );
  const released: string[] = [];
  for (const line of res.stdout.split('\n')) {
    // "3: eth0    inet 10.77.0.100/24 scope global secondary eth0\ ..."
    const m = /^\d+:\s+(\S+?)(?:@\S+)?\s+inet6?\s+([0-9a-fA-F.:]+)\/(\d+)\s/.exec(line);
    if (!m || m[2]!.toLowerCase() !== vip.toLowerCase()) continue;
    const del = await execCapture('ip', ['addr', 'del', `${m[2]}/${m[3]}`, 'dev', m[1]!], { timeoutMs: 5_000, signal });
    if (del.code !== 0)
      throw new ProcessError(
        'ip addr del',
        `ip addr del ${m[2]}/${m[3]} dev ${m[1]}: ${(del.stderr || del.stdout).trim() || `exit ${del.code}`}`,
      );
    released.push(m[1]!);
  }
  return released;
}
