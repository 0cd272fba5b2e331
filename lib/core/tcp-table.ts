import { promises as fs } from 'node:fs';

/**
 * This machine's kernel TCP table (/proc/net/tcp, tcp6; this network namespace's): who listens, who is
 * connected. Read by the clients-back watch after a promotion, the standby's readiness check (its ports
 * free) and the drill's guard (down only once the scratch master's ports are closed).
 */
export interface Peer {
  localPort: number;
  remote: string;
}

/** Established connections in /proc/net/tcp{,6} text: local port and remote address of each. */
export function parseTcpTable(text: string): Peer[] {
  return parseTcpSockets(text)
    .filter((s) => s.state === 0x01) // ESTABLISHED
    .map(({ localPort, remote }) => ({ localPort, remote }));
}

/** Local ports in LISTEN state in /proc/net/tcp{,6} text. */
export function parseListeningPorts(text: string): number[] {
  return parseTcpSockets(text)
    .filter((s) => s.state === 0x0a) // LISTEN
    .map((s) => s.localPort);
}

/** A socket of /proc/net/tcp{,6} in any state (the kernel's numbers: 1 ESTABLISHED, 2 SYN_SENT, …). */
export interface TcpSocket {
  state: number;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Retransmissions of its unacknowledged segment (a SYN's: how often the connect was tried again). */
  retransmits: number;
}

/** Every socket in /proc/net/tcp{,6} text: the one parser of the table. */
export function parseTcpSockets(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [, localPort] = f[1]!.split(':');
    const [remoteHex, remotePort] = f[2]!.split(':');
    out.push({
      state: Number.parseInt(f[3]!, 16),
      localPort: Number.parseInt(localPort!, 16),
      remote: hexAddress(remoteHex!),
      remotePort: Number.parseInt(remotePort ?? '0', 16),
      retransmits: f[6] === undefined ? 0 : Number.parseInt(f[6], 16),
    });
  }
  return out;
}

export async function tcpTables(): Promise<string[]> {
  return Promise.all(
    ['/proc/net/tcp', '/proc/net/tcp6'].map((f) =>
      fs
        .readFile(f, 'latin1')
        .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? '' : Promise.reject(err))),
    ),
  );
}

/** Is anything on this machine (this network namespace) listening on one of `ports`? */
export async function listening(ports: readonly number[]): Promise<boolean> {
  const open = new Set((await tcpTables()).flatMap(parseListeningPorts));
  return ports.some((p) => open.has(p));
}

/** The kernel's hex address (host byte order per 32-bit word, little-endian here) as text. */
function hexAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) =>
    [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => Number.parseInt(b, 16)),
  );
  if (bytes.length === 4) return bytes.join('.');
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) as the IPv4 address; other IPv6 in full hex groups.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}
