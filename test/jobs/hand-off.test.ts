import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { acquireLock, processAlive } from '../../lib/core/lock.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { runCli, startCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';

const NO_SCHEDULES = Object.fromEntries(
  ['backup', 'check-master', 'drill', 'prune', 'verify'].map((j) => [j, { enabled: false }]),
);

/**
 * The failover hook's short way in: `mfs-jobs run promote` hands the run to `mfs-jobs daemon` on the
 * standby over its Unix socket (no Node start-up of the whole program on the failover's critical
 * path), and runs it itself whenever the daemon is not there or does not take it. Real daemon, real
 * mfsmaster/metalogger lab, the real executable as ucarp's up-script calls it.
 */
describe('hand-off of failover hooks to the running daemon', () => {
  let lab: Lab;
  let standby: LabMaster;
  let config: string;
  let socket: string;
  let daemon: ReturnType<typeof startCli> | undefined;

  const logOf = (d: ReturnType<typeof startCli>) => d.out.stdout + d.out.stderr;
  /** How often the daemon's log says `what`. */
  const count = (what: string) => (daemon ? logOf(daemon).split(what).length - 1 : 0);
  const startDaemon = async () => {
    const d = startCli(['daemon', '--config', config]);
    await waitFor(
      'the daemon to listen',
      async () => logOf(d).includes('hand-off socket listening') || d.child.exitCode !== null,
    );
    if (d.child.exitCode !== null) throw new Error(`daemon exited: ${logOf(d)}`);
    return d;
  };
  const stopDaemon = async () => {
    if (!daemon) return;
    daemon.child.kill('SIGTERM');
    await daemon.done;
    daemon = undefined;
  };

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true, sshd: true });
    // The daemons' hand-off links go into the lab (the one killed on purpose cannot remove its own).
    process.env.MFS_JOBS_RUN_DIR = path.join(lab.dir, 'run-default');
    standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    const doc = lab.configDocument({
      standby: standbySection,
      jobs: { ...NO_SCHEDULES, promote: { fenceTimeoutSeconds: 1 } },
    });
    const ssh = doc.ssh;
    delete doc.ssh;
    doc.metaloggers = (doc.metaloggers as Record<string, unknown>[]).map((m) => ({ ...m, ssh }));
    config = path.join(lab.dir, 'hand-off.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
    // The default: <stateDir>/daemon.sock.
    socket = path.join(lab.dir, 'state', 'daemon.sock');
  }, 60_000);

  afterAll(async () => {
    await stopDaemon();
    const pid = standby ? await runningMasterPid(standby.dataPath) : undefined;
    if (pid) {
      process.kill(pid, 'SIGTERM');
      await waitFor('standby mfsmaster to exit', async () => !processAlive(pid), 30_000).catch(() =>
        process.kill(pid, 'SIGKILL'),
      );
    }
    await lab?.stop();
  });

  test('the daemon listens on <stateDir>/daemon.sock, 0600; a second daemon on the same socket refuses to start', async () => {
    daemon = await startDaemon();
    expect((await fs.stat(socket)).mode & 0o777).toBe(0o600);
    const second = await runCli(['daemon', '--config', config], { timeoutMs: 20_000 });
    expect(second.code).toBe(3);
    expect(second.stdout + second.stderr).toContain(
      `daemon.socket ${socket}: another mfs-jobs daemon is listening there`,
    );
  });

  test('after kill -9 of the master, `run promote` is handed to the daemon: same report, exit code and state as a run of its own', async () => {
    await lab.makeChanges('before', 10);
    await lab.mount!.unmount();
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    const version = (await lab.master.info()).metadataVersion;
    await lab.master.kill9();
    const res = await runCli(['run', 'promote', '--config', config, '--json']);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.summary).toMatch(
      new RegExp(`^promoted: serving metadata version ${version} in [\\d.]+ s from ml1; RPO 0 versions$`),
    );
    expect(report.details.handedOff).toBe(true);
    // Counted from the hook process's start, not the daemon's.
    expect(report.details.timings.startupMs).toBeGreaterThanOrEqual(0);
    expect(report.details.timings.startupMs).toBeLessThan(30_000);
    expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBeGreaterThanOrEqual(
      version,
    );
    const state = JSON.parse(await fs.readFile(path.join(lab.dir, 'state', 'state', 'promote.json'), 'utf8'));
    expect(state.details.handedOff).toBe(true);
    // Text output (what the up-script's log gets) as from a run of its own.
    const again = await runCli(['run', 'promote', '--config', config]);
    expect(again.stdout).toMatch(
      /^MFS PROMOTE OK - mfsmaster \(pid \d+\) already serves metadata version \d+; nothing changed/,
    );
    expect(again.code).toBe(0);
  });

  test('not handed off, but run here: another config file, a flag the daemon does not take, MFS_JOBS_NO_HAND_OFF=1', async () => {
    const other = path.join(lab.dir, 'other.yaml');
    await fs.copyFile(config, other);
    const before = count('hand-off taken');
    for (const [args, env] of [
      [['run', 'promote', '--config', other], {}],
      [['run', 'promote', '--config', config, '--verbose'], {}],
      [['run', 'promote', '--config', config], { MFS_JOBS_NO_HAND_OFF: '1' }],
    ] as const) {
      const res = await runCli([...args], { env });
      expect(res.stdout).toMatch(/^MFS PROMOTE OK - mfsmaster \(pid \d+\) already serves/);
    }
    // The daemon took none of them (it refused the other config file; the others never asked).
    expect(count('hand-off taken')).toBe(before);
    expect(daemon!.out.stdout + daemon!.out.stderr).toContain(
      `daemon serves ${await fs.realpath(config)}, not ${await fs.realpath(other)}`,
    );
  });

  test('the daemon dies while it holds a handed-off run: the hook says so and exits 3, and does not run it a second time', async () => {
    const lock = await acquireLock(path.join(lab.dir, 'state', 'locks'), 'failover');
    try {
      const before = count('hand-off taken');
      const hook = startCli(['run', 'demote', '--config', config]);
      await waitFor('the daemon to take the run', async () => count('hand-off taken') > before);
      daemon!.child.kill('SIGKILL');
      await daemon!.done;
      daemon = undefined;
      const res = await hook.done;
      expect(res.code).toBe(3);
      expect(res.stderr).toContain(`demote was handed to the daemon on ${socket}, which did not report back`);
      expect(res.stdout).toBe('');
    } finally {
      await lock.release();
    }
  });

  test('a stale socket (its daemon killed) is cleared by the next daemon; a file that is not a socket is never deleted', async () => {
    expect((await fs.lstat(socket)).isSocket()).toBe(true);
    daemon = await startDaemon();
    await stopDaemon();
    // The master a handed-off promote started is not the daemon's child: it serves on without it.
    expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBeGreaterThan(0);
    // A clean stop removes its socket.
    await expect(fs.lstat(socket)).rejects.toThrow(/ENOENT/);
    await fs.writeFile(socket, 'not a socket');
    const res = await runCli(['daemon', '--config', config], { timeoutMs: 20_000 });
    expect(res.code).toBe(3);
    expect(res.stdout + res.stderr).toContain(`daemon.socket ${socket} exists and is not a socket: not touching it`);
    expect(await fs.readFile(socket, 'utf8')).toBe('not a socket');
    // With no daemon there is nothing to hand off to: the hook runs it itself.
    await fs.rm(socket);
    const run = await runCli(['run', 'promote', '--config', config]);
    expect(run.stdout).toMatch(/^MFS PROMOTE OK - mfsmaster \(pid \d+\) already serves/);
  });

  test("the hook finds the daemon through its link in a run directory of root's own, without reading the config; a run directory others may write into is never used", async () => {
    const runDir = path.join(lab.dir, 'run');
    const env = { MFS_JOBS_RUN_DIR: runDir };
    const startWith = async (e: NodeJS.ProcessEnv) => {
      const d = startCli(['daemon', '--config', config], e);
      await waitFor(
        'the daemon to listen',
        async () => logOf(d).includes('hand-off socket listening') || d.child.exitCode !== null,
      );
      return d;
    };
    const yaml = await fs.readFile(config, 'utf8');
    daemon = await startWith(env);
    try {
      const links = await fs.readdir(runDir);
      expect(links).toEqual([expect.stringMatching(/^hand-off-[0-9a-f]{16}\.sock$/)]);
      expect((await fs.stat(runDir)).mode & 0o777).toBe(0o700);
      expect(await fs.readlink(path.join(runDir, links[0]!))).toBe(socket);
      // The config is garbage now: only a hook that never reads it can still reach the daemon.
      await fs.writeFile(config, 'daemon: [unclosed\n');
      const before = count('hand-off taken');
      const res = await runCli(['run', 'promote', '--config', config], { env });
      expect(res.stdout).toMatch(/^MFS PROMOTE OK - mfsmaster \(pid \d+\) already serves/);
      expect(count('hand-off taken')).toBe(before + 1);
    } finally {
      await fs.writeFile(config, yaml, { mode: 0o600 });
      await stopDaemon();
    }
    // A clean stop removes its link.
    expect(await fs.readdir(runDir)).toEqual([]);
    // Anyone may write into this run directory: the daemon makes no link there, the hook ignores one.
    await fs.chmod(runDir, 0o777);
    daemon = await startWith(env);
    expect(logOf(daemon)).toContain(
      `no hand-off link in the run directory (${runDir} is not a directory of ours that only we can write)`,
    );
    expect(await fs.readdir(runDir)).toEqual([]);
    const res = await runCli(['run', 'promote', '--config', config], { env });
    expect(res.stdout).toMatch(/^MFS PROMOTE OK - mfsmaster \(pid \d+\) already serves/);
    await stopDaemon();
  });
});
