import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { execCapture } from '../../lib/core/exec.js';
import { processAlive } from '../../lib/core/lock.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { writeSnapshot } from '../helpers/snapshot-fixture.js';
import { dropMount, sha256, writeDurably } from '../lab/failover.js';
import { generationConfig, labGeneration, type LabVersion } from '../lab/generations.js';
import { LabMount, masterConfigText } from '../lab/moosefs.js';
import { NetLab, NsChunkserver, NsMaster, type Machine } from '../lab/netns.js';
import { sleep, waitFor } from '../lab/proc.js';

/**
 * Point-in-time recovery against the real thing: a master, a chunkserver (file data) and a client in a
 * network namespace of their own (a chunkserver refuses a 127.x master). Files are written, the master's
 * version noted, then the files are deleted (trash time > 0) and more are written; backup takes a snapshot;
 * `mfs-jobs restore --to-version` / `--to-time` rebuilds a fresh DATA_PATH and starts it on the same
 * address; a fresh mount reads the deleted files back byte for byte, and the later files are absent.
 */

interface RestoreReport {
  status: string;
  exitCode: number;
  summary: string;
  details: {
    restoredVersion: number;
    servedVersion?: number;
    applied: number;
    leftOut: {
      count: number;
      deletions: number;
      deletionsByOp: Record<string, number>;
      first: { version: number; op: string } | null;
      last: { version: number } | null;
    };
    trash: { seconds: number; basis: string; warning: string | null };
    movedAside: string | null;
    placed?: string[];
    startCommand: string;
    timings: Record<string, number>;
  };
}

async function filesUnder(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort())
    out.set(name, sha256(await fs.readFile(path.join(dir, name))));
  return out;
}

