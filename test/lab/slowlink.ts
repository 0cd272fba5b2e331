import net from 'node:net';

/**
 * A TCP proxy on loopback that throttles server→client bytes: a slow WAN link between mfs-jobs and
 * an sshd, so a test can act while a transfer is under way (tc/netem is not available here).
 */
export class SlowLink {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }, bytesPerSecond: number, listenHost = '127.0.0.1'): Promise<SlowLink> {
    const server = net.createServer();
    const link = await new Promise<SlowLink>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, listenHost, () => {
        const addr = server.address();
        resolve(new SlowLink(server, typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    server.on('connection', (client) => link.relay(client, target, bytesPerSecond));
    return link;
  }

  private relay(client: net.Socket, target: { host: string; port: number }, bytesPerSecond: number): void {
    const upstream = net.connect(target);
    this.sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    // Downstream in small slices, each followed by the pause its size costs at the given rate.
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause();
      const send = (offset: number) => {
        if (client.destroyed) return;
        const slice = chunk.subarray(offset, offset + 8192);
        client.write(slice);
        const next = offset + slice.length;
        setTimeout(() => (next < chunk.length ? send(next) : upstream.resume()), (slice.length / bytesPerSecond) * 1000);
      };
      send(0);
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
