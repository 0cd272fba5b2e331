import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli } from '../helpers/cli.js';
import { masterStatus } from '../../lib/moosefs/master.js';
import { SCRATCH_HOST, stopScratchMaster, type Scratch } from '../../lib/moosefs/scratchmaster.js';
import { GUARD_TABLE_PREFIX, ScratchGuard } from '../../lib/moosefs/scratch-guard.js';
import { execCapture } from '../../lib/core/exec.js';
import { Lab } from '../lab/cluster.js';
import { startScratchAsDrill } from '../lab/scratch.js';
import { labGeneration, type LabVersion } from '../lab/generations.js';
import { LabMaster, LabMount, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { recordFaults, tearDownFaults, type Started } from './results.js';

/**
 * A local user against the drill (#16 case 8): during a drill the restored namespace is served by a
 * scratch mfsmaster on 127.0.0.1, which any local process can reach. Set up exactly as `mfs-jobs
 * drill` sets it up (writeScratchConfig, restoreAndStart), then mounted the way an attacker would,
 * with the real mfsmount. The export mfs-jobs used before (`127.0.0.1 / ro`) is put back at the end
 * and the master told to reload it: the same mount then works, so the test can tell the attack.
 */
describe.each<LabVersion>(['3.0.117', '4.59.2'])(
  "a local user and the drill's scratch master (MooseFS %s)",
  (version) => {
    const lab = labGeneration(version);
    let cluster: Lab;
    let scratch: Scratch | undefined;
    const started: Started[] = [];

    beforeAll(async () => {
      cluster = await Lab.start({ lab, metalogger: false, sshd: false });
      started.push(cluster);
      await cluster.makeChanges('secret-name', 3);
      await cluster.saveImage();
    }, 120_000);

    afterAll(async () => {
      // The scratch master first: the lab's stop removes the directory its lock (and PID) is found in.
      await tearDownFaults([scratch && (() => stopScratchMaster(scratch!)), ...started.reverse()]);
    });

    test('cannot mount the restored namespace ("Password is needed"); with the old open export it could', async () => {
      const sm = await startScratchAsDrill(path.join(cluster.dir, 'drill'), cluster.master.dataPath, lab);
      const sc = sm.scratch;
      const { ports } = sm;
      scratch = sc;
      const exportsText = await fs.readFile(path.join(scratch.dir, 'mfsexports.cfg'), 'utf8');
      expect(exportsText).toMatch(/^127\.0\.0\.1\t\/\tro,md5pass=[0-9a-f]{32}\n$/);
      expect(sm.startCode).toBe(0);
      // The drill itself still gets its answer: the client protocol's info needs no export.
      expect(
        (await masterStatus({ host: SCRATCH_HOST, port: ports.matocl, timeoutMs: 3_000 })).softwareVersion,
      ).toBeTruthy();

      const target = { host: SCRATCH_HOST, port: ports.matocl };
      const refused = await LabMount.mount(
        path.join(scratch.dir, 'attacker-mnt'),
        target,
        path.join(cluster.dir, 'attacker-mount.log'),
        { lab, attempts: 2 },
      ).then(
        (m) => m,
        (err: Error) => err,
      );
      if (!(refused instanceof Error)) started.push(refused);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).toMatch(/Password is needed/);

      // The export mfs-jobs wrote before this fix, reloaded (SIGHUP): the same attacker mounts and reads the names.
      await fs.writeFile(path.join(scratch.dir, 'mfsexports.cfg'), `${SCRATCH_HOST}\t/\tro\n`);
      process.kill((await runningMasterPid(scratch.dataPath))!, 'SIGHUP');
      const mount = await waitFor(
        'the old export to take',
        () =>
          LabMount.mount(path.join(sc.dir, 'attacker-mnt2'), target, path.join(cluster.dir, 'attacker-mount2.log'), {
            lab,
            attempts: 1,
          }).catch(() => undefined),
        30_000,
      );
      started.push(mount);
      expect((await fs.readdir(path.join(scratch.dir, 'attacker-mnt2'))).some((n) => n.startsWith('secret-name'))).toBe(
        true,
      );
      await mount.unmount();
      started.pop();
      recordFaults({
        area: 'local attacker',
        fault: `mount the drill's scratch master (MooseFS ${version})`,
        injected: 1,
        survived: 1,
        dataLost: 0,
        lostRestorePoints: 0,
        note: 'Password is needed; the old export mounted',
      });
    }, 120_000);
  },
);