describe.each<LabVersion>(['3.0.117', '4.59.2', '1.6.27'])(
  'restore on MooseFS %s: a master, a chunkserver and a client in a namespace',
  (version) => {
    const lab = labGeneration(version);
    let dir: string;
    let net: NetLab;
    let M: Machine;
    let master: NsMaster;
    let cs: NsChunkserver;
    let chunkDisk: string;
    let mount: LabMount | undefined;
    let config: string;
    const extraMounts: LabMount[] = [];
    /** Restored DATA_PATHs: their masters are stopped by PID at the end. */
    const restored: string[] = [];
    const kept = new Map<string, string>();
    const doomed = new Map<string, string>();
    const later = new Map<string, string>();
    let targetVersion = 0;
    let targetTime = '';
    let snapshotId = '';
    let lastLineAtTarget = 0;

    const cli = (args: string[]): Promise<CliResult> =>
      runCli([...args, '--config', config], { wrap: M.wrap, timeoutMs: 180_000 });
    const report = (res: CliResult): RestoreReport => {
      try {
        return JSON.parse(res.stdout) as RestoreReport;
      } catch {
        throw new Error(`not JSON (exit ${res.code}): ${res.stdout}${res.stderr}`);
      }
    };

    async function write(into: Map<string, string>, sub: string, count: number): Promise<void> {
      await fs.mkdir(path.join(mount!.dir, sub), { recursive: true });
      for (let i = 0; i < count; i++) {
        const data = randomBytes(20_000 + i * 7919);
        await writeDurably(path.join(mount!.dir, sub, `file-${i}`), data);
        into.set(`${sub}/file-${i}`, sha256(data));
      }
    }

    async function lastLine(): Promise<number> {
      const text = await fs.readFile(path.join(master.dataPath, 'changelog.0.mfs'), 'latin1');
      return Number(/^(\d+):/.exec(text.trimEnd().split('\n').pop() ?? '')?.[1] ?? 0);
    }

    /** The master's changelog on disk holds everything it served (its background writer may lag a moment). */
    async function changelogCaughtUp(): Promise<number> {
      const v = (await master.info()).metadataVersion;
      await waitFor(`changelog.0.mfs to reach version ${v - 1}`, async () => (await lastLine()) >= v - 1);
      return v;
    }

    async function freshDataPath(name: string): Promise<{ dataPath: string; cfg: string }> {
      const base = path.join(dir, name);
      const dataPath = path.join(base, 'data');
      await fs.mkdir(dataPath, { recursive: true, mode: 0o700 });
      await fs.writeFile(path.join(base, 'mfsexports.cfg'), '*\t/\trw,alldirs,maproot=0\n');
      await fs.writeFile(path.join(base, 'mfstopology.cfg'), '');
      const cfg = path.join(base, 'mfsmaster.cfg');
      await fs.writeFile(cfg, masterConfigText({ dataPath, dir: base, host: '0.0.0.0', ports: NsMaster.PORTS, lab }));
      restored.push(dataPath);
      return { dataPath, cfg };
    }

    async function stopRestored(dataPath: string): Promise<void> {
      const pid = await runningMasterPid(dataPath);
      if (pid === undefined) return;
      process.kill(pid, 'SIGTERM');
      await waitFor(`restored mfsmaster ${pid} to stop`, async () => !processAlive(pid), 60_000).catch(() =>
        process.kill(pid, 'SIGKILL'),
      );
    }

    /** A fresh client (no page cache of the old one) reads what the restored master serves. */
    async function readBack(name: string): Promise<LabMount> {
      await cs.waitRegistered(master, 30_000);
      const m = await LabMount.mount(
        path.join(dir, name),
        { host: M.ip, port: NsMaster.PORTS.cl },
        path.join(dir, `${name}.log`),
        { wrap: M.wrap, lab },
      );
      extraMounts.push(m);
      return m;
    }

    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-restore-'));
      net = await NetLab.create(['M'], '10.79.0');
      M = net.machine('M');
      master = await NsMaster.create(M, path.join(dir, 'master'), { bootstrap: true, lab });
      await master.start();
      // The chunkserver's disk is a tmpfs of its own (see test/lab/failover.ts: a master wants > 1 GiB free there).
      const csDir = path.join(dir, 'cs');
      chunkDisk = path.join(csDir, 'chunks');
      await fs.mkdir(chunkDisk, { recursive: true, mode: 0o700 });
      const mounted = await execCapture('mount', [
        '-t',
        'tmpfs',
        '-o',
        'size=4g,mode=0700',
        'mfs-jobs-restore-chunks',
        chunkDisk,
      ]);
      if (mounted.code !== 0) throw new Error(`cannot mount a tmpfs on ${chunkDisk}: ${mounted.stderr.trim()}`);
      cs = await NsChunkserver.start(M, csDir, M.ip, lab);
      await cs.waitRegistered(master, 30_000);
      mount = await LabMount.mount(
        path.join(dir, 'mnt'),
        { host: M.ip, port: NsMaster.PORTS.cl },
        path.join(dir, 'mnt.log'),
        { wrap: M.wrap, lab },
      );
      const doc = {
        timezone: 'UTC',
        stateDir: path.join(dir, 'state'),
        masters: [{ name: 'master', host: M.ip, dataPath: master.dataPath, cliPort: NsMaster.PORTS.cl, local: true }],
        // Plain files: the damaged copies below are made from the stored changelogs themselves.
        snapshotStore: { path: path.join(dir, 'snapshots'), compression: { type: 'none' } },
        ...generationConfig(lab),
        jobs: {},
      };
      config = path.join(dir, 'mfs-jobs.yaml');
      await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });

      await write(kept, 'keep', 3);
      // A real image (a clean restart writes metadata.mfs): the restore point's image is older than the target.
      await dropMount(mount);
      await master.restart();
      await cs.waitRegistered(master, 30_000);
      mount = await LabMount.mount(
        path.join(dir, 'mnt'),
        { host: M.ip, port: NsMaster.PORTS.cl },
        path.join(dir, 'mnt.log'),
        { wrap: M.wrap, lab },
      );
      await write(doomed, 'doomed', 3);
      targetVersion = await changelogCaughtUp();
      lastLineAtTarget = await lastLine();
      // Whole seconds apart: the changelog's timestamps are seconds.
      await sleep(1_100);
      targetTime = new Date().toISOString();
      await sleep(1_100);
      for (const name of doomed.keys()) await fs.rm(path.join(mount.dir, name));
      await write(later, 'later', 2);
      await changelogCaughtUp();
      const backup = await cli(['run', 'backup']);
      expect({ code: backup.code, out: backup.stdout }).toMatchObject({ code: 0 });
      snapshotId = path.basename(await fs.readlink(path.join(dir, 'snapshots', 'latest')));
      // The cluster's master is gone (the operator's bad day): the restored one takes its address.
      await dropMount(mount);
      mount = undefined;
      await master.stop();
    }, 300_000);

    afterAll(async () => {
      for (const m of extraMounts) await dropMount(m);
      await dropMount(mount);
      for (const d of restored) await stopRestored(d).catch(() => undefined);
      await cs?.daemon.kill9().catch(() => undefined);
      await master?.kill9().catch(() => undefined);
      if (chunkDisk) await execCapture('umount', [chunkDisk]).catch(() => undefined);
      await net?.destroy();
      expect(await net.leftovers()).toEqual([]);
      if (!process.env.MFS_JOBS_KEEP_TEST_DIR) await fs.rm(dir, { recursive: true, force: true });
    }, 120_000);

    test('the master reports version L+1 after changelog line L: --to-version N means the lines below N', () => {
      // mfscli -SIM (or CLTOMA_INFO) said targetVersion while the changelog's last line was targetVersion - 1.
      expect(lastLineAtTarget).toBe(targetVersion - 1);
    });

    test('--to-version: a fresh DATA_PATH, started; the deleted files read back intact, the later ones are absent', async () => {
      const { dataPath, cfg } = await freshDataPath('restored-version');
      const res = await cli([
        'restore',
        '--latest',
        '--to-version',
        String(targetVersion),
        '--data-path',
        dataPath,
        '--start',
        '--master-config',
        cfg,
        '--json',
      ]);
      const r = report(res);
      expect({ status: r.status, summary: r.summary }).toMatchObject({ status: 'OK' });
      expect(res.code).toBe(0);
      expect(r.details.restoredVersion).toBe(targetVersion);
      expect(r.details.servedVersion).toBeGreaterThanOrEqual(targetVersion);
      expect(r.details.leftOut.first?.version).toBe(targetVersion);
      expect(r.details.leftOut.deletionsByOp.UNLINK).toBeGreaterThanOrEqual(doomed.size);
      expect(r.details.trash).toMatchObject({ seconds: 86_400, warning: null });
      // Where the time went, phase by phase (bench case `restore` reports their medians).
      const phases = ['placeSeconds', 'cutSeconds', 'dataPathSeconds', 'mfsmasterSeconds', 'servingSeconds'];
      expect(Object.keys(r.details.timings).sort()).toEqual([...phases].sort());
      for (const p of phases) expect({ p, ok: r.details.timings[p]! >= 0 }).toEqual({ p, ok: true });
      // Before 1.7 the sessions file goes beside the image (mfsmetarestore's master wants it).
      expect(r.details.placed).toEqual([
        'metadata.mfs.back',
        'changelog.1.mfs',
        ...(lab.generation.sessionsFiles.length ? ['sessions.mfs'] : []),
      ]);
      const m = await readBack('mnt-version');
      for (const [name, sum] of [...kept, ...doomed])
        expect({ name, sum: sha256(await fs.readFile(path.join(m.dir, name))) }).toEqual({ name, sum });
      expect(await filesUnder(path.join(m.dir, 'later'))).toEqual(new Map());
      await dropMount(m);
      await stopRestored(dataPath);
    });

    test('--to-time: the same, cut at the last change at or before the time', async () => {
      const { dataPath, cfg } = await freshDataPath('restored-time');
      const res = await cli([
        'restore',
        '--snapshot',
        snapshotId,
        '--to-time',
        targetTime,
        '--data-path',
        dataPath,
        '--start',
        '--master-config',
        cfg,
        '--json',
      ]);
      const r = report(res);
      expect({ status: r.status, summary: r.summary }).toMatchObject({ status: 'OK' });
      // The master may have written lines of its own between the target version and the time.
      expect(r.details.restoredVersion).toBeGreaterThanOrEqual(targetVersion);
      expect(r.details.leftOut.deletionsByOp.UNLINK).toBeGreaterThanOrEqual(doomed.size);
      const m = await readBack('mnt-time');
      for (const [name, sum] of [...kept, ...doomed])
        expect({ name, sum: sha256(await fs.readFile(path.join(m.dir, name))) }).toEqual({ name, sum });
      expect(await filesUnder(path.join(m.dir, 'later'))).toEqual(new Map());
      await dropMount(m);
      await stopRestored(dataPath);
    });

    test('without --start: existing content is moved aside, the start command is printed; --dry-run writes nothing', async () => {
      const { dataPath, cfg } = await freshDataPath('restored-plain');
      await fs.writeFile(path.join(dataPath, 'old-file'), 'before');
      const dry = await cli([
        'restore',
        '--latest',
        '--to-version',
        String(targetVersion),
        '--data-path',
        dataPath,
        '--master-config',
        cfg,
        '--dry-run',
      ]);
      expect(dry.stdout).toContain(
        `MFS RESTORE OK - dry run: would restore snapshot ${snapshotId} into ${dataPath} at metadata version ${targetVersion}`,
      );
      expect(await fs.readdir(dataPath)).toEqual(['old-file']);
      const res = await cli([
        'restore',
        '--latest',
        '--to-version',
        String(targetVersion),
        '--data-path',
        dataPath,
        '--master-config',
        cfg,
      ]);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain(
        lab.generation.restore === 'mfsmaster-a'
          ? `start it with: ${lab.mfsmaster} -c ${cfg} -a start`
          : `start it with: ${lab.mfsmetarestore} -m ${dataPath}/metadata.mfs.back -o ${dataPath}/metadata.mfs ${dataPath}/changelog.1.mfs && ${[lab.mfsmaster, ...lab.generation.startArgs(cfg, { autoRestore: false, foreground: false })].join(' ')}`,
      );
      expect(res.stdout).toMatch(
        /left out: \d+ change\(s\) after the target, from version \d+ at \S+ \(\w+\) to version \d+/,
      );
      const entries = (await fs.readdir(dataPath)).sort();
      expect(entries.filter((n) => !n.startsWith('mfs-jobs-aside-'))).toEqual([
        'changelog.1.mfs',
        'metadata.mfs.back',
        ...(lab.generation.sessionsFiles.length ? ['sessions.mfs'] : []),
      ]);
      const aside = entries.find((n) => n.startsWith('mfs-jobs-aside-'))!;
      expect(await fs.readFile(path.join(dataPath, aside, 'old-file'), 'utf8')).toBe('before');
      // --from a DATA_PATH (here the old master's, local): its newest image is past the target, an older one is not.
      const fromMaster = await cli([
        'restore',
        '--from',
        'master',
        '--to-version',
        String(targetVersion),
        '--data-path',
        path.join(dir, 'from-master'),
        '--dry-run',
      ]);
      expect({ code: fromMaster.code, out: fromMaster.stdout.split('\n')[0] }).toEqual({
        code: 0,
        out: expect.stringContaining(
          `MFS RESTORE OK - dry run: would restore master master (${master.dataPath}) into ${path.join(dir, 'from-master')} at metadata version ${targetVersion}`,
        ),
      });
      // A time target learns only from the newest image's changelogs that it is too new: the older image is taken.
      const byTime = await cli([
        'restore',
        '--from',
        'master',
        '--to-time',
        targetTime,
        '--data-path',
        path.join(dir, 'from-master'),
        '--dry-run',
      ]);
      expect({ code: byTime.code, out: byTime.stdout.split('\n')[0] }).toEqual({
        code: 0,
        out: expect.stringContaining(`MFS RESTORE OK - dry run: would restore master master (${master.dataPath})`),
      });
      expect(byTime.stdout).toMatch(
        /passed over: master master \(.*\): --to-time \S+ is older than master master \(.*\): its image metadata\.mfs\S* is at version \d+/,
      );
      // The cut changelog holds exactly the lines from the image to the target, whole.
      const lines = (await fs.readFile(path.join(dataPath, 'changelog.1.mfs'), 'latin1')).split('\n');
      expect(lines.pop()).toBe('');
      expect(Number(/^(\d+):/.exec(lines[lines.length - 1]!)?.[1])).toBe(targetVersion - 1);
    });

    test('drill --to-version / --to-time: the same target in a scratch master, with the counts of what is left out', async () => {
      const res = await cli(['drill', '--snapshot', snapshotId, '--to-version', String(targetVersion), '--json']);
      const r = JSON.parse(res.stdout) as {
        status: string;
        summary: string;
        details: {
          restoredVersion: number;
          expectedVersion: number;
          target: string;
          leftOut: { count: number; deletions: number };
        };
      };
      expect({ status: r.status, summary: r.summary }).toMatchObject({
        status: 'OK',
        summary: expect.stringContaining(`restored to metadata version ${targetVersion} and served`),
      });
      expect(r.details).toMatchObject({
        expectedVersion: targetVersion,
        restoredVersion: targetVersion,
        target: `--to-version ${targetVersion}`,
      });
      expect(r.details.leftOut.deletions).toBeGreaterThanOrEqual(doomed.size);
      const byTime = await cli(['drill', '--snapshot', snapshotId, '--to-time', targetTime]);
      // The whole output on a failure: the drill's summary names what went wrong.
      expect({ code: byTime.code, out: byTime.code === 0 ? '' : byTime.stdout + byTime.stderr }).toEqual({
        code: 0,
        out: '',
      });
      expect(byTime.stdout).toMatch(
        new RegExp(
          `cut at --to-time \\S+: version \\d+; \\d+ change\\(s\\) left out after it \\(versions \\d+\\.\\.\\d+\\), \\d+ of them deletions`,
        ),
      );
    });

    test('bad input: before the image, beyond the newest, a hole, a damaged line, a running master — one clear line each, nothing written; a short SETTRASHTIME warns', async () => {
      const { dataPath } = await freshDataPath('refused');
      await fs.writeFile(path.join(dataPath, 'old-file'), 'before');
      const staging = path.join(dir, 'state', 'restore');
      const snapshot = (await fs.readdir(path.join(dir, 'snapshots', 'snapshots'))).find((n) => n === snapshotId)!;
      const image = (
        JSON.parse(await fs.readFile(path.join(dir, 'snapshots', 'snapshots', snapshot, 'manifest.json'), 'utf8')) as {
          image: { version: number; name: string };
        }
      ).image;
      const refused = async (args: string[], pattern: RegExp) => {
        const res = await cli(['restore', ...args, '--data-path', dataPath]);
        expect({ code: res.code, out: res.stdout.split('\n')[0] }).toEqual({
          code: 2,
          out: expect.stringMatching(pattern),
        });
        expect(await fs.readdir(dataPath)).toEqual(['old-file']);
        expect((await fs.readdir(staging)).filter((n) => n.startsWith('stage-'))).toEqual([]);
      };
      await refused(
        ['--snapshot', snapshotId, '--to-version', String(image.version - 1)],
        new RegExp(
          `^MFS RESTORE CRITICAL - .*--to-version ${image.version - 1} is older than snapshot ${snapshotId}: its image ${image.name} is at version ${image.version}`,
        ),
      );
      await refused(
        ['--snapshot', snapshotId, '--to-version', '999999'],
        /--to-version 999999 is beyond what snapshot \S+ holds: its newest version is \d+/,
      );
      await refused(
        ['--snapshot', snapshotId, '--to-time', '2099-01-01T00:00:00Z'],
        /--to-time 2099-01-01T00:00:00Z is after the newest change snapshot \S+ holds \(version \d+ at /,
      );

      // Damaged copies of the same restore point, as a faithful backup of damaged files would store them.
      const snapDir = path.join(dir, 'snapshots', 'snapshots', snapshotId);
      const snapChangelogs = (await fs.readdir(snapDir))
        .filter((n) => n.startsWith('changelog'))
        .map((n) => path.join(snapDir, n));
      const copy = (at: number, edit: (line: string) => string[]) =>
        writeSnapshot({
          store: path.join(dir, 'snapshots'),
          image: path.join(snapDir, image.name),
          changelogs: snapChangelogs,
          at: new Date(Date.now() + at),
          edit: async (d) => {
            for (const n of (await fs.readdir(d)).filter((x) => x.startsWith('changelog'))) {
              const text = await fs.readFile(path.join(d, n), 'latin1');
              await fs.writeFile(path.join(d, n), text.split('\n').flatMap(edit).join('\n'), 'latin1');
            }
          },
        });
      const holed = await copy(1000, (l) => (l.startsWith(`${targetVersion - 2}: `) ? [] : [l]));
      await refused(
        ['--snapshot', holed.id, '--to-version', String(targetVersion)],
        new RegExp(
          `--to-version ${targetVersion} lies beyond a hole in snapshot ${holed.id}'s changelogs: versions ${targetVersion - 2}\\.\\.${targetVersion - 2} are missing`,
        ),
      );
      const damaged = await copy(2000, (l) => (l.startsWith(`${targetVersion - 2}: `) ? ['garbage', l] : [l]));
      await refused(
        ['--snapshot', damaged.id, '--to-version', String(targetVersion)],
        new RegExp(
          `snapshot ${damaged.id}: changelog[._a-z0-9]*:\\d+: damaged changelog line after version ${targetVersion - 3}, before the target version ${targetVersion}`,
        ),
      );
      // A SETTRASHTIME of 2 s after the target (4.x applies it as a whole hour): the trash time compared with.
      const short = await copy(3000, (l) =>
        l.startsWith(`${targetVersion + 1}: `) ? [l.replace(/\|.*$/, '|SETTRASHTIME(1,0,2,0):1,0,0')] : [l],
      );
      const trash = await cli([
        'restore',
        '--snapshot',
        short.id,
        '--to-version',
        String(targetVersion),
        '--data-path',
        dataPath,
        '--dry-run',
        '--json',
      ]);
      const t = report(trash);
      const seconds = Math.ceil(2 / lab.generation.trashTime.stepSeconds) * lab.generation.trashTime.stepSeconds;
      const applied = seconds === 2 ? '' : `, applied as ${seconds} s`;
      expect(t.details.trash).toMatchObject({
        seconds,
        basis: `the smallest SETTRASHTIME among the changes left out (version ${targetVersion + 1}: 2 s${applied})`,
      });
      // 2 s (3.0) have passed since the deletions: WARNING; an hour (4.x) has not.
      expect({ status: t.status, code: trash.code, warned: t.details.trash.warning !== null }).toEqual(
        seconds < 3600 ? { status: 'WARNING', code: 1, warned: true } : { status: 'OK', code: 0, warned: false },
      );
      // The same damage after the target costs nothing.
      const ok = await cli([
        'restore',
        '--snapshot',
        damaged.id,
        '--to-version',
        String(targetVersion - 3),
        '--data-path',
        dataPath,
        '--dry-run',
      ]);
      expect({ code: ok.code, out: ok.stdout.split('\n')[0] }).toMatchObject({ code: 0 });

      // A DATA_PATH whose master runs is never written.
      const live = await freshDataPath('live');
      await fs.copyFile(path.join(snapDir, image.name), path.join(live.dataPath, 'metadata.mfs.back'));
      for (const c of snapChangelogs) await fs.copyFile(c, path.join(live.dataPath, path.basename(c)));
      // Before 1.7 mfsmetarestore -a rebuilds metadata.mfs first; the master then starts without -a.
      const oneX = lab.generation.restore !== 'mfsmaster-a';
      if (oneX)
        expect((await execCapture(lab.mfsmetarestore, ['-a', '-d', live.dataPath], { timeoutMs: 60_000 })).code).toBe(
          0,
        );
      const start = await execCapture(
        'nsenter',
        [
          `--net=${M.netnsPath}`,
          lab.mfsmaster,
          ...lab.generation.startArgs(live.cfg, { autoRestore: !oneX, foreground: false }),
        ],
        { timeoutMs: 60_000 },
      );
      expect(start.code).toBe(0);
      // A 1.x master's start returns before it has loaded (and renamed) its metadata: wait until the
      // DATA_PATH holds still for a second.
      let before: string[] = [];
      await waitFor(
        'the live master to settle its DATA_PATH',
        async () => {
          const now = (await fs.readdir(live.dataPath)).sort();
          const still = now.join('/') === before.join('/');
          before = now;
          return still;
        },
        30_000,
        1_000,
      );
      const res = await cli(['restore', '--latest', '--data-path', live.dataPath]);
      expect(res.code).toBe(2);
      expect(res.stdout.split('\n')[0]).toMatch(
        new RegExp(`^MFS RESTORE CRITICAL - ${live.dataPath}: an mfsmaster runs in this DATA_PATH \\(pid \\d+`),
      );
      expect((await fs.readdir(live.dataPath)).sort()).toEqual(before);
      await stopRestored(live.dataPath);
    });
  },
);
