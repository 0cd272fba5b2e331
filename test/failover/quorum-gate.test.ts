import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig, type Config } from '../../lib/core/config.js';
import type { FenceAnswer } from '../../lib/failover/fence.js';
import { quorumFence } from '../../lib/failover/quorum-gate.js';
import { Quorum, quorumStatus } from '../../lib/failover/quorum.js';
import { lagCheck } from '../../lib/failover/quorum-gate.js';
import { loopbackEtcd } from '../lab/etcd.js';
import { Daemon, freePort, waitFor } from '../lab/proc.js';

/**
 * Promote's quorum gate against a real etcd (one member on loopback) and real fence scripts: scenario 5
 * (the lag gate with the leader key's report) and 6 (the power-fence hook), and the key's refusals.
 */
const unknown: FenceAnswer = {
  name: 'master-a',
  address: '10.0.0.1:9421',
  reachability: 'unreachable',
  detail: 'no answer',
  ms: 2000,
};
const down: FenceAnswer = {
  ...unknown,
  arp: { state: 'silent', ms: 150, dev: 'eth0', probes: 3 },
  detail: 'host down',
};

describe('quorum gate (issue #25): leader key, power-fence hook, lag gate', () => {
  let dir: string;
  let etcd: Daemon;
  let endpoint: string;
  const cfg = (name: string, extra: Record<string, unknown> = {}): Config =>
    parseConfig({
      stateDir: path.join(dir, `state-${name}`),
      masters: [{ name: 'master-a', host: '10.0.0.1' }],
      quorum: {
        name,
        etcd: {
          endpoints: [endpoint],
          prefix: '/mfs-jobs/gate',
          ttlSeconds: 3,
          loopWaitSeconds: 0.5,
          retryTimeoutSeconds: 1,
        },
      },
      ...extra,
    });

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mq-gate-'));
    ({ daemon: etcd, endpoint } = await loopbackEtcd(dir, 'g'));
    await waitFor('etcd to answer', async () => (await quorumStatus(cfg('x'))).reachable === true, 20_000);
  }, 30_000);

  afterAll(async () => {
    await etcd?.kill9();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('the key: taken when free, refused while a live lease holds it, taken once that lease ends; status says who and how long', async () => {
    const a = await quorumFence(cfg('master-a'), [], {});
    expect(a.refused).toBeUndefined();
    expect(a.details.decision).toBe('fenced by the quorum: the leader key was free (no master held it)');
    await a.lease!.stop();
    const s = await quorumStatus(cfg('master-b'));
    expect(s).toMatchObject({ reachable: true, holder: 'master-a' });
    expect(s.line).toMatch(/^quorum: \/mfs-jobs\/gate\/leader held by master-a, lease \d s left$/);
    // master-a's "daemon" renews: B waits its TTL + retry and refuses.
    const q = Quorum.open(cfg('master-a'))!;
    const view = await q.leader();
    const renew = setInterval(() => void q.keepAlive(view.leaseId!).catch(() => undefined), 500);
    try {
      const b = await quorumFence(cfg('master-b'), [], {});
      expect(b.refused).toMatch(/^\/mfs-jobs\/gate\/leader is held by master-a on a live lease/);
      expect(b.details.decision).toBe('refused: master-a holds the leader key on a live lease');
    } finally {
      clearInterval(renew);
      q.close();
    }
    // Nobody renews now: B gets the key within the TTL.
    const began = Date.now();
    const b = await quorumFence(cfg('master-b'), [], {});
    expect(b.refused).toBeUndefined();
    expect(b.details.decision).toMatch(/^fenced by the quorum: master-a's lease ended/);
    expect(Date.now() - began).toBeLessThan(4_500);
    await b.lease!.release();
    expect((await quorumStatus(cfg('master-a'))).holder).toBeNull();
  }, 30_000);

  test('no etcd from here: refused, naming it', async () => {
    const c = parseConfig({
      quorum: {
        name: 'master-b',
        etcd: {
          endpoints: ['http://127.0.0.1:1'],
          prefix: '/mfs-jobs/gate',
          ttlSeconds: 3,
          loopWaitSeconds: 0.5,
          retryTimeoutSeconds: 1,
        },
      },
    });
    const r = await quorumFence(c, [], {});
    expect(r.refused).toMatch(/^no etcd quorum from here: etcd http:\/\/127\.0\.0\.1:1: reading the leader key: /);
  }, 15_000);

  test("(6) the power-fence hook: called with the old master's name when its state is unknown; its failure refuses, its success fences", async () => {
    const calls = path.join(dir, 'calls');
    const script = async (name: string, code: number) => {
      const file = path.join(dir, name);
      await fs.writeFile(
        file,
        `#!/bin/sh\necho "$1 $MFS_JOBS_FENCE_HOST" >> ${calls}\necho "ipmi: power off $1"\nexit ${code}\n`,
        { mode: 0o700 },
      );
      return file;
    };
    const failing = cfg('master-b', { fence: { command: [await script('fence-fail', 1)] } });
    const r = await quorumFence(failing, [unknown], {});
    expect(r.refused).toBe(
      'fence.command failed for master-a: exit 1: ipmi: power off master-a (its state could not be established)',
    );
    expect(await fs.readFile(calls, 'utf8')).toBe('master-a 10.0.0.1\n');
    // A master proven down (no ARP reply on our link) needs no power fence.
    const skipped = await quorumFence(failing, [down], {});
    expect(skipped.details.powerFence).toEqual([]);
    await skipped.lease?.release();
    const ok = await quorumFence(cfg('master-b', { fence: { command: [await script('fence-ok', 0)] } }), [unknown], {});
    expect(ok.refused).toBeUndefined();
    expect(ok.lines[0]).toBe('power fence: fence.command fenced master-a (ipmi: power off master-a)');
    await ok.lease?.release();
  }, 20_000);

  test("(5) the lag gate: a restore point behind the leader key's last report is refused", async () => {
    const c = cfg('master-a', { jobs: {} });
    const a = await quorumFence(c, [], {});
    const q = Quorum.open(c)!;
    expect(await q.report(5000)).toBe(true);
    q.close();
    const settled = {
      choice: { plan: { reached: 100, newest: 100, steps: [], holes: [] }, group: { changelogs: [] }, others: [] },
    } as never;
    const refused = await lagCheck(c, settled, { maximumLagVersions: 1000 });
    expect(refused.ok).toBe(false);
    expect(refused.line).toBe(
      "lag gate: 4900 versions behind (maximumLagVersions 1000): restore point 100, newest 5000 by the leader key's last report (master-a)",
    );
    expect((await lagCheck(c, settled, { maximumLagVersions: 5000 })).ok).toBe(true);
    await a.lease?.release();
  }, 15_000);
});

describe('failsafe channel (issue #25): authenticated, bounded, a promise recorded only for a valid ask', () => {
  test('a forged ask gets no answer and no promise; a valid one is answered and recorded; a standby whose master runs cannot promise', async () => {
    const { randomBytes } = await import('node:crypto');
    const net = await import('node:net');
    const { askPeers, failsafePromise, serveFailsafe } = await import('../../lib/failover/failsafe.js');
    const { silentLogger } = await import('../../lib/core/logger.js');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mq-failsafe-'));
    try {
      const keyFile = path.join(dir, 'key');
      await fs.writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
      const port = await freePort();
      const quorum = (name: string) => ({
        name,
        etcd: {
          endpoints: ['http://127.0.0.1:1'],
          prefix: '/p',
          ttlSeconds: 5,
          loopWaitSeconds: 1,
          retryTimeoutSeconds: 2,
        },
        failsafe: { port, keyFile },
      });
      const standby = parseConfig({ stateDir: path.join(dir, 'b'), quorum: quorum('master-b') });
      const master = parseConfig({
        stateDir: path.join(dir, 'a'),
        masters: [{ name: 'master-b', host: '127.0.0.1' }],
        quorum: quorum('master-a'),
      });
      let promoting: string | undefined;
      const server = (await serveFailsafe(standby, { promoting: async () => promoting, log: silentLogger() }))!;
      try {
        // A forged ask (a MAC of another key): the connection is closed without a word, nothing recorded.
        const answer = await new Promise<string>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port }, () =>
            s.write(
              JSON.stringify({ v: 1, from: 'x', nonce: '0'.repeat(32), at: Date.now(), mac: 'f'.repeat(64) }) + '\n',
            ),
          );
          let got = '';
          s.on('data', (d) => (got += String(d)));
          s.on('close', () => resolve(got));
          s.on('error', () => undefined);
        });
        expect(answer).toBe('');
        expect(await failsafePromise(standby)).toBeUndefined();
        const [ok] = await askPeers(master, master.masters, 2_000);
        expect(ok).toEqual({ name: 'master-b', confirmed: true, detail: 'master-b confirms it is not promoting' });
        expect((await failsafePromise(standby))?.from).toBe('master-a');
        // Promote on the standby waits a promise out (at most one TTL + retry); one that lasts longer (a master
        // that keeps asking renews it) refuses.
        const { promiseFile } = await import('../../lib/failover/failsafe.js');
        await fs.writeFile(promiseFile(standby), JSON.stringify({ from: 'master-a', until: Date.now() + 60_000 }));
        const r = await quorumFence(standby, [], {});
        expect(r.refused).toMatch(
          /^master-a serves in failsafe mode \(etcd unreachable\) and this host promised it not to promote until /,
        );
        promoting = 'mfsmaster (pid 1) runs here';
        const [no] = await askPeers(master, master.masters, 2_000);
        expect(no).toEqual({
          name: 'master-b',
          confirmed: false,
          detail: 'master-b cannot promise: mfsmaster (pid 1) runs here',
        });
        // Another key: the answer is not taken.
        await fs.writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
        const [forged] = await askPeers(master, master.masters, 2_000);
        expect(forged?.confirmed).toBe(false);
      } finally {
        await server.close();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