/**
 * The same local user against a 1.5 drill: 1.5 reads no exports, so no password can keep a mount out.
 * The drill's nftables guard (lib/moosefs/scratch-guard.ts, installed as `mfs-jobs drill` installs it)
 * lets only the drill's own user reach the scratch master's ports: user nobody's connection is reset,
 * root's gets the master's answer, and once the guard is gone nobody connects again.
 */
describe("a local user and a 1.5 drill's scratch master (no exports): the nftables guard", () => {
  const lab = labGeneration('1.5.12');
  let cluster: Lab;
  let scratch: Scratch | undefined;
  let guard: ScratchGuard | undefined;
  const started: Started[] = [];

  /** A TCP connect to the scratch client port as user `uid` (a real process of that user, bash's /dev/tcp). */
  const connectAs = async (uid: number, port: number) =>
    (
      await execCapture(
        'setpriv',
        [
          `--reuid=${uid}`,
          `--regid=${uid}`,
          '--clear-groups',
          'bash',
          '-c',
          `exec 3<>/dev/tcp/${SCRATCH_HOST}/${port}`,
        ],
        { timeoutMs: 10_000 },
      )
    ).code === 0;

  beforeAll(async () => {
    cluster = await Lab.start({ lab, metalogger: false, mount: false, sshd: false });
    started.push(cluster);
    await cluster.saveImage();
  }, 120_000);

  afterAll(async () => {
    await tearDownFaults([
      guard && (() => guard!.remove()),
      scratch && (() => stopScratchMaster(scratch!)),
      ...started.reverse(),
    ]);
  });

  test('user nobody cannot reach the scratch master while the guard stands; root (the drill) can', async () => {
    const sm = await startScratchAsDrill(path.join(cluster.dir, 'drill'), cluster.master.dataPath, lab);
    scratch = sm.scratch;
    const { ports } = sm;
    expect(sm.startCode).toBe(0);
    // Without the guard any user reaches it: this is what a 1.5 drill exposed.
    expect(await connectAs(65534, ports.matocl)).toBe(true);
    const installed = await ScratchGuard.install(Object.values(ports), 0);
    if (!(installed instanceof ScratchGuard)) throw new Error(`nft: ${installed.failed}`);
    guard = installed;
    expect({
      nobody: await connectAs(65534, ports.matocl),
      nobodyCs: await connectAs(65534, ports.matocs),
      root: await connectAs(0, ports.matocl),
    }).toEqual({ nobody: false, nobodyCs: false, root: true });
    expect((await masterStatus({ host: SCRATCH_HOST, port: ports.matocl, timeoutMs: 3_000 })).softwareVersion).toMatch(
      /^1\.5\b/,
    );
    await guard.remove();
    guard = undefined;
    expect(await connectAs(65534, ports.matocl)).toBe(true);
    expect((await execCapture('nft', ['list', 'tables'])).stdout).not.toContain(`${GUARD_TABLE_PREFIX}${process.pid}`);
    recordFaults({
      area: 'local attacker',
      fault: "reach a 1.5 drill's scratch master (no exports)",
      injected: 1,
      survived: 1,
      dataLost: 0,
      lostRestorePoints: 0,
      note: 'nobody reset by the nftables guard; reached it without',
    });
  }, 120_000);

  test('a guard left by a drill that was killed is removed by the next drill; a live one is kept', async () => {
    const dead = spawn('true');
    await new Promise((resolve) => dead.once('exit', resolve));
    const stale = `${GUARD_TABLE_PREFIX}${dead.pid}`;
    expect((await execCapture('nft', [`add table inet ${stale}`])).code).toBe(0);
    const live = `${GUARD_TABLE_PREFIX}${process.pid}`;
    expect((await execCapture('nft', [`add table inet ${live}`])).code).toBe(0);
    try {
      const cleared = await ScratchGuard.clearStale();
      expect(cleared).toContain(stale);
      expect(cleared).not.toContain(live);
      const tables = (await execCapture('nft', ['list', 'tables'])).stdout;
      expect({ stale: tables.includes(stale), live: tables.includes(live) }).toEqual({ stale: false, live: true });
    } finally {
      await execCapture('nft', ['delete', 'table', 'inet', live]);
      await execCapture('nft', ['delete', 'table', 'inet', stale]);
    }
  });
});

