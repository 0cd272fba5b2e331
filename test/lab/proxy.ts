import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Lab } from './cluster.js';

/**
 * A userspace TCP proxy on loopback between mfs-jobs and a lab server, for link faults at exact byte
 * counts (this kernel has no `tc netem`; the kernel's own slow and dead links, `tc tbf` and a link
 * going down in a namespace, are in test/faults/network-netns.test.ts): a slow WAN link (so a test can
 * act while a transfer is under way), added latency, cutting every connection after N bytes (sshd
 * "dies" mid-transfer), and a link that goes silent after N bytes.
 */
export interface ProxyFaults {
  /** Delay added to each chunk in both directions, ms. */
  delayMs?: number;
  /**
   * Bytes per second server → client (0 = unlimited): sent in slices of at most 8 KiB, each followed
   * by the pause its size costs at this rate.
   */
  bytesPerSecond?: number;
  /** Destroy the connection once this many bytes went server → client. */
  cutAfterBytes?: number;
  /**
   * Once this many bytes went server → client, forward nothing more either way but keep the
   * connection open: a link that goes silent (a cable pulled, a firewall dropping packets).
   */
  stallAfterBytes?: number;
}

const SLICE = 8192;

export class FaultProxy {
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    public faults: ProxyFaults,
  ) {}

  static async start(target: { host: string; port: number }, faults: ProxyFaults = {}): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = net.createServer((client) => proxy!.pipe(client, target));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
    const addr = server.address();
    proxy = new FaultProxy(server, typeof addr === 'object' && addr ? addr.port : 0, faults);
    return proxy;
  }

  private pipe(client: net.Socket, target: { host: string; port: number }): void {
    const upstream = net.connect(target);
    this.sockets.add(client).add(upstream);
    let sent = 0;
    let stalled = false;
    const relay = (from: net.Socket, to: net.Socket, downstream: boolean) => {
      from.on('data', (chunk: Buffer) => {
        from.pause();
        // A silent link: paused for good, nothing forwarded, nothing closed.
        if (stalled) return;
        if (downstream) {
          sent += chunk.length;
          const stallAt = this.faults.stallAfterBytes;
          if (stallAt !== undefined && sent > stallAt) {
            stalled = true;
            return;
          }
          const cap = this.faults.cutAfterBytes;
          if (cap !== undefined && sent > cap) {
            client.destroy();
            upstream.destroy();
            return;
          }
        }
        const bps = downstream ? (this.faults.bytesPerSecond ?? 0) : 0;
        const forward = () => {
          if (bps > 0) throttled(chunk, from, to, bps);
          else if (!to.destroyed) to.write(chunk, () => from.resume());
        };
        const delay = this.faults.delayMs ?? 0;
        if (delay > 0) setTimeout(forward, delay);
        else forward();
      });
    };
    relay(client, upstream, false);
    relay(upstream, client, true);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  /** Cut every open connection now (the link dies). */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Write `chunk` to `to` in slices, each followed by the pause its size costs at `bytesPerSecond`; then resume `from`. */
function throttled(chunk: Buffer, from: net.Socket, to: net.Socket, bytesPerSecond: number): void {
  const send = (offset: number) => {
    if (to.destroyed) return;
    const slice = chunk.subarray(offset, offset + SLICE);
    to.write(slice);
    const next = offset + slice.length;
    setTimeout(() => (next < chunk.length ? send(next) : from.resume()), (slice.length / bytesPerSecond) * 1000);
  };
  send(0);
}

/** known_hosts naming the lab sshd's host key at a proxy's port (the proxy is what mfs-jobs connects to). */
export async function knownHostsAt(lab: Lab, port: number, name: string): Promise<string> {
  const hostPub = (await fs.readFile(`${lab.sshd!.hostKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
  const file = path.join(lab.dir, `known_hosts.${name}`);
  await fs.writeFile(file, `[127.0.0.1]:${port} ${hostPub}\n`, { mode: 0o600 });
  return file;
}
