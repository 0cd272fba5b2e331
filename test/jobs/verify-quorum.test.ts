import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { parseConfig } from '../../lib/core/config.js';
import { readJobState } from '../../lib/core/state.js';
import { Quorum, quorumStatus, type QuorumStatus } from '../../lib/failover/quorum.js';
import { runCli } from '../helpers/cli.js';
import { loopbackEtcd } from '../lab/etcd.js';
import { Daemon, waitFor } from '../lab/proc.js';

/**
 * `verify` says who holds the quorum lease (issue #25), from the same reader as `status` (quorumStatus),
 * against a real etcd (one member on loopback): the holder, the lease's remaining TTL, the decision a
 * promotion from here would meet; etcd out of reach is a WARNING naming the endpoints.
 */

interface VerifyState {
  status: string;
  details: {
    quorum?: Omit<QuorumStatus, 'line'>;
    findings: { status: string; text: string }[];
  };
}

describe('verify reports the quorum lease (issue #25)', () => {
  let dir: string;
  let etcd: Daemon;
  let endpoint: string;
  const quorum = (name: string, endpoints = [endpoint]) => ({
    name,
    etcd: { endpoints, prefix: '/mfs-jobs/verify', ttlSeconds: 5, loopWaitSeconds: 1, retryTimeoutSeconds: 2 },
  });
  /** An empty store to verify (a source verify needs), this host's name in the key, its etcd endpoints. */
  const configFile = async (name: string, endpoints?: string[]) => {
    const doc = {
      stateDir: path.join(dir, 'state'),
      snapshotStore: { path: path.join(dir, 'store') },
      quorum: quorum(name, endpoints),
    };
    const file = path.join(dir, `${name}-${endpoints ? 'other' : 'etcd'}.yaml`);
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return file;
  };
  const verify = async (file: string) => {
    const run = await runCli(['run', 'verify', '--config', file]);
    const state = (await readJobState(path.join(dir, 'state'), 'verify')) as unknown as VerifyState;
    return { stdout: run.stdout, state };
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mq-verify-'));
    await fs.mkdir(path.join(dir, 'store'), { mode: 0o700 });
    ({ daemon: etcd, endpoint } = await loopbackEtcd(dir, 'v'));
    const probe = parseConfig({ quorum: quorum('probe') });
    await waitFor('etcd to answer', async () => (await quorumStatus(probe)).reachable === true, 20_000);
  }, 30_000);

  afterAll(async () => {
    await etcd?.kill9();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('the key free, then held by another master: a line, the decision and the details', async () => {
    const free = await verify(await configFile('master-b'));
    expect(free.stdout).toContain('\n  quorum: /mfs-jobs/verify/leader is free (no master holds it)\n');
    expect(free.stdout).toContain('\n    a promotion here would take the free key\n');
    expect(free.state.details.quorum).toMatchObject({ configured: true, reachable: true, holder: null });

    const q = Quorum.open(parseConfig({ quorum: quorum('master-a') }))!;
    try {
      const lease = await q.grant();
      expect(await q.takeIfAbsent(lease)).toBe(true);
      const held = await verify(await configFile('master-b'));
      expect(held.stdout).toMatch(/\n {2}quorum: \/mfs-jobs\/verify\/leader held by master-a, lease \d s left\n/);
      expect(held.stdout).toContain(
        "\n    a promotion here would wait at most 5 s for master-a's lease to end, and refuse while master-a renews it",
      );
      expect(held.state.details.quorum).toMatchObject({ reachable: true, holder: 'master-a', self: 'master-b' });
      expect(held.state.details.quorum!.ttlSeconds).toBeGreaterThan(0);
      // Nothing about the key is a problem while etcd answers.
      expect(held.state.details.findings.filter((f) => f.text.startsWith('quorum'))).toEqual([]);
      await q.revoke(lease);
    } finally {
      q.close();
    }
  }, 30_000);

  test('etcd out of reach from here: a WARNING naming the endpoints', async () => {
    const r = await verify(await configFile('master-b', ['http://127.0.0.1:1', 'http://127.0.0.1:2']));
    const finding = r.state.details.findings.find((f) => f.text.startsWith('quorum'));
    expect(finding?.status).toBe('WARNING');
    expect(finding?.text).toMatch(
      /^quorum: etcd unreachable from here \(http:\/\/127\.0\.0\.1:1, http:\/\/127\.0\.0\.1:2\): a promotion here would be refused: no etcd majority from here: etcd /,
    );
    expect(r.stdout).toContain('WARNING: quorum: etcd unreachable from here (http://127.0.0.1:1, http://127.0.0.1:2)');
    expect(r.state.details.quorum).toMatchObject({ configured: true, reachable: false });
    expect(r.state.status).not.toBe('OK');
  }, 30_000);
});
