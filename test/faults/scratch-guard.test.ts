import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { SCRATCH_HOST, stopScratchMaster, type Scratch } from '../../lib/moosefs/scratchmaster.js';
import { listenPort } from '../../lib/core/net.js';
import { GUARD_TABLE_PREFIX } from '../../lib/moosefs/scratch-guard.js';
import { runCli } from '../helpers/cli.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { MetadataThief } from '../lab/metadata-thief.js';
import { processesIn } from '../lab/proc.js';
import { startScratchAsDrill } from '../lab/scratch.js';
import { recordFaults, tearDownFaults, type Started } from './results.js';

const SECRET = 'salaries-2026-CONFIDENTIAL';

/** Every TCP port process `pid` listens on (its socket inodes in /proc/net/tcp and tcp6). */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await fs.readdir(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
    if (m) inodes.add(m[1]!);
  }
  const rows = (await Promise.all(['tcp', 'tcp6'].map((t) => fs.readFile(`/proc/net/${t}`, 'utf8'))))
    .join('\n')
    .split('\n');
  const fields = rows.map((l) => l.trim().split(/\s+/)).filter((f) => f[3] === '0A' && inodes.has(f[9]!));
  return fields.map((f) => parseInt(f[1]!.split(':')[1]!, 16)).sort((a, b) => a - b);
}

