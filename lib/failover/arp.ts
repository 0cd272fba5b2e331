import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { execCapture } from '../core/exec.js';

/**
 * Is a host on our own link alive at all? A live machine's kernel answers an ARP request within a
 * millisecond, whatever its processes are doing; a machine that is down, or whose link is, never does.
 * So "no reply to several requests within a few hundred milliseconds" is a positive sign of a dead host,
 * where a TCP connect that gets no answer only says "not yet" until its timeout. Only for addresses on a
 * directly connected network (no gateway): beyond a router, ARP says nothing about the host.
 */
export type ArpAnswer =
  | { state: 'reply'; ms: number; dev: string }
  | { state: 'silent'; ms: number; dev: string; probes: number }
  | { state: 'unavailable'; why: string };

export interface ArpOptions {
  /** How long to wait for any reply. */
  windowMs: number;
  /** Requests sent, spread over the first half of the window (one lost packet must not decide). */
  probes: number;
  arping?: string;
  signal?: AbortSignal;
}

/** The interface `ip` reaches directly, or why ARP says nothing about it. */
async function directLink(ip: string, signal?: AbortSignal): Promise<{ dev: string } | { why: string }> {
  const res = await execCapture('ip', ['-j', 'route', 'get', ip], { timeoutMs: 2_000, signal }).catch((err: Error) => ({
    code: 1,
    stdout: '',
    stderr: err.message,
  }));
  if (res.code !== 0) return { why: `ip route get ${ip}: ${res.stderr.trim() || `exit ${res.code}`}` };
  let routes: { dev?: string; gateway?: string; type?: string }[];
  try {
    routes = JSON.parse(res.stdout) as typeof routes;
  } catch {
    return { why: `ip route get ${ip}: unreadable answer` };
  }
  const route = routes[0];
  if (!route?.dev) return { why: `no route to ${ip}` };
  if (route.gateway) return { why: `${ip} is behind gateway ${route.gateway}` };
  if (route.dev === 'lo' || route.type === 'local') return { why: `${ip} is a local address` };
  return { dev: route.dev };
}

export async function arpProbe(ip: string, o: ArpOptions): Promise<ArpAnswer> {
  const link = await directLink(ip, o.signal);
  if ('why' in link) return { state: 'unavailable', why: link.why };
  const { dev } = link;
  const started = Date.now();
  const children: ChildProcess[] = [];
  const timers: NodeJS.Timeout[] = [];
  return new Promise<ArpAnswer>((resolve) => {
    let settled = false;
    const finish = (answer: ArpAnswer) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      o.signal?.removeEventListener('abort', onAbort);
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      resolve(answer);
    };
    const onAbort = () => finish({ state: 'unavailable', why: 'aborted' });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    // iputils arping sends one request a second: each probe is its own arping, sent at its own moment.
    const send = () => {
      if (settled) return;
      const child = spawn(o.arping ?? 'arping', ['-f', '-c', '1', '-w', '1', '-I', dev, ip], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        if (/reply from/i.test(out)) finish({ state: 'reply', ms: Date.now() - started, dev });
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString('latin1')).slice(-500)));
      child.once('error', (e: NodeJS.ErrnoException) =>
        finish({
          state: 'unavailable',
          why: e.code === 'ENOENT' ? `${o.arping ?? 'arping'} not installed (Debian: iputils-arping)` : e.message,
        }),
      );
      // Exit 2: arping itself failed (no permission for a raw socket, no such device): no verdict from it.
      child.once('exit', (code) => {
        if (code === 2) finish({ state: 'unavailable', why: `arping: ${err.trim().split('\n')[0] || 'exit 2'}` });
      });
    };
    const probes = Math.max(1, o.probes);
    for (let i = 0; i < probes; i++) timers.push(setTimeout(send, Math.round((i * o.windowMs) / 2 / probes)));
    timers.push(setTimeout(() => finish({ state: 'silent', ms: Date.now() - started, dev, probes }), o.windowMs));
  });
}

/**
 * Tell the link that `vip` lives here now: one gratuitous ARP (`arping -U`), which points every
 * neighbour's ARP cache at this host at once. ucarp sends its own only after its up-script has returned
 * (and keepalived at its transition): with a synchronous up-script the clients' connects go on to the dead
 * master's MAC until promote's process has ended, and a connect already under way gets through only at its
 * next SYN retransmission (1 s apart at first, then 2, 4, 8 s): a 1.6.4 mount's first write came a whole
 * retransmission later when the announcement missed one by 20 ms (docs/generations.md). Sent once the
 * promoted master serves and the VIP is confirmed held here, so it announces nothing ucarp would not.
 * Not waited for beyond its start (arping lingers a second after sending).
 */
export function announceVip(vip: string, arping = 'arping'): Promise<{ dev: string } | { why: string }> {
  if (vip.includes(':')) return Promise.resolve({ why: `${vip} is IPv6 (arping announces IPv4 addresses)` });
  const want = vip.toLowerCase();
  const dev = Object.entries(os.networkInterfaces()).find(([, list]) =>
    (list ?? []).some((a) => a.address.toLowerCase() === want),
  )?.[0];
  // A labelled address ("eth0:vip") is sent from its device.
  if (!dev) return Promise.resolve({ why: `${vip} is not on an interface that is up here` });
  const device = dev.split(':')[0]!;
  return new Promise((resolve) => {
    const child = spawn(arping, ['-U', '-c', '1', '-I', device, vip], { stdio: 'ignore' });
    child.once('spawn', () => {
      child.unref();
      resolve({ dev: device });
    });
    child.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ why: e.code === 'ENOENT' ? `${arping} not installed (Debian: iputils-arping)` : e.message }),
    );
  });
}
