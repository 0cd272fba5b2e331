import { readdirSync, readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { runCli, startCli, type CliResult } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import type { LabMaster } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { FaultProxy, knownHostsAt } from '../lab/proxy.js';
import { LabSshd } from '../lab/sshd.js';
import { checkStore, crashProblems, describeRun, transferUnderWay } from './faults.js';
import { tearDownFaults } from './results.js';

/**
 * Link and server faults between backup and the real sshd of a master: the connection cut
 * mid-transfer, sshd killed mid-transfer and then refusing, a link that goes silent, a host key that
 * does not match, a slow link (done, and done too slowly for the job's timeout). Each: a bounded
 * time, one clear line, no snapshot from a partial transfer, nothing left in .tmp.
 */

/** Every process below `pid` (sshd forks one per connection), deepest first. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSyncSafe('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      walk(c);
      out.push(c);
    }
  };
  walk(pid);
  return out;
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

describe('faults: network and sshd failures during backup', () => {
  let lab: Lab;
  let big: LabMaster;
  let proxy: FaultProxy;
  let slow: FaultProxy;
  let own: LabSshd;
  const rows: { fault: string; ok: boolean; note: string }[] = [];

  /** A config backing up `big` into its own store, through `port` (proxy, slow link, own sshd) with `knownHosts`. */
  async function config(
    name: string,
    via: { port: number; knownHosts: string; privateKey?: string },
    extra: Record<string, unknown> = {},
  ): Promise<{ file: string; store: string }> {
    const store = path.join(lab.dir, `store-${name}`);
    const file = await lab.writeConfig(
      { masters: [masterEntry('big', big, via)], snapshotStore: { path: store }, ...extra },
      `${name}.yaml`,
    );
    return { file, store };
  }

  /** Checks every fault ends with; returns what is wrong. */
  async function judge(
    name: string,
    res: CliResult,
    seconds: number,
    bound: number,
    expected: RegExp,
    store: string,
  ): Promise<string[]> {
    const problems = crashProblems(res).map((p) => `${name}: ${p}`);
    if (!expected.test(res.stdout)) problems.push(`${name}: expected ${expected}, got: ${res.stdout.split('\n')[0]}`);
    if (seconds > bound) problems.push(`${name}: took ${seconds.toFixed(1)} s, bound ${bound} s`);
    const after = await checkStore(store);
    if (after.good.length || after.problems.length || after.temps.length)
      problems.push(`${name}: store holds ${JSON.stringify(after)}`);
    console.log(`${name} (${seconds.toFixed(1)} s): ${describeRun(res)}`);
    rows.push({ fault: name, ok: problems.length === 0, note: `${seconds.toFixed(1)} s, bound ${bound} s` });
    return problems;
  }

  async function timed(args: string[]): Promise<{ res: CliResult; seconds: number }> {
    const started = Date.now();
    const res = await runCli(args, { timeoutMs: 180_000 });
    return { res, seconds: (Date.now() - started) / 1000 };
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: false });
    big = await bigMaster(path.join(lab.dir, 'big'), 40_000);
    proxy = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port });
    slow = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port }, { bytesPerSecond: 300_000 });
  });
  afterAll(async () => {
    await tearDownFaults([proxy, slow, own ? () => own.stop().catch(() => undefined) : undefined, big, lab], rows);
  });

  test('the connection cut mid-transfer (after 1 MB): TransferError at once, no snapshot', async () => {
    proxy.faults = { cutAfterBytes: 1_000_000 };
    const { file, store } = await config('cut', {
      port: proxy.port,
      knownHosts: await knownHostsAt(lab, proxy.port, 'proxy'),
    });
    const { res, seconds } = await timed(['run', 'backup', '--config', file]);
    expect(
      await judge(
        'connection cut mid-transfer',
        res,
        seconds,
        20,
        /^MFS BACKUP CRITICAL - big: big \(127\.0\.0\.1:\d+\): download \S+metadata\.mfs\.back: connection lost \(sshd stopped or the network dropped\)/,
        store,
      ),
    ).toEqual([]);
  });

  test('a link that goes silent mid-transfer: the run ends by itself (SSH keepalive), no snapshot', async () => {
    proxy.faults = { stallAfterBytes: 1_000_000 };
    const { file, store } = await config('stall', {
      port: proxy.port,
      knownHosts: await knownHostsAt(lab, proxy.port, 'proxy'),
    });
    const { res, seconds } = await timed(['run', 'backup', '--config', file]);
    expect(
      await judge(
        'link silent mid-transfer',
        res,
        seconds,
        45,
        /^MFS BACKUP CRITICAL - big: big \(127\.0\.0\.1:\d+\): download \S+metadata\.mfs\.back: no answer for 15 s \(SSH keepalive\): the link went silent/,
        store,
      ),
    ).toEqual([]);
  }, 120_000);

  test('sshd killed mid-transfer, then refusing connections, then back: clear errors, then OK', async () => {
    own = await LabSshd.start(path.join(lab.dir, 'own-ssh'));
    const link = await FaultProxy.start({ host: '127.0.0.1', port: own.port }, { bytesPerSecond: 500_000 });
    try {
      const hostPub = (await fs.readFile(`${own.hostKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
      const ownKnown = path.join(lab.dir, 'known_hosts.own');
      await fs.writeFile(ownKnown, `[127.0.0.1]:${link.port} ${hostPub}\n[127.0.0.1]:${own.port} ${hostPub}\n`);
      const viaLink = await config('sshd-killed', { port: link.port, knownHosts: ownKnown, privateKey: own.clientKey });
      const run = startCli(['run', 'backup', '--config', viaLink.file]);
      const started = Date.now();
      await waitFor('the transfer to be under way', () => transferUnderWay(viaLink.store), 30_000, 20);
      const pid = own.daemon.pid;
      for (const p of [...descendants(pid), pid]) process.kill(p, 'SIGKILL');
      const killed = await run.done;
      const problems = await judge(
        'sshd killed mid-transfer',
        killed,
        (Date.now() - started) / 1000,
        20,
        /^MFS BACKUP CRITICAL - big: big \(127\.0\.0\.1:\d+\): download \S+metadata\.mfs\.back: connection lost \(sshd stopped or the network dropped\)/,
        viaLink.store,
      );

      const direct = await config('sshd-down', { port: own.port, knownHosts: ownKnown, privateKey: own.clientKey });
      const down = await timed(['run', 'backup', '--config', direct.file]);
      problems.push(
        ...(await judge(
          'sshd down: connection refused',
          down.res,
          down.seconds,
          5,
          /^MFS BACKUP CRITICAL - big: big \(127\.0\.0\.1:\d+\): cannot connect over SSH: connection refused \(is sshd running on that port\?\)/,
          direct.store,
        )),
      );

      own = await LabSshd.start(own.dir, { port: own.port });
      const back = await timed(['run', 'backup', '--config', direct.file]);
      if (back.res.code !== 0) problems.push(`sshd back: ${describeRun(back.res)}`);
      const after = await checkStore(direct.store);
      if (after.good.length !== 1 || after.problems.length) problems.push(`sshd back: store ${JSON.stringify(after)}`);
      expect(problems).toEqual([]);
    } finally {
      await link.stop();
    }
  });

  test('a host key that does not match known_hosts: refused before any transfer', async () => {
    const other = path.join(lab.dir, 'other_key');
    await execCapture('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other], { timeoutMs: 10_000 });
    const wrong = path.join(lab.dir, 'known_hosts.wrong');
    await fs.writeFile(
      wrong,
      `[127.0.0.1]:${lab.sshd!.port} ${(await fs.readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ')}\n`,
    );
    const { file, store } = await config('wrong-key', { port: lab.sshd!.port, knownHosts: wrong });
    const { res, seconds } = await timed(['run', 'backup', '--config', file]);
    expect(
      await judge(
        'wrong host key',
        res,
        seconds,
        10,
        /^MFS BACKUP CRITICAL - big: big \(127\.0\.0\.1:\d+\): cannot connect over SSH: host key of \[127\.0\.0\.1\]:\d+ does not match/,
        store,
      ),
    ).toEqual([]);
  });

  test('a slow link: the snapshot completes and verifies; with a job timeout shorter than the copy, a clean CRITICAL at the timeout', async () => {
    const knownHosts = await knownHostsAt(lab, slow.port, 'slow');
    const ok = await config('slow-ok', { port: slow.port, knownHosts });
    const done = await timed(['run', 'backup', '--config', ok.file]);
    const after = await checkStore(ok.store);
    const problems = [...crashProblems(done.res, true)];
    if (done.res.code !== 0 || after.good.length !== 1 || after.problems.length || after.temps.length)
      problems.push(`slow link: ${describeRun(done.res)}; store ${JSON.stringify(after)}`);
    console.log(`slow link (300 kB/s): ${done.seconds.toFixed(1)} s: ${describeRun(done.res)}`);
    rows.push({ fault: 'slow link (300 kB/s)', ok: problems.length === 0, note: `${done.seconds.toFixed(1)} s` });

    const tight = await config(
      'slow-timeout',
      { port: slow.port, knownHosts },
      { jobs: { backup: { timeoutSeconds: 3 } } },
    );
    const cut = await timed(['run', 'backup', '--config', tight.file]);
    problems.push(
      ...(await judge(
        'slow link beyond jobs.backup.timeoutSeconds',
        cut.res,
        cut.seconds,
        10,
        /^MFS BACKUP CRITICAL - timed out after 3 s \(jobs\.backup\.timeoutSeconds\)/,
        tight.store,
      )),
    );
    expect(problems).toEqual([]);
  }, 120_000);
});
