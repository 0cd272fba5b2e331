import net from 'node:net';

/**
 * A userspace TCP proxy on loopback between mfs-jobs and a lab server, for link faults that `tc netem`
 * cannot give on these machines: added latency, a bandwidth cap, cutting every connection after
 * N bytes (sshd "dies" mid-transfer), and a link that goes silent after N bytes.
 */
export interface ProxyFaults {
  /** Delay added to each chunk in both directions, ms. */
  delayMs?: number;
  /** Bytes per second server → client (0 = unlimited). */
  bytesPerSecond?: number;
  /** Destroy the connection once this many bytes went server → client. */
  cutAfterBytes?: number;
  /**
   * Once this many bytes went server → client, forward nothing more either way but keep the
   * connection open: a link that goes silent (a cable pulled, a firewall dropping packets).
   */
  stallAfterBytes?: number;
}

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
    const started = Date.now();
    const relay = (from: net.Socket, to: net.Socket, downstream: boolean) => {
      from.on('data', (chunk: Buffer) => {
        from.pause();
        // A silent link: paused for good, nothing forwarded, nothing closed.
        if (stalled) return;
        let wait = this.faults.delayMs ?? 0;
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
          const bps = this.faults.bytesPerSecond ?? 0;
          if (bps > 0) wait = Math.max(wait, (sent / bps) * 1000 - (Date.now() - started));
        }
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk, () => from.resume());
        }, wait);
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