const drillTables = async () =>
  (await execCapture('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.includes(GUARD_TABLE_PREFIX));

/**
 * A local user against the drill's scratch master on 3.0 and 4.x (issue #23 case 7): the metalogger
 * port gives the restored image to anyone who asks (no registration, no export, no password). The
 * thief is a real process of user nobody that finds the ports in /proc/net/tcp and speaks the
 * metalogger protocol. Against a scratch master set up as the drill did before (no guard) it downloads
 * the image with the namespace's names; against a real `mfs-jobs drill` it is reset on every port,
 * every time, while the drill (root) restores, asks and stops its master, and no table stays behind.
 */
describe.each<LabVersion>(['3.0.117', '4.59.2'])(
  "a local user downloads the drill's restored metadata (MooseFS %s)",
  (version) => {
    const lab = labGeneration(version);
    let cluster: Lab;
    let config: string;
    let scratch: Scratch | undefined;
    const started: Started[] = [];
    /** The lab's config, the master read from its local DATA_PATH (no sshd here). */
    const write = (extra: Record<string, unknown> = {}, name?: string) =>
      cluster.writeConfig({ masters: [{ ...masterEntry('master', cluster.master), local: true }], ...extra }, name);

    beforeAll(async () => {
      cluster = await Lab.start({ lab, metalogger: false, sshd: false });
      started.push(cluster);
      await cluster.makeChanges(SECRET, 3);
      await cluster.saveImage();
      config = await write();
      const backup = await runCli(['run', 'backup', '--config', config]);
      expect(backup.stdout).toMatch(/^MFS BACKUP OK/);
    }, 120_000);

    afterAll(async () => {
      await tearDownFaults([scratch && (() => stopScratchMaster(scratch!)), ...started.reverse()]);
    });

    test('without the guard (the drill before this fix), the thief downloads the image and reads the names; the master listens on the three ports only', async () => {
      const sm = await startScratchAsDrill(path.join(cluster.dir, 'unguarded'), cluster.master.dataPath, lab);
      scratch = sm.scratch;
      expect(sm.startCode).toBe(0);
      // The three ports the guard covers are all it listens on.
      const guarded = [sm.ports.matoml, sm.ports.matocs, sm.ports.matocl];
      expect(await listeningPorts((await runningMasterPid(sm.scratch.dataPath))!)).toEqual(
        [...guarded].sort((a, b) => a - b),
      );
      const thief = await MetadataThief.start(guarded, SECRET);
      started.push(() => thief.kill());
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const got = await thief.stop();
      await stopScratchMaster(sm.scratch);
      scratch = undefined;
      expect({ head: got.head, secretSeen: got.secretSeen }).toEqual({ head: 'MFSM 2.0', secretSeen: true });
      expect(got.downloaded).toBeGreaterThan(1000);
    }, 60_000);

    test('during a real drill the thief is reset on every port, every time, and gets nothing; the drill serves and leaves no table', async () => {
      const ports = {
        matoml: await listenPort(SCRATCH_HOST),
        matocs: await listenPort(SCRATCH_HOST),
        matocl: await listenPort(SCRATCH_HOST),
      };
      const drillConfig = await write({ jobs: { drill: { ports } } }, 'drill.yaml');
      const thief = await MetadataThief.start([ports.matoml, ports.matocs, ports.matocl], SECRET);
      started.push(() => thief.kill());
      const res = await runCli(['run', 'drill', '--config', drillConfig, '--json']);
      const got = await thief.stop();
      const report = JSON.parse(res.stdout);
      expect(`${report.status}: ${report.summary}`).toMatch(/^OK: /);
      // The thief raced the drill: it saw the scratch master listen, and tried.
      expect(got.seen).toContain(ports.matoml);
      expect(got.attempts).toBeGreaterThan(0);
      expect({ connected: got.connected, downloaded: got.downloaded, secretSeen: got.secretSeen }).toEqual({
        connected: {},
        downloaded: 0,
        secretSeen: false,
      });
      expect(got.refused).toBe(got.attempts);
      expect(report.lines).toContain(
        `scratch master: its ports on loopback take connections from uid 0 only (nftables table ${report.details.scratchGuard})`,
      );
      // Nothing left behind: not its table (other suites' drills and guards may run beside it in another
      // jest worker, each with a table of its own), no scratch master, no scratch directory.
      expect(report.details.scratchGuard).toMatch(new RegExp(`^${GUARD_TABLE_PREFIX}\\d+$`));
      expect(await drillTables()).not.toContain(`table inet ${report.details.scratchGuard}`);
      expect(await processesIn(path.join(cluster.dir, 'state', 'drill'))).toEqual([]);
      expect(
        (await fs.readdir(path.join(cluster.dir, 'state', 'drill'))).filter((n) => n.startsWith('drill-')),
      ).toEqual([]);
      recordFaults({
        area: 'local attacker',
        fault: `download a drill's restored metadata over the metalogger port (MooseFS ${version})`,
        injected: got.attempts,
        survived: got.attempts,
        dataLost: 0,
        lostRestorePoints: 0,
        note: 'reset by the nftables guard; downloaded the image without it',
      });
    }, 120_000);

    if (version !== '3.0.117') return;

    test('where the guard cannot be put up (nft fails) the drill refuses before its scratch master starts and leaves no copy; jobs.drill.allowUnguarded drills and WARNs', async () => {
      const fake = path.join(cluster.dir, 'no-nft');
      await fs.mkdir(fake, { mode: 0o700 });
      await fs.writeFile(
        path.join(fake, 'nft'),
        '#!/bin/sh\necho "Error: Could not process rule: Operation not permitted" >&2\nexit 1\n',
        { mode: 0o700 },
      );
      const env = { PATH: `${fake}:${process.env.PATH}` };
      const before = await fs.readdir(path.join(cluster.dir, 'state', 'drill')).catch(() => []);
      const refused = await runCli(['run', 'drill', '--config', config], { env });
      expect(refused.stdout.split('\n')[0]).toBe(
        "MFS DRILL UNKNOWN - drill refused: nft failed (Error: Could not process rule: Operation not permitted): any local user could download the restored metadata from the scratch master's metalogger port while the drill runs; install nftables and run it as root, or set jobs.drill.allowUnguarded: true",
      );
      expect(refused.code).toBe(3);
      expect(await fs.readdir(path.join(cluster.dir, 'state', 'drill')).catch(() => [])).toEqual(before);

      const allowed = await write({ jobs: { drill: { allowUnguarded: true } } }, 'unguarded.yaml');
      const res = await runCli(['run', 'drill', '--config', allowed, '--json'], { env });
      const report = JSON.parse(res.stdout);
      expect(report.status).toBe('WARNING');
      expect(report.summary).toMatch(
        /^scratch master was unguarded \(jobs\.drill\.allowUnguarded\) — snapshot \S+ restored to metadata version \d+ and served/,
      );
      expect(report.lines).toContain(
        "scratch master unguarded (jobs.drill.allowUnguarded): nft failed (Error: Could not process rule: Operation not permitted): any local user could download the restored metadata from the scratch master's metalogger port while the drill runs",
      );
      expect(report.details.scratchGuard).toBeNull();
      expect(res.code).toBe(1);
    }, 120_000);
  },
);
