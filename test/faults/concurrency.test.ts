import path from 'node:path';
import { listSnapshots } from '../../lib/store/manifest.js';
import { startCli, type CliResult } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import { LabMount, type LabMaster } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { FaultProxy, knownHostsAt } from '../lab/proxy.js';
import { checkStore, iterations, sleep } from './faults.js';
import { recordFaults, tearDownFaults } from './results.js';

/**
 * The same job started twice at the same moment — two crontab lines, or the daemon's schedule and an
 * operator's `run` — must run once: the other reports "skipped: job backup is already running (pid …)"
 * and exits 3. Proven from the runs' own logs: the times each run held the lock never overlap.
 */

interface Held {
  who: string;
  from: number;
  to: number;
}

interface LogEntry {
  message: string;
  timestamp: string;
  summary?: string;
}

function entries(stderr: string): LogEntry[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogEntry);
}

/** The intervals a process held the job's lock: from "job started" to the next "job finished". */
function heldIntervals(who: string, stderr: string): Held[] {
  const out: Held[] = [];
  let from: number | undefined;
  for (const e of entries(stderr)) {
    if (e.message === 'job started') from = Date.parse(e.timestamp);
    if (e.message === 'job finished' && from !== undefined) {
      out.push({ who, from, to: Date.parse(e.timestamp) });
      from = undefined;
    }
  }
  return out;
}

function overlaps(all: Held[]): string[] {
  const sorted = [...all].sort((a, b) => a.from - b.from);
  const out: string[] = [];
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1]!, sorted[i]!];
    if (b.from < a.to)
      out.push(
        `${a.who} held the lock ${new Date(a.from).toISOString()}..${new Date(a.to).toISOString()} while ${b.who} started at ${new Date(b.from).toISOString()}`,
      );
  }
  return out;
}

const skippedBy = (pid: number) =>
  new RegExp(
    `^MFS BACKUP UNKNOWN - skipped: job backup is already running \\(pid ${pid} since [^,]+, lock \\S+backup\\.lock\\)`,
  );

