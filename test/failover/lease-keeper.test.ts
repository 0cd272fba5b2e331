import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../lib/core/config.js';
import { processAlive } from '../../lib/core/lock.js';
import { silentLogger } from '../../lib/core/logger.js';
import { LeaseKeeper } from '../../lib/failover/lease-keeper.js';
import { quorumStatus } from '../../lib/failover/quorum.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { loopbackEtcd } from '../lab/etcd.js';
import { LabMaster } from '../lab/moosefs.js';
import { NetLab } from '../lab/netns.js';
import { Daemon, freePort, portOpen, sleep, waitFor } from '../lab/proc.js';

/**
 * The serving master's daemon under load (issue #25, the CI flake of quorum.test.ts scenario 4): etcd's
 * majority goes while the daemon records its master's version (a loaded machine's mfscli takes a second;
 * the report to etcd then waits out its deadline). The peer's daemon confirms at once over the failsafe
 * channel, so the master must serve on. Before the fix the report held the renewal loop, and the failsafe
 * ask chained to it, past the stop: the master self-fenced although its peer would have answered.
 * Real parts: a real mfsmaster on loopback, a real etcd (frozen with SIGSTOP: it accepts and never answers,
 * like a member cut off from its majority), the peer's real failsafe server in a network namespace of its
 * own (namespace `mlk-<pid>-P`, bridge `mlkbr<pid>`, 10.95.0.0/24).
 */
const PREFIX = '10.95.0';
const FAILSAFE_JS = new URL('../../lib/failover/failsafe.js', import.meta.url).href;
const CONFIG_JS = new URL('../../lib/core/config.js', import.meta.url).href;
const LOGGER_JS = new URL('../../lib/core/logger.js', import.meta.url).href;
/** The peer's daemon, as far as the failsafe channel goes: not promoting, it promises so. */
const PEER = [
  'const [fsUrl, cfgUrl, logUrl, doc] = process.argv.slice(1);',
  'const { serveFailsafe } = await import(fsUrl); const { parseConfig } = await import(cfgUrl);',
  'const { silentLogger } = await import(logUrl);',
  'await serveFailsafe(parseConfig(JSON.parse(doc)), { promoting: async () => undefined, log: silentLogger() });',
].join('\n');

describe('lease keeper (issue #25): etcd lost while the daemon reads its master, the peer confirms', () => {
  let dir: string;
  let etcd: Daemon | undefined;
  let master: LabMaster | undefined;
  let net: NetLab | undefined;
  let peer: Daemon | undefined;

  afterAll(async () => {
    if (etcd?.running) process.kill(etcd.pid, 'SIGCONT');
    await peer?.kill9();
    await etcd?.kill9();
    const pid = master ? await runningMasterPid(master.dataPath) : undefined;
    if (pid) process.kill(pid, 'SIGKILL');
    await master?.kill9().catch(() => undefined);
    await net?.destroy();
    if (net) expect(await net.leftovers()).toEqual([]);
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }, 60_000);

  test('the master serves on through failsafe: the leader report no longer holds the renewals and the asks', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mq-keeper-'));
    const failsafePort = await freePort();
    const started = await loopbackEtcd(dir, 'k');
    etcd = started.daemon;
    const endpoint = started.endpoint;
    master = await LabMaster.create(path.join(dir, 'master'));
    await master.start();
    net = await NetLab.create(['P'], PREFIX, 'mlk');
    await net.joinFromHost(`${PREFIX}.254`);
    const P = net.machine('P');

    const keyFile = path.join(dir, 'failsafe.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const quorum = (name: string) => ({
      name,
      etcd: {
        endpoints: [endpoint],
        prefix: '/mfs-jobs/keeper',
        ttlSeconds: 5,
        loopWaitSeconds: 1,
        retryTimeoutSeconds: 2,
      },
      failsafe: { port: failsafePort, keyFile },
    });
    const peerDoc = { stateDir: path.join(dir, 'peer'), quorum: quorum('master-b') };
    peer = new Daemon(
      'failsafe peer',
      process.execPath,
      ['--input-type=module', '-e', PEER, FAILSAFE_JS, CONFIG_JS, LOGGER_JS, JSON.stringify(peerDoc)],
      path.join(dir, 'peer.log'),
      { wrap: P.wrap },
    );
    // A loaded machine's mfscli: it answers a second late. Its first call marks when the daemon reads its master.
    const marker = path.join(dir, 'mfscli-called');
    const mfscli = path.join(dir, 'mfscli-slow');
    await fs.writeFile(mfscli, `#!/bin/sh\ntouch ${marker}\nsleep 1\nexec mfscli "$@"\n`, { mode: 0o700 });
    const config = parseConfig({
      stateDir: path.join(dir, 'state'),
      // Debian's 3.0, pinned: its version is asked through mfscli (lib/moosefs/generations/mfs-3.0.ts).
      moosefs: { generation: '3.0' },
      mfscliBin: mfscli,
      masters: [{ name: 'master-b', host: P.ip }],
      standby: {
        dataPath: master.dataPath,
        masterConfig: master.configFile,
        cliHost: '127.0.0.1',
        cliPort: master.ports.cl,
      },
      quorum: quorum('master-a'),
    });
    await waitFor('etcd to answer', async () => (await quorumStatus(config)).reachable === true, 20_000);
    await waitFor("the peer's failsafe channel", () => portOpen(P.ip, failsafePort), 20_000);
    const pid = (await runningMasterPid(master.dataPath))!;
    expect(pid).toBeDefined();

    const keeper = (await LeaseKeeper.start(config, config.standby!, silentLogger()))!;
    try {
      // etcd's majority goes the moment the daemon, holding the key, starts reading its master's version.
      await waitFor('the daemon to read its master', async () => fs.stat(marker).then(() => true), 15_000, 20);
      expect(keeper.state.holding).toBe(true);
      process.kill(etcd.pid, 'SIGSTOP');
      // Three TTLs without etcd: the peer confirms every ask, the master serves on.
      await sleep(15_000);
      expect(keeper.state.fenced).toBeUndefined();
      expect(processAlive(pid)).toBe(true);
      expect(keeper.state.etcd).toBe('unreachable');
      // Confirmed by the peer: the time the master may serve to, from its last confirmed ask.
      expect(keeper.state.failsafeUntil).toBeGreaterThan(Date.now());
      process.kill(etcd.pid, 'SIGCONT');
      await waitFor('etcd to answer the daemon again', async () => keeper.state.etcd === 'ok', 15_000);
      expect(keeper.state.fenced).toBeUndefined();
      expect(processAlive(pid)).toBe(true);
    } finally {
      if (etcd.running) process.kill(etcd.pid, 'SIGCONT');
      await keeper.close();
    }
  }, 90_000);
});
