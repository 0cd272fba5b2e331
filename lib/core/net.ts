import { promises as fs } from 'node:fs';
import net from 'node:net';

/** Can we bind `host:port` right now? (A master on 0.0.0.0:port makes 127.0.0.1:port busy too.) */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function ephemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Listening ports are picked from here up to the start of the kernel's ephemeral range. */
const FIRST_LISTEN_PORT = 10_000;

/** First port of the kernel's ephemeral range (outgoing connections), 32768 when unreadable. */
async function ephemeralRangeStart(): Promise<number> {
  const text = await fs.readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '');
  const low = Number(text.trim().split(/\s+/)[0]);
  return Number.isInteger(low) && low > 0 ? low : 32_768;
}

/**
 * A free port for a server to listen on, picked below the kernel's ephemeral range: a port from bind(0)
 * lies inside that range, where any outgoing connection on this host can take it between the pick and
 * the server's own bind (mfsmaster then stops: "can't listen on …: EADDRINUSE"). Falls back to bind(0)
 * when no range is left below the ephemeral one.
 */
export async function listenPort(host: string): Promise<number> {
  const end = await ephemeralRangeStart();
  if (end - FIRST_LISTEN_PORT >= 1_000) {
    for (let i = 0; i < 50; i++) {
      const port = FIRST_LISTEN_PORT + Math.floor(Math.random() * (end - FIRST_LISTEN_PORT));
      if (await portIsFree(host, port)) return port;
    }
  }
  return ephemeralPort(host);
}
