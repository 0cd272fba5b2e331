import { lookup } from 'node:dns/promises';

/**
 * `mfscli -SMB` names a metalogger by the reverse lookup of its address ("localhost" for 127.0.0.1,
 * often a short host name), while the config names it as the operator wrote it. Both sides are
 * resolved to addresses and matched on those, or on the name itself.
 */

export interface NamedAddresses {
  host: string;
  addresses: string[];
}

export async function resolveAddresses(host: string): Promise<NamedAddresses> {
  const found = await lookup(host, { all: true }).catch(() => []);
  return { host, addresses: [...new Set(found.map((a) => a.address.replace(/^::ffff:/, '')))] };
}

function sameHost(a: NamedAddresses, b: NamedAddresses): boolean {
  const na = a.host.toLowerCase();
  const nb = b.host.toLowerCase();
  if (na === nb || na.split('.')[0] === nb || nb.split('.')[0] === na) return true;
  return a.addresses.some((x) => b.addresses.includes(x));
}

export interface ConnectedVerdict {
  /** true: listed; false: not listed; undefined: several configured at one address, fewer listed. */
  connected: Map<string, boolean | undefined>;
  /** One line per address where fewer metaloggers are listed than configured. */
  ambiguous: string[];
}

/** Which configured metaloggers the master lists as connected. */
export function matchConnected(
  metaloggers: readonly (NamedAddresses & { name: string })[],
  listed: readonly NamedAddresses[],
): ConnectedVerdict {
  const connected = new Map<string, boolean | undefined>();
  const ambiguous: string[] = [];
  const matches = new Map(
    metaloggers.map((m) => [m.name, listed.map((_, i) => i).filter((i) => sameHost(m, listed[i]!))]),
  );
  const done = new Set<string>();
  for (const m of metaloggers) {
    if (done.has(m.name)) continue;
    const mine = matches.get(m.name)!;
    if (mine.length === 0) {
      connected.set(m.name, false);
      continue;
    }
    // Metaloggers that share a listed entry cannot be told apart: count them as a group.
    const group = metaloggers.filter((o) => matches.get(o.name)!.some((i) => mine.includes(i)));
    const entries = new Set(group.flatMap((o) => matches.get(o.name)!));
    const enough = entries.size >= group.length;
    for (const o of group) {
      connected.set(o.name, enough ? true : undefined);
      done.add(o.name);
    }
    if (!enough) {
      const hosts = [...new Set([...entries].map((i) => listed[i]!.host))].join(', ');
      ambiguous.push(
        `master lists ${entries.size} metalogger${entries.size === 1 ? '' : 's'} at ${hosts} where ${group.length} are configured (${group.map((o) => o.name).join(', ')}): at least one is not connected`,
      );
    }
  }
  return { connected, ambiguous };
}