describe('faults: the same job started twice at the same moment', () => {
  let lab: Lab;
  let big: LabMaster;
  let mount: LabMount;
  let link: FaultProxy;
  let config: string;

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: false });
    big = await bigMaster(path.join(lab.dir, 'big'), 40_000);
    mount = await LabMount.mount(
      path.join(lab.dir, 'mnt-big'),
      { host: '127.0.0.1', port: big.ports.cl },
      path.join(lab.dir, 'mfsmount-big.log'),
    );
    link = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port }, { bytesPerSecond: 2_000_000 });
    const via = { port: link.port, knownHosts: await knownHostsAt(lab, link.port, 'slow') };
    config = await lab.writeConfig({
      masters: [masterEntry('big', big, via)],
      snapshotStore: {
        path: path.join(lab.dir, 'store'),
        retention: { keepLast: 50, keepHourly: 0, keepDaily: 0, keepWeekly: 0 },
      },
      // Only backup in the daemon: the other jobs' default schedules must not wake up mid-test.
      jobs: {
        backup: { schedule: '* * * * * *', snapshotOnNewChangelogs: true },
        ...Object.fromEntries(['check-master', 'verify', 'drill', 'prune'].map((j) => [j, { enabled: false }])),
      },
    });
  });
  afterAll(async () => {
    await tearDownFaults([link, mount, big, lab]);
  });

  test('two `run backup` at once, again and again: one runs, the other is skipped naming the first', async () => {
    const trials = iterations('CONCURRENT_RUNS', 3, 20);
    const failures: string[] = [];
    let survived = 0;
    for (let i = 0; i < trials; i++) {
      await mount.makeChanges(`pair-${i}`, 1);
      const before = (await listSnapshots(path.join(lab.dir, 'store'), {})).snapshots.length;
      const [a, b] = [startCli(['run', 'backup', '--config', config]), startCli(['run', 'backup', '--config', config])];
      const [ra, rb] = await Promise.all([a.done, b.done]);
      const pids = [a.child.pid!, b.child.pid!];
      const results: CliResult[] = [ra, rb];
      const ran = results.filter((r) => r.code === 0);
      const skipped = results
        .map((r, k) => (skippedBy(pids[1 - k]!).test(r.stdout) && r.code === 3 ? k : -1))
        .filter((k) => k >= 0);
      const problems: string[] = [];
      if (ran.length !== 1 || skipped.length !== 1)
        problems.push(
          `expected one OK and one skipped naming the other's pid, got: ${results.map((r) => `exit ${r.code}: ${r.stdout.split('\n')[0]}`).join(' | ')}`,
        );
      problems.push(
        ...overlaps([...heldIntervals(`run ${pids[0]}`, ra.stderr), ...heldIntervals(`run ${pids[1]}`, rb.stderr)]),
      );
      const after = await checkStore(path.join(lab.dir, 'store'));
      if (after.good.length !== before + 1 || after.problems.length)
        problems.push(`expected exactly one new snapshot: ${before} → ${JSON.stringify(after)}`);
      if (problems.length === 0) survived++;
      failures.push(...problems.map((p) => `pair ${i}: ${p}`));
    }
    recordFaults({
      area: 'concurrency',
      fault: 'two `run backup` at the same moment',
      injected: trials,
      survived,
      dataLost: 0,
      lostRestorePoints: 0,
    });
    expect(failures).toEqual([]);
  });

  test('the daemon (schedule: every second) and a crontab `run` at the same second: never both; the loser says skipped', async () => {
    const daemon = startCli(['daemon', '--config', config]);
    const failures: string[] = [];
    const runs: { pid: number; res: CliResult }[] = [];
    try {
      await waitFor(
        'the daemon to run its first backup',
        async () => entries(daemon.out.stderr).some((e) => e.message === 'job finished'),
        30_000,
      );
      // How long a `run` takes from spawn to its lock: aim each one to reach the lock on a full second.
      const trials = iterations('DAEMON_RUNS', 4, 20);
      for (let i = 0; i < trials; i++) {
        await mount.makeChanges(`daemon-${i}`, 1);
        const lead = 450 + (i % 3) * 100;
        await sleep(1000 - (Date.now() % 1000) + 1000 - lead);
        const run = startCli(['run', 'backup', '--config', config]);
        runs.push({ pid: run.child.pid!, res: await run.done });
      }
      await sleep(1500);
    } finally {
      daemon.child.kill('SIGTERM');
    }
    const end = await daemon.done;
    if (end.code !== 0) failures.push(`daemon ended with ${end.code ?? end.signal}`);
    const daemonPid = daemon.child.pid!;
    const held = [
      ...heldIntervals(`daemon ${daemonPid}`, daemon.out.stderr),
      ...runs.flatMap((r) => heldIntervals(`run ${r.pid}`, r.res.stderr)),
    ];
    failures.push(...overlaps(held));
    let survived = 0;
    let runWon = 0;
    let daemonWon = 0;
    for (const r of runs) {
      const ok = r.res.code === 0;
      const skipped = r.res.code === 3 && skippedBy(daemonPid).test(r.res.stdout);
      // The daemon's own view: a fire that met this run's lock says so.
      const daemonSkipped = entries(daemon.out.stderr).some(
        (e) => e.message === 'job skipped' && (e.summary ?? '').includes(`pid ${r.pid} `),
      );
      if (ok) runWon++;
      if (skipped) daemonWon++;
      if (ok || skipped) survived++;
      else
        failures.push(`run ${r.pid}: neither ran nor was skipped: exit ${r.res.code}: ${r.res.stdout.split('\n')[0]}`);
      console.log(
        `crontab run ${r.pid}: ${ok ? 'ran' : skipped ? 'skipped (the daemon held the lock)' : 'FAILED'}${daemonSkipped ? '; a daemon fire was skipped while it ran' : ''}`,
      );
    }
    const daemonSkips = entries(daemon.out.stderr).filter((e) => e.message === 'job skipped').length;
    console.log(
      `daemon: ${heldIntervals('d', daemon.out.stderr).length} runs, ${daemonSkips} fires skipped on the lock; crontab runs: ${runWon} ran, ${daemonWon} skipped`,
    );
    recordFaults({
      area: 'concurrency',
      fault: 'daemon (every second) + crontab `run` at the same second',
      injected: runs.length,
      survived,
      dataLost: 0,
      lostRestorePoints: 0,
      note: `${runWon} run won, ${daemonWon} daemon won, ${daemonSkips} daemon fires skipped`,
    });
    expect(failures).toEqual([]);
    // The collisions really happened, both ways round.
    expect(daemonWon + daemonSkips).toBeGreaterThan(0);
    expect((await checkStore(path.join(lab.dir, 'store'))).problems).toEqual([]);
  }, 120_000);
});
