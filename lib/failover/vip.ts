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
  if (res.code !== 0) throw new ProcessError('ip -o addr', `ip -o addr show failed: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`);
  return addressesFromIpOutput(res.stdout);
}

/**
 * Is the virtual IP on one of our interfaces right now? ucarp's up-script and keepalived add it;
 * a CARP/VRRP flap at boot can take it away again a moment later, so promote asks before and after.
 */
export async function vipHeld(vip: string, signal?: AbortSignal): Promise<boolean> {
  return (await localAddresses(signal)).includes(vip.toLowerCase());
}