/** Debian's MooseFS user: owner of the standby DATA_PATH, and the attacker here. */
const MFS_UID = 420;

/**
 * The MooseFS user against promote (#16 case 8): it owns the standby DATA_PATH where promote stages
 * what it fetches. A real process of that user watches DATA_PATH (inotify) and, the moment promote's
 * staging directory appears, renames it away and plants a symlink to a root-owned directory in its
 * place. Staging through the name would write root's copies there; the held descriptor writes none.
 */
describe("the MooseFS user swaps promote's staging directory for a symlink while promote runs", () => {
  let cluster: Lab;
  let standby: LabMaster;
  let attackDir: string;
  let attacker: ReturnType<typeof spawn> | undefined;
  const started: Started[] = [];

  beforeAll(async () => {
    cluster = await Lab.start({ metalogger: true, mount: true, sshd: false });
    started.push(cluster);
    await cluster.makeChanges('a', 10);
    await cluster.saveImage();
    await cluster.metalogger!.stop();
    await cluster.metalogger!.start();
    await cluster.makeChanges('b', 10);
    await waitMetaloggerCaughtUp(cluster.master, cluster.metalogger!);
    // Where the MooseFS user can reach: a root-owned 0755 directory outside the lab's private one.
    attackDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-attack-'));
    await fs.chmod(attackDir, 0o755);
    standby = await LabMaster.create(path.join(attackDir, 'standby'), { bootstrap: false });
    await fs.chmod(path.join(attackDir, 'standby'), 0o755);
    await fs.chown(standby.dataPath, MFS_UID, MFS_UID);
    await fs.mkdir(path.join(attackDir, 'victim'), { mode: 0o755 });
    await fs.mkdir(path.join(attackDir, 'home'), { mode: 0o700 });
    await fs.chown(path.join(attackDir, 'home'), MFS_UID, MFS_UID);
  }, 120_000);

  afterAll(async () => {
    if (attacker?.pid) process.kill(attacker.pid, 'SIGKILL');
    const pid = standby ? await runningMasterPid(standby.dataPath) : undefined;
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    await tearDownFaults([
      ...started.reverse(),
      attackDir ? () => fs.rm(attackDir, { recursive: true, force: true }) : undefined,
    ]);
  });

  /** The swap, `delayMs` after the staging directory appears; returns the promote's output and whether the swap came. */
  async function attackedPromote(delayMs: number, round: number) {
    const home = path.join(attackDir, 'home');
    const victim = path.join(attackDir, 'victim');
    const log = path.join(home, `log-${round}`);
    const script = path.join(home, 'swap.mjs');
    await fs.writeFile(
      script,
      `import fs from 'node:fs'; import path from 'node:path';
const [dataPath, victim, log, delay] = process.argv.slice(2);
let n = 0; const done = new Set();
const sweep = () => { for (const name of fs.readdirSync(dataPath)) {
  if (!name.startsWith('.mfs-jobs-staging-') || done.has(name)) continue;
  try { if (!fs.lstatSync(path.join(dataPath, name)).isDirectory()) continue;
    fs.renameSync(path.join(dataPath, name), path.join(dataPath, '.stolen-' + Date.now() + '-' + n++));
    fs.symlinkSync(victim, path.join(dataPath, name)); done.add(name); fs.appendFileSync(log, 'swapped ' + name + '\\n');
  } catch (e) { fs.appendFileSync(log, 'failed ' + name + ': ' + e.message + '\\n'); } } };
const later = () => (Number(delay) ? setTimeout(sweep, Number(delay)) : sweep());
fs.watch(dataPath, later); setInterval(later, 1); fs.appendFileSync(log, 'ready\\n');
`,
    );
    await fs.chown(script, MFS_UID, MFS_UID);
    attacker = spawn(
      'setpriv',
      [
        `--reuid=${MFS_UID}`,
        `--regid=${MFS_UID}`,
        '--clear-groups',
        process.execPath,
        script,
        standby.dataPath,
        victim,
        log,
        String(delayMs),
      ],
      { stdio: 'ignore' },
    );
    await waitFor(
      'the attacker to watch DATA_PATH',
      async () => (await fs.readFile(log, 'utf8').catch(() => '')).includes('ready'),
      10_000,
    );
    const doc = cluster.configDocument({
      metaloggers: [{ name: 'ml1', host: '127.0.0.1', local: true, dataPath: cluster.metalogger!.dataPath }],
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      jobs: { promote: { fenceTimeoutSeconds: 1 } },
    });
    delete doc.snapshotStore;
    const config = path.join(cluster.dir, 'attacked.yaml');
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
    // The old master still answers: --force past the fence (the standby comes up beside it on its own ports).
    const res = await runCli(['run', 'promote', '--force', '--config', config]);
    process.kill(attacker.pid!, 'SIGKILL');
    attacker = undefined;
    const swapped = /^swapped \.mfs-jobs-staging-/m.test(await fs.readFile(log, 'utf8'));
    return { res, swapped, victim };
  }

  test('whenever the swap comes: nothing is written through the link; promote either refuses in one line naming it or promotes from its own directory', async () => {
    const version = (await cluster.master.info()).metadataVersion;
    const outcomes = { refused: 0, promoted: 0, swaps: 0 };
    const problems: string[] = [];
    for (const [round, delayMs] of [0, 0, 2, 5, 10].entries()) {
      const { res, swapped, victim } = await attackedPromote(delayMs, round);
      const first = res.stdout.split('\n')[0]!;
      if (swapped) outcomes.swaps++;
      const victimFiles = await fs.readdir(victim);
      if (victimFiles.length) problems.push(`round ${round}: written through the link: ${victimFiles.join(', ')}`);
      if (
        /^MFS PROMOTE CRITICAL - \S+\/\.mfs-jobs-staging-\S+: staging directory was replaced right after it was made \(now (a symbolic link or not a directory|missing: renamed or removed)\): refusing to use it$/.test(
          first,
        )
      ) {
        outcomes.refused++;
        if (await runningMasterPid(standby.dataPath)) problems.push(`round ${round}: refused, yet a master runs`);
      } else if (/^MFS PROMOTE (OK|WARNING) - promoted: serving metadata version \d+/.test(first)) {
        outcomes.promoted++;
        const served = (await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion;
        if (served < version - 1) problems.push(`round ${round}: serves ${served}, expected ${version}`);
        // The planted link stays where it is: not followed, not removed as if it were ours.
        for (const n of (await fs.readdir(standby.dataPath)).filter((x) => x.startsWith('.mfs-jobs-staging-'))) {
          if (!(await fs.lstat(path.join(standby.dataPath, n))).isSymbolicLink())
            problems.push(`round ${round}: ${n} is not the planted link`);
        }
      } else {
        problems.push(`round ${round} (swap after ${delayMs} ms): ${first}`);
      }
      // The next round starts from an empty, stopped standby.
      const pid = await runningMasterPid(standby.dataPath);
      if (pid !== undefined) {
        process.kill(pid, 'SIGKILL');
        await waitFor(
          'the standby master to exit',
          async () => (await runningMasterPid(standby.dataPath)) === undefined,
        );
      }
      for (const n of await fs.readdir(standby.dataPath))
        await fs.rm(path.join(standby.dataPath, n), { recursive: true, force: true });
    }
    recordFaults({
      area: 'local attacker',
      fault: 'staging directory swapped for a symlink during promote',
      injected: outcomes.swaps,
      survived: problems.length ? 0 : outcomes.swaps,
      dataLost: 0,
      lostRestorePoints: 0,
      note: `${outcomes.refused} refused, ${outcomes.promoted} promoted; nothing written through it`,
    });
    expect(problems).toEqual([]);
    expect(outcomes.swaps).toBeGreaterThan(0);
  }, 300_000);
});
