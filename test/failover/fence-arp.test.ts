import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execCapture } from '../../lib/core/exec.js';
import { arpProbe, type ArpAnswer } from '../../lib/failover/arp.js';
import type { FenceAnswer } from '../../lib/failover/fence.js';
import { killMasterOf } from '../lab/failover.js';
import { NetLab, NsMaster, type Machine } from '../lab/netns.js';
import { Daemon, waitFor } from '../lab/proc.js';

/** The compiled fence, asked from inside machine `from`'s network, as promote asks it there. */
const FENCE = fileURLToPath(new URL('../../lib/failover/fence.js', import.meta.url));
const WATCH = fileURLToPath(new URL('../../lib/failover/master-watch.js', import.meta.url));
const ARP = fileURLToPath(new URL('../../lib/failover/arp.js', import.meta.url));

/**
 * `rounds` ARP probes of `ip` from machine `from` (150 ms window, 3 requests, as promote's defaults), with
 * Node's thread busy 250 ms at a time, a moment free between (`busy`): what a slow module load or key parse
 * does to the timers of the window. `env` replaces the child's environment (a planted PATH).
 */
async function arpFrom(
  from: Machine,
  ip: string,
  o: { rounds: number; busy: boolean; env?: NodeJS.ProcessEnv },
): Promise<ArpAnswer[]> {
  const script = `const { arpProbe } = await import(${JSON.stringify(ARP)});
const spin = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
const busy = ${o.busy} ? setInterval(() => spin(250), 1) : undefined;
const answers = [];
for (let i = 0; i < ${o.rounds}; i++) answers.push(await arpProbe(${JSON.stringify(ip)}, { windowMs: 150, probes: 3 }));
clearInterval(busy);
process.stdout.write(JSON.stringify(answers));`;
  const res = await execCapture(
    'nsenter',
    [`--net=${from.netnsPath}`, process.execPath, '--input-type=module', '-e', script],
    { timeoutMs: 30_000, env: o.env },
  );
  if (res.code !== 0) throw new Error(`arp from ${from.name} failed: ${res.stderr}`);
  return JSON.parse(res.stdout) as ArpAnswer[];
}

interface Seen {
  state?: { kind: string; reachability?: string; probes?: number };
  answer?: FenceAnswer;
}

/** The daemon's watch of one master, run inside machine `from`; it prints what it sees every 50 ms. */
function watchFrom(
  from: Machine,
  host: string,
  port: number,
  logFile: string,
): { daemon: Daemon; seen(): Promise<Seen> } {
  const master = { name: 'other', host, cliHost: host, cliPort: port };
  const script = `const { MasterWatch } = await import(${JSON.stringify(WATCH)});
const m = ${JSON.stringify(master)};
const w = new MasterWatch([m], { intervalMs: 250, arp: { windowMs: 150, probes: 3 } });
setInterval(() => process.stdout.write(JSON.stringify({ state: w.state(m), answer: w.deadAnswer(m, 900) }) + '\\n'), 50);`;
  const daemon = new Daemon('watch', process.execPath, ['--input-type=module', '-e', script], logFile, {
    wrap: from.wrap,
  });
  return {
    daemon,
    seen: async () => JSON.parse((await daemon.log()).trim().split('\n').at(-1) || '{}') as Seen,
  };
}

async function probeFrom(
  from: Machine,
  host: string,
  port: number,
  o: { timeoutMs: number; arpMs: number },
): Promise<FenceAnswer> {
  const master = { name: 'other', host, cliHost: host, cliPort: port };
  const script = `const { probeMaster } = await import(${JSON.stringify(FENCE)});
const a = await probeMaster(${JSON.stringify(master)}, { timeoutMs: ${o.timeoutMs}, mfscliBin: 'mfscli', arp: ${o.arpMs ? `{ windowMs: ${o.arpMs}, probes: 3 }` : 'undefined'} });
process.stdout.write(JSON.stringify(a));`;
  const res = await execCapture(
    'nsenter',
    [`--net=${from.netnsPath}`, process.execPath, '--input-type=module', '-e', script],
    { timeoutMs: 30_000 },
  );
  if (res.code !== 0) throw new Error(`probe from ${from.name} failed: ${res.stderr}`);
  return JSON.parse(res.stdout) as FenceAnswer;
}

