import net from 'node:net';
import type { Config, MasterHost } from '../core/config.js';
import { ConfigError, describeError } from '../core/errors.js';
import { masterStatus, type MasterTarget } from '../moosefs/master.js';

/**
 * Fencing before a promotion: is any other master still alive? A TCP connect to the master's client
 * port (MATOCL) is answered by the kernel even when mfsmaster is busy, so "connected" is a reliable
 * sign of life; mfscli -SIM then says at which metadata version it serves.
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
}

/** One TCP connect: listening (something accepts), refused (host up, nothing there), unreachable (no answer in time). */
export function probePort(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<{ reachability: Reachability; detail: string }> {
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
export function mastersToFence(config: Config, self: { port: number; localAddresses: string[]; vip?: string }): MasterHost[] {
  return config.masters.filter((m, i) => {
    if (self.vip && m.cliHost === self.vip) {
      throw new ConfigError(`masters.${i}.cliHost`, `${config.file}: masters.${i}.cliHost is the virtual IP ${self.vip}; promote needs each master's own address to fence it`);
    }
    return !(m.cliPort === self.port && self.localAddresses.includes(m.cliHost.toLowerCase()));
  });
}

export async function probeMaster(m: MasterHost, o: { timeoutMs: number; mfscliBin: string; generation?: MasterTarget['generation']; signal?: AbortSignal }): Promise<FenceAnswer> {
  const address = `${m.cliHost}:${m.cliPort}`;
  const probe = await probePort(m.cliHost, m.cliPort, o.timeoutMs, o.signal);
  const answer: FenceAnswer = { name: m.name, address, reachability: probe.reachability, detail: probe.detail };
  if (probe.reachability !== 'listening') return answer;
  try {
    const info = await masterStatus({ host: m.cliHost, port: m.cliPort, bin: o.mfscliBin, timeoutMs: Math.max(o.timeoutMs, 3_000), signal: o.signal, generation: o.generation });
    answer.metadataVersion = info.metadataVersion;
    answer.detail = info.metadataVersion !== undefined ? `answers at metadata version ${info.metadataVersion}` : `answers (MooseFS ${info.softwareVersion})`;
  } catch (err) {
    // Listening but not (yet) serving: still alive, still a second master.
    answer.detail = `accepts connections but does not answer as a master (${describeError(err)})`;
  }
  return answer;
}

/** What blocks a promotion: any master that is alive on its own address. */
export function aliveMasters(answers: readonly FenceAnswer[]): FenceAnswer[] {
  return answers.filter((a) => a.reachability === 'listening');
}

export function describeFence(a: FenceAnswer): string {
  return `${a.name} (${a.address}) ${a.detail}`;
}
