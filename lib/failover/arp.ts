import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { execCapture } from '../core/exec.js';
import { trustedProgram } from '../core/trusted-path.js';

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
  /** arping's absolute path instead of the one found in PATH (still checked: lib/core/trusted-path.ts). */
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

let arpingFound: Promise<{ path: string } | { why: string }> | undefined;

/**
 * arping's absolute path, found once per process as zstd's is (lib/store/stored-file.ts): the first in PATH
 * (or $MFS_JOBS_ARPING, absolute), and only if no user but root could have put it there or changed it
 * (lib/core/trusted-path.ts). It runs as root with a raw socket in every promotion: an arping planted in a
 * directory of PATH another user writes would run too, and could answer the fence "silent" for a live master.
 * A refusal or a missing arping is asked again next time (it may have been installed meanwhile).
 */
export function arpingProgram(override?: string): Promise<{ path: string } | { why: string }> {
  if (override !== undefined) return resolveArping(override);
  const found = (arpingFound ??= resolveArping(process.env.MFS_JOBS_ARPING).catch((err: Error) => ({
    why: `arping: ${err.message}`,
  })));
  void found.then((f) => {
    if ('why' in f && arpingFound === found) arpingFound = undefined;
  });
  return found;
}

async function resolveArping(override?: string): Promise<{ path: string } | { why: string }> {
  const t = await trustedProgram('arping', process.env.PATH, override);
  if (t.trusted) return { path: t.real };
  if (t.missing) return { why: `${override ?? 'arping'} not installed (Debian: iputils-arping)` };
  return { why: `arping not run: ${t.why}, so another user could have put it there or changed it` };
}

/**
 * ARP requests to `ip`, each its own arping sent at its own moment, spread over the first half of the window.
 * "Silent" is decided on the children, not on a Node timer alone: only once the window has run since the
 * first arping was started and every one has run half of it since its own start (a spawn made late by a busy
 * thread is timed from when it was made), and after the event loop has read what the children wrote or how
 * they ended. A late timer therefore only makes the window longer; it never decides early. arping's own -w
 * counts whole seconds only (`-w 0.15` is an "invalid argument", exit 1): it cannot time a 150 ms window.
 */
export async function arpProbe(ip: string, o: ArpOptions): Promise<ArpAnswer> {
  const [link, program] = await Promise.all([directLink(ip, o.signal), arpingProgram(o.arping)]);
  if ('why' in link) return { state: 'unavailable', why: link.why };
  if ('why' in program) return { state: 'unavailable', why: program.why };
  const { dev } = link;
  const probes = Math.max(1, o.probes);
  const started = performance.now();
  const children: ChildProcess[] = [];
  /** When each request's arping was started (performance.now()); whether it ended on its own deadline, unanswered. */
  const runs: { at: number; heardNothing: boolean }[] = [];
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
    const offset = (i: number) => Math.round((i * o.windowMs) / 2 / probes);
    const send = () => {
      if (settled) return;
      // Its own deadline (whole seconds) outlasts the window, so that it is still listening when we decide.
      const deadline = String(Math.ceil(o.windowMs / 1000) + 1);
      const child = spawn(program.path, ['-f', '-c', '1', '-w', deadline, '-I', dev, ip], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      // Timed from after spawn returned (arping has been executed): its share cannot have begun earlier.
      const run = { at: performance.now(), heardNothing: false };
      runs.push(run);
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        if (/reply from/i.test(out)) finish({ state: 'reply', ms: Math.round(performance.now() - started), dev });
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString('latin1')).slice(-500)));
      child.once('error', (e: NodeJS.ErrnoException) =>
        finish({
          state: 'unavailable',
          why: e.code === 'ENOENT' ? `${program.path} not installed (Debian: iputils-arping)` : e.message,
        }),
      );
      // -f: arping ends at its first reply (0).
      child.once('exit', (code) => {
        if (code === 0) finish({ state: 'reply', ms: Math.round(performance.now() - started), dev });
      });
      child.once('close', (code) => {
        if (settled || code === 0) return;
        // Its own deadline ran out with nothing received: this request had more than its share, unanswered.
        if (code === 1 && /Sent [1-9]\d* probe/.test(out) && /Received 0 response/.test(out)) {
          run.heardNothing = true;
          return;
        }
        // Else arping said nothing about the host (exit 2: no raw socket, no such device; 1: a bad argument).
        const why = err.trim().split('\n')[0] || `exit ${code ?? 'by signal'}`;
        finish({ state: 'unavailable', why: `arping: ${why}` });
      });
    };
    // Silent only once the window has run from the first request's start and every request has had half of
    // it since its own start (as the requests are spread when the thread is free); else look again then.
    const decide = () => {
      if (settled) return;
      const now = performance.now();
      const waiting = runs.filter((r) => !r.heardNothing).map((r) => r.at + o.windowMs / 2 - now);
      const left = runs.length < probes ? o.windowMs : Math.max(0, runs[0]!.at + o.windowMs - now, ...waiting);
      if (left > 0) {
        timers.push(setTimeout(decide, Math.ceil(left)));
        return;
      }
      // Through one poll phase first: a reply or an exit already written by a child is read before this.
      setImmediate(() => {
        if (!settled) finish({ state: 'silent', ms: Math.round(performance.now() - started), dev, probes });
      });
    };
    for (let i = 0; i < probes; i++) timers.push(setTimeout(send, offset(i)));
    timers.push(setTimeout(decide, o.windowMs));
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
export async function announceVip(vip: string, arping?: string): Promise<{ dev: string } | { why: string }> {
  if (vip.includes(':')) return { why: `${vip} is IPv6 (arping announces IPv4 addresses)` };
  const want = vip.toLowerCase();
  const dev = Object.entries(os.networkInterfaces()).find(([, list]) =>
    (list ?? []).some((a) => a.address.toLowerCase() === want),
  )?.[0];
  // A labelled address ("eth0:vip") is sent from its device.
  if (!dev) return { why: `${vip} is not on an interface that is up here` };
  const device = dev.split(':')[0]!;
  const program = await arpingProgram(arping);
  if ('why' in program) return program;
  return new Promise((resolve) => {
    const child = spawn(program.path, ['-U', '-c', '1', '-I', device, vip], { stdio: 'ignore' });
    child.once('spawn', () => {
      child.unref();
      resolve({ dev: device });
    });
    child.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ why: e.code === 'ENOENT' ? `${program.path} not installed (Debian: iputils-arping)` : e.message }),
    );
  });
}
