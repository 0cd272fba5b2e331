import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Machine } from './netns.js';
import { Daemon, freePort } from './proc.js';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';

/**
 * A real etcd cluster for the quorum lease (issue #25): one member inside each lab machine, on its own
 * address, data under `dir`. Fast heartbeats (100 ms, election 1 s) and pre-vote: a member back from
 * isolation must not force an election (etcd 3.4's default is off). Members are started and killed by PID.
 */
export class EtcdCluster {
  readonly members = new Map<Machine, Daemon>();

  constructor(
    private readonly machines: Machine[],
    private readonly dir: string,
  ) {}

  get endpoints(): string[] {
    return this.machines.map((m) => `http://${m.ip}:2379`);
  }

  static start(machines: Machine[], dir: string): EtcdCluster {
    const cluster = new EtcdCluster(machines, dir);
    for (const m of machines) cluster.startMember(m);
    return cluster;
  }

  /** (Re)start `m`'s member on its data directory (the cluster is `new` only the first time). */
  startMember(m: Machine): Daemon {
    const peers = this.machines.map((x) => `${x.name}=http://${x.ip}:2380`).join(',');
    const args = [
      ['--name', m.name],
      ['--data-dir', path.join(this.dir, `etcd-${m.name}`)],
      ['--listen-client-urls', `http://${m.ip}:2379`],
      ['--advertise-client-urls', `http://${m.ip}:2379`],
      ['--listen-peer-urls', `http://${m.ip}:2380`],
      ['--initial-advertise-peer-urls', `http://${m.ip}:2380`],
      ['--initial-cluster', peers],
      ['--initial-cluster-state', 'new'],
      ['--heartbeat-interval', '100'],
      ['--election-timeout', '1000'],
      ['--pre-vote'],
    ].flat();
    const d = new Daemon(`etcd on ${m.name}`, ETCD, args, path.join(this.dir, `etcd-${m.name}.log`), { wrap: m.wrap });
    this.members.set(m, d);
    return d;
  }

  /** `key`'s value read from inside `from` (linearizable: needs a majority); null: absent, undefined: no answer. */
  async get(from: Machine, key: string): Promise<string | null | undefined> {
    const res = await from.exec(
      ETCDCTL,
      ['--endpoints', this.endpoints.join(','), '--command-timeout=2s', 'get', key, '--print-value-only'],
      10_000,
    );
    if (res.code !== 0) return undefined;
    return res.stdout.trim() || null;
  }

  /** Delete `key` from inside `from`; true when etcd answered. */
  async del(from: Machine, key: string): Promise<boolean> {
    const res = await from.exec(
      ETCDCTL,
      ['--endpoints', this.endpoints.join(','), '--command-timeout=2s', 'del', key],
      10_000,
    );
    return res.code === 0;
  }

  async kill9(): Promise<void> {
    for (const d of this.members.values()) await d.kill9().catch(() => undefined);
  }
}

/**
 * One etcd member on loopback (free ports, data under `dir`/etcd) for the tests that need a real etcd but
 * no cluster; fails loudly when etcd-server is missing (no suite skips). Stopped by PID (`daemon.kill9()`).
 */
export async function loopbackEtcd(dir: string, name: string): Promise<{ daemon: Daemon; endpoint: string }> {
  await fs.access(ETCD).catch(() => {
    throw new Error(`${ETCD} is missing: install etcd-server (this suite never skips)`);
  });
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const daemon = new Daemon(
    'etcd',
    ETCD,
    [
      ['--name', name, '--data-dir', path.join(dir, 'etcd')],
      ['--listen-client-urls', endpoint, '--advertise-client-urls', endpoint],
      ['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl],
      ['--initial-cluster', `${name}=${peerUrl}`],
    ].flat(),
    path.join(dir, 'etcd.log'),
  );
  return { daemon, endpoint };
}
