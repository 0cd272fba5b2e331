import net from 'node:net';
import type { Config, MasterHost } from '../core/config.js';
import { ConfigError, describeError } from '../core/errors.js';
import { masterStatus, type MasterTarget } from '../moosefs/master.js';
import { arpProbe, type ArpAnswer, type ArpOptions } from './arp.js';

/**
 * Fencing before a promotion: is any other master still alive? A TCP connect to the master's client
 * port (MATOCL) is answered by the kernel even when mfsmaster is busy, so "connected" is a reliable
 * sign of life; mfscli -SIM then says at which metadata version it serves. A dead machine answers
 * nothing, and a connect only gives up at its timeout: on our own link, ARP says "dead" in a few
 * hundred milliseconds instead (see arp.ts), and the fence does not wait out the rest.
 */
export type Reachability = 'listening' | 'refused' | 'unreachable';

export interface FenceAnswer {
  name: string;
  /** The master's own (non-virtual) address, `host:port`. */
  address: string;
  reachability: Reachability;
  /** Set when mfscli got an answer. */
  metadataVersion?: number;
  detail: string;
  /** What ARP said about the host, when it was asked. */
  arp?: ArpAnswer;
  /** How long the answer took. */
  ms: number;
  /** Answered from the daemon's watch of this master (master-watch.ts), without a probe of its own. */
  watched?: boolean;
}

/** One TCP connect: listening (something accepts), refused (host up, nothing there), unreachable (no answer in time). */
export function probePort(
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ reachability: Reachability; detail: string }> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (reachability: Reachability, detail: string) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve({ reachability, detail });
    };
    const onAbort = () => done('unreachable', 'aborted');
    const timer = setTimeout(() => done('unreachable', `no answer within ${timeoutMs} ms`), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done('listening', 'accepts connections'));
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done('refused', 'connection refused (host up, no master listening)');
      else done('unreachable', err.code ?? err.message);
    });
  });
}

/**
 * The masters promote must fence: every configured master except this standby itself (same port on
 * one of our own addresses). A master listed by the VIP cannot be fenced: the VIP is ours now.
 */
export function mastersToFence(
  config: Config,
  self: { port: number; localAddresses: string[]; vip?: string },
): MasterHost[] {
  return config.masters.filter((m, i) => {
    if (self.vip && m.cliHost === self.vip) {
      throw new ConfigError(
        `masters.${i}.cliHost`,
        `${config.file}: masters.${i}.cliHost is the virtual IP ${self.vip}; promote needs each master's own address to fence it`,
      );
    }
    return !(m.cliPort === self.port && self.localAddresses.includes(m.cliHost.toLowerCase()));
  });
}

/**
 * Is master `m` alive? A TCP connect, and beside it (with `arp`) ARP requests to its host: the first
 * conclusive answer wins. Connected or refused is conclusive; so is ARP silence while the connect is
 * still pending (the host is down). An ARP reply is not: the host is up, and the connect decides.
 */
export async function probeMaster(
  m: MasterHost,
  o: {
    timeoutMs: number;
    mfscliBin: string;
    generation?: MasterTarget['generation'];
    signal?: AbortSignal;
    arp?: Omit<ArpOptions, 'signal'>;
  },
): Promise<FenceAnswer> {
  const address = `${m.cliHost}:${m.cliPort}`;
  const started = Date.now();
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  let arp: ArpAnswer | undefined;
  const tcp = probePort(m.cliHost, m.cliPort, o.timeoutMs, signal);
  const dead = o.arp
    ? arpProbe(m.cliHost, { ...o.arp, signal }).then((a) => {
        arp = a;
        return a.state === 'silent' ? a : new Promise<never>(() => undefined);
      })
    : new Promise<never>(() => undefined);
  const first = await Promise.race([tcp.then((t) => ({ tcp: t })), dead.then((a) => ({ silent: a }))]);
  stop.abort();
  if ('silent' in first) {
    const a = first.silent;
    return {
      name: m.name,
      address,
      reachability: 'unreachable',
      detail: `host down: no ARP reply on ${a.dev} to ${a.probes} request(s) within ${a.ms} ms`,
      arp: a,
      ms: Date.now() - started,
    };
  }
  const probe = first.tcp;
  const arpNote =
    probe.reachability !== 'unreachable' || !arp
      ? ''
      : arp.state === 'reply'
        ? ` (the host answers ARP: up, but its port ${m.cliPort} is silent)`
        : arp.state === 'unavailable'
          ? ` (no ARP verdict: ${arp.why})`
          : '';
  const answer: FenceAnswer = {
    name: m.name,
    address,
    reachability: probe.reachability,
    detail: `${probe.detail}${arpNote}`,
    arp,
    ms: Date.now() - started,
  };
  if (probe.reachability !== 'listening') return answer;
  try {
    const info = await masterStatus({
      host: m.cliHost,
      port: m.cliPort,
      bin: o.mfscliBin,
      timeoutMs: Math.max(o.timeoutMs, 3_000),
      signal: o.signal,
      generation: o.generation,
    });
    answer.metadataVersion = info.metadataVersion;
    answer.detail =
      info.metadataVersion !== undefined
        ? `answers at metadata version ${info.metadataVersion}`
        : `answers (MooseFS ${info.softwareVersion})`;
  } catch (err) {
    // Listening but not (yet) serving: still alive, still a second master.
    answer.detail = `accepts connections but does not answer as a master (${describeError(err)})`;
  }
  answer.ms = Date.now() - started;
  return answer;
}

/** What blocks a promotion: any master that is alive on its own address. */
export function aliveMasters(answers: readonly FenceAnswer[]): FenceAnswer[] {
  return answers.filter((a) => a.reachability === 'listening');
}

export function describeFence(a: FenceAnswer): string {
  return `${a.name} (${a.address}) ${a.detail}`;
}