/**
 * Fencing a dead host without waiting out the connect timeout: ARP beside the TCP connect, between real
 * network namespaces on a bridge (A: the old master's machine, B: the standby). Requires arping
 * (iputils-arping): missing, the test fails, it does not skip.
 */
describe("promote's fence: a TCP connect and ARP to the old master's host", () => {
  let net: NetLab;
  let dir: string;
  let master: NsMaster;
  let A: Machine, B: Machine;
  beforeAll(async () => {
    const which = await execCapture('sh', ['-c', 'command -v arping']);
    if (which.code !== 0)
      throw new Error('arping is not installed (Debian: iputils-arping; scripts/setup-debian.sh installs it)');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-fence-'));
    net = await NetLab.create(['A', 'B'], '10.79.0');
    [A, B] = [net.machine('A'), net.machine('B')];
    master = await NsMaster.create(A, path.join(dir, 'A'), { bootstrap: true });
    await master.start();
  }, 60_000);
  afterAll(async () => {
    await master?.kill9().catch(() => undefined);
    if (master) await killMasterOf(master.dataPath);
    await net?.destroy();
    if (net) expect(await net.leftovers()).toEqual([]);
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }, 60_000);

  test('a live master: listening, whatever ARP says', async () => {
    const a = await probeFrom(B, A.ip, NsMaster.PORTS.cl, { timeoutMs: 2_000, arpMs: 300 });
    expect(a.reachability).toBe('listening');
    expect(a.detail).toMatch(/answers/);
  });

  test('a live host without a master: refused at once', async () => {
    const a = await probeFrom(B, A.ip, 9999, { timeoutMs: 2_000, arpMs: 300 });
    expect(a.reachability).toBe('refused');
  });

  test('a host whose port is silent (SYNs dropped) but whose kernel answers ARP: the connect decides, and the answer says the host is up', async () => {
    const rule = (op: '-A' | '-D') =>
      execCapture('ip', [
        'netns',
        'exec',
        A.name,
        'iptables',
        op,
        'INPUT',
        '-p',
        'tcp',
        '--dport',
        '9421',
        '-j',
        'DROP',
      ]);
    expect((await rule('-A')).code).toBe(0);
    try {
      const a = await probeFrom(B, A.ip, NsMaster.PORTS.cl, { timeoutMs: 1_000, arpMs: 300 });
      expect(a.reachability).toBe('unreachable');
      expect(a.arp?.state).toBe('reply');
      expect(a.detail).toMatch(/answers ARP: up, but its port 9421 is silent/);
    } finally {
      await rule('-D');
    }
  });

  test("a dead host (its link down): ARP's silence decides, not the connect's timeout", async () => {
    await A.linkDown();
    try {
      const a = await probeFrom(B, A.ip, NsMaster.PORTS.cl, { timeoutMs: 10_000, arpMs: 300 });
      expect(a.reachability).toBe('unreachable');
      expect(a.arp).toMatchObject({ state: 'silent', dev: B.iface, probes: 3 });
      expect(a.detail).toMatch(/^host down: no ARP reply on \S+ to 3 request\(s\) within \d+ ms$/);
      // Without ARP the same host is only "no answer" at the connect's timeout.
      const blind = await probeFrom(B, A.ip, NsMaster.PORTS.cl, { timeoutMs: 1_000, arpMs: 0 });
      expect(blind).toMatchObject({ reachability: 'unreachable', detail: 'no answer within 1000 ms' });
      expect(blind.arp).toBeUndefined();
    } finally {
      await A.linkUp();
    }
  });

  test("the daemon's watch (fencing ahead of time): answers for the fence only while it sees the master dead, never for a live or silent one", async () => {
    const w = watchFrom(B, A.ip, NsMaster.PORTS.cl, path.join(dir, 'watch.log'));
    const now = (what: string, pred: (s: Seen) => boolean, ms = 10_000) =>
      waitFor(what, async () => ((s) => (pred(s) ? s : undefined))(await w.seen()), ms, 50);
    try {
      await now('alive', (s) => s.state?.kind === 'alive');
      expect((await w.seen()).answer).toBeUndefined();
      // Port silent, host up: never "dead", so the fence probes (and waits) as before.
      const rule = (op: '-A' | '-D') =>
        execCapture('ip', [
          'netns',
          'exec',
          A.name,
          'iptables',
          op,
          'INPUT',
          '-p',
          'tcp',
          '--dport',
          '9421',
          '-j',
          'DROP',
        ]);
      expect((await rule('-A')).code).toBe(0);
      try {
        await now('unsure', (s) => s.state?.kind === 'unsure');
        await new Promise((r) => setTimeout(r, 1_000));
        expect((await w.seen()).answer).toBeUndefined();
      } finally {
        await rule('-D');
      }
      await now('alive again', (s) => s.state?.kind === 'alive');
      // The host dies: after two probes in a row the watch answers for the fence, at once.
      await A.linkDown();
      try {
        const dead = await now('dead', (s) => s.answer !== undefined, 5_000);
        expect(dead.answer).toMatchObject({ reachability: 'unreachable', watched: true, ms: 0 });
        expect(dead.answer!.detail).toMatch(
          /^host down: no ARP reply .* \(the daemon's watch: down since [\d:.]+ UTC, \d+ probes in a row, the last \d+ ms ago\)$/,
        );
      } finally {
        await A.linkUp();
      }
      await now('alive after the link came back', (s) => s.state?.kind === 'alive' && s.answer === undefined);
      // The master process dies, its host lives: refused, dead.
      await master.kill9();
      const refused = await now('refused', (s) => s.answer !== undefined, 5_000);
      expect(refused.answer).toMatchObject({ reachability: 'refused', watched: true });
    } finally {
      await w.daemon.stop();
    }
  }, 60_000);

  // Issue 24: a timer that fires late (a busy thread) fired the requests and the verdict in one go, so a
  // live host was "silent" before its reply was read. Now a late timer only makes the window longer.
  test("a busy thread never makes a live host's ARP silent; a dead host's silence still comes, after the window", async () => {
    const live = await arpFrom(B, A.ip, { rounds: 3, busy: true });
    expect(live.map((a) => a.state)).toEqual(Array(3).fill('reply'));
    await A.linkDown();
    try {
      const dead = await arpFrom(B, A.ip, { rounds: 1, busy: true });
      for (const a of dead) {
        expect(a).toMatchObject({ state: 'silent', probes: 3 });
        expect((a as { ms: number }).ms).toBeGreaterThanOrEqual(150);
      }
    } finally {
      await A.linkUp();
    }
  }, 30_000);

  test('an arping planted in a PATH directory another user owns is not run: no verdict from ARP, said why', async () => {
    const planted = path.join(dir, 'planted');
    const ran = path.join(dir, 'planted-ran');
    await fs.mkdir(planted, { mode: 0o755 });
    // It would answer "silent" for a live host: exactly what must never decide a fence.
    await fs.writeFile(path.join(planted, 'arping'), `#!/bin/sh\ntouch ${ran}\nsleep 2\nexit 1\n`, { mode: 0o755 });
    await fs.chown(path.join(planted, 'arping'), 65534, 65534);
    await fs.chown(planted, 65534, 65534);
    const env = { ...process.env, PATH: `${planted}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const [a] = await arpFrom(B, A.ip, { rounds: 1, busy: false, env });
    expect(a).toEqual({ state: 'unavailable', why: expect.stringMatching(/^arping not run: .*uid 65534/) as string });
    await expect(fs.access(ran)).rejects.toThrow(/ENOENT/);
  });

  test('an address not on a directly connected link gets no ARP verdict, and says why', async () => {
    expect(await arpProbe('127.0.0.1', { windowMs: 300, probes: 3 })).toEqual({
      state: 'unavailable',
      why: '127.0.0.1 is a local address',
    });
  });
});
