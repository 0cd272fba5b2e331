import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { processAlive } from '../../lib/core/lock.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { freezeDataPath, writeSnapshot } from '../helpers/snapshot-fixture.js';
import { DirAttacker, NOBODY, type AttackMove } from '../lab/attacker.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration } from '../lab/generations.js';
import { freeMasterPorts, LabMaster, masterConfigText } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { recordFaults, tearDownFaults, type Started } from './results.js';

/**
 * The MooseFS user against root's jobs in its own DATA_PATH (issue #23, cases 1, 2, 3 and 10). `nobody`
 * plays that user: it owns the DATA_PATH and runs a real process (test/lab/attacker.ts) that watches it
 * (inotify, and polling every millisecond) and, the moment root's aside directory or a placed file
 * appears, swaps it for a symlink into root's territory, or plants one. What must hold, whenever the
 * swap lands: root-only files never change owner, mode, content or place.
 */

/** Root's territory beside the DATA_PATHs: a 0700 directory with one file, and one 0600 file. */
interface RootOnly {
  dir: string;
  file: string;
}

const FILE_TEXT = 'root only: never written by a job\n';

async function rootOnly(base: string): Promise<RootOnly> {
  const dir = path.join(base, 'root-only');
  await fs.mkdir(dir, { mode: 0o700 });
  await fs.writeFile(path.join(dir, 'keep'), FILE_TEXT, { mode: 0o600 });
  const file = path.join(base, 'root-file');
  await fs.writeFile(file, FILE_TEXT, { mode: 0o600 });
  return { dir, file };
}

/** What changed in root's territory (empty when nothing did). */
async function damage(r: RootOnly): Promise<string[]> {
  const out: string[] = [];
  const names = (await fs.readdir(r.dir)).sort();
  if (names.join(',') !== 'keep') out.push(`${r.dir} now holds ${names.join(', ')}`);
  for (const f of [r.file, path.join(r.dir, 'keep')]) {
    const st = await fs.lstat(f).catch(() => undefined);
    if (!st) {
      out.push(`${f} is gone`);
      continue;
    }
    const text = await fs.readFile(f, 'latin1');
    if (st.uid !== 0 || st.gid !== 0 || (st.mode & 0o777) !== 0o600 || text !== FILE_TEXT) {
      const content = text === FILE_TEXT ? 'content kept' : `content now ${JSON.stringify(text.slice(0, 16))}`;
      out.push(`${f}: uid ${st.uid} gid ${st.gid} mode ${(st.mode & 0o777).toString(8)}, ${content}`);
    }
  }
  return out;
}

/** Put root's territory back as it was (after an old-code run damaged it). */
async function repair(r: RootOnly): Promise<void> {
  await fs.rm(r.dir, { recursive: true, force: true });
  await fs.rm(r.file, { force: true });
  await rootOnly(path.dirname(r.dir));
}

/** An empty DATA_PATH of nobody's holding one file of nobody's (`passwd`), as the attack starts from. */
async function resetDataPath(dataPath: string): Promise<void> {
  await fs.mkdir(dataPath, { recursive: true, mode: 0o755 });
  for (const n of await fs.readdir(dataPath)) await fs.rm(path.join(dataPath, n), { recursive: true, force: true });
  await fs.chown(dataPath, NOBODY, NOBODY);
  await fs.writeFile(path.join(dataPath, 'passwd'), 'nobody:x:65534:65534::/nonexistent:/bin/sh\n', { mode: 0o644 });
  await fs.chown(path.join(dataPath, 'passwd'), NOBODY, NOBODY);
}

async function killMasterIn(dataPath: string): Promise<void> {
  const pid = await runningMasterPid(dataPath);
  // Never by a lock's word alone (the code before #23 believed `1`): only a process that is an mfsmaster.
  const comm = pid === undefined ? '' : await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
  if (pid === undefined || comm.trim() !== 'mfsmaster') return;
  process.kill(pid, 'SIGKILL');
  await waitFor(`mfsmaster ${pid} in ${dataPath} to exit`, async () => !processAlive(pid), 10_000);
}

interface Round {
  res: CliResult;
  first: string;
  moves: string[];
  damage: string[];
}

interface Attack {
  match: RegExp;
  move: AttackMove;
  delayMs?: number;
}

/** One attacked run: the attacker watches `dataPath`, the job runs, the attacker stops, root's territory is checked. */
async function attackedRun(dataPath: string, r: RootOnly, attack: Attack, args: string[]): Promise<Round> {
  const attacker = await DirAttacker.start({ dir: dataPath, ...attack });
  let res: CliResult;
  let done: string[];
  try {
    res = await runCli(args, { timeoutMs: 120_000 });
    ({ done } = await attacker.moves());
  } finally {
    await attacker.stop().catch(() => undefined);
  }
  const seen = await damage(r);
  if (seen.length) await repair(r);
  return { res, first: res.stdout.split('\n')[0]!, moves: done, damage: seen };
}

/** A job's one line when it refused our swapped directory (the only refusal the attack may cause). */
const REFUSED_SWAP = /^MFS (RESTORE|PROMOTE) CRITICAL - \S+: (aside|staging) directory was replaced right after/;

/** A row of the closing table: every attack injected survived when no problem was seen. */
function row(fault: string, injected: number, problems: readonly string[], note: string): void {
  const survived = problems.length ? 0 : injected;
  recordFaults({ area: 'local attacker', fault, injected, survived, dataLost: 0, lostRestorePoints: 0, note });
}

describe('the MooseFS user (nobody) races restore and promote in its DATA_PATH (MooseFS 3.0)', () => {
  let cluster: Lab;
  let base: string;
  let r: RootOnly;
  let restoreConfig: string;
  let promoteConfig: string;
  let standby: LabMaster;
  const restoreData = () => path.join(base, 'restore-data');
  const started: Started[] = [];

  beforeAll(async () => {
    cluster = await Lab.start({ metalogger: true, mount: true, sshd: false });
    started.push(cluster);
    await cluster.makeChanges('a', 5);
    await cluster.saveImage();
    await cluster.metalogger!.stop();
    await cluster.metalogger!.start();
    await cluster.makeChanges('b', 5);
    const frozen = path.join(cluster.dir, 'frozen');
    await freezeDataPath(cluster.master.dataPath, frozen);
    await writeSnapshot({ store: path.join(cluster.dir, 'snapshots'), image: path.join(frozen, 'metadata.mfs.back') });
    // Where nobody can reach its DATA_PATHs: a root-owned 0755 directory outside the lab's private one.
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-datapath-attack-'));
    await fs.chmod(base, 0o755);
    r = await rootOnly(base);
    restoreConfig = await cluster.writeConfig({}, 'restore.yaml');
    standby = await LabMaster.create(path.join(base, 'standby'), { bootstrap: false });
    await fs.chmod(path.join(base, 'standby'), 0o755);
    const doc = cluster.configDocument({
      metaloggers: [{ name: 'ml1', host: '127.0.0.1', local: true, dataPath: cluster.metalogger!.dataPath }],
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      // Bounds the old code's wait for "pid 1" (case 10), which was the default 600 s.
      jobs: { promote: { fenceTimeoutSeconds: 1, startTimeoutSeconds: 30 } },
    });
    delete doc.snapshotStore;
    promoteConfig = path.join(cluster.dir, 'promote.yaml');
    await fs.writeFile(promoteConfig, YAML.stringify(doc), { mode: 0o600 });
  }, 180_000);

  afterAll(async () => {
    const removeBase = () => fs.rm(base, { recursive: true, force: true });
    await tearDownFaults([() => killMasterIn(standby.dataPath), ...started.reverse(), removeBase]);
  });

  const restore = (dataPath: string) => ['restore', '--latest', '--data-path', dataPath, '--config', restoreConfig];

  test('case 1: the aside directory swapped for a link to a root-only directory during restore --latest: nothing lands there', async () => {
    const problems: string[] = [];
    let swaps = 0;
    for (const delayMs of [0, 0, 0, 1, 2]) {
      await resetDataPath(restoreData());
      const attack = { match: /^mfs-jobs-aside-/, move: { kind: 'swap', target: r.dir } as const, delayMs };
      const round = await attackedRun(restoreData(), r, attack, restore(restoreData()));
      if (round.moves.length) swaps++;
      problems.push(...round.damage);
      const ok = /^MFS RESTORE (OK|WARNING) - /.test(round.first) || REFUSED_SWAP.test(round.first);
      if (!ok) problems.push(`swap after ${delayMs} ms: ${round.first}`);
    }
    row(
      'aside directory swapped for a symlink during restore',
      swaps,
      problems,
      'nothing moved into the root-only directory',
    );
    expect(problems).toEqual([]);
    expect(swaps).toBeGreaterThan(0);
  }, 300_000);

  test('case 2: each placed file swapped for a link to a root-owned file: no root-owned file is chowned or chmodded', async () => {
    const problems: string[] = [];
    let swaps = 0;
    for (const delayMs of [0, 0, 0, 0, 1, 1]) {
      await resetDataPath(restoreData());
      const placed = /^(metadata\.mfs\.back|changelog\.\d+\.mfs)$/;
      const attack = { match: placed, move: { kind: 'swap', target: r.file } as const, delayMs };
      const round = await attackedRun(restoreData(), r, attack, restore(restoreData()));
      swaps += round.moves.length;
      problems.push(...round.damage);
      if (!/^MFS RESTORE (OK|WARNING) - /.test(round.first)) problems.push(`swap after ${delayMs} ms: ${round.first}`);
    }
    row(
      'placed file swapped for a symlink during restore',
      swaps,
      problems,
      'owner and mode set on the open file, then renamed',
    );
    expect(problems).toEqual([]);
    expect(swaps).toBeGreaterThan(0);
  }, 300_000);

  test('case 1: the aside directory swapped during promote --force: nothing lands there, promote goes on or refuses in one line', async () => {
    const problems: string[] = [];
    let swaps = 0;
    for (const delayMs of [0, 0, 1]) {
      await resetDataPath(standby.dataPath);
      const attack = { match: /^mfs-jobs-aside-/, move: { kind: 'swap', target: r.dir } as const, delayMs };
      const round = await attackedRun(standby.dataPath, r, attack, [
        'run',
        'promote',
        '--force',
        '--config',
        promoteConfig,
      ]);
      if (round.moves.length) swaps++;
      problems.push(...round.damage);
      const ok = /^MFS PROMOTE (OK|WARNING) - promoted: /.test(round.first) || REFUSED_SWAP.test(round.first);
      if (!ok) problems.push(`swap after ${delayMs} ms: ${round.first}`);
      await killMasterIn(standby.dataPath);
    }
    row(
      'aside directory swapped for a symlink during promote',
      swaps,
      problems,
      'renamed by descriptor into the one made',
    );
    expect(problems).toEqual([]);
    expect(swaps).toBeGreaterThan(0);
  }, 300_000);

  test('case 10: `echo 1 > .mfsmaster.lock` by nobody: promote --force does not wait for pid 1, says why, promotes', async () => {
    await resetDataPath(standby.dataPath);
    const lock = path.join(standby.dataPath, '.mfsmaster.lock');
    await fs.writeFile(lock, '1\n');
    await fs.chown(lock, NOBODY, NOBODY);
    const began = Date.now();
    const res = await runCli(['run', 'promote', '--force', '--config', promoteConfig], { timeoutMs: 120_000 });
    const seconds = (Date.now() - began) / 1000;
    await killMasterIn(standby.dataPath);
    const promoted = expect.stringMatching(/^MFS PROMOTE (OK|WARNING) - promoted: /);
    expect({ first: res.stdout.split('\n')[0], fast: seconds < 25 }).toEqual({ first: promoted, fast: true });
    expect(res.stdout).toContain(`${lock}: pid 1 is not an mfsmaster of ${standby.dataPath} (`);
    row(
      'PID 1 written into .mfsmaster.lock before promote',
      1,
      [],
      `promoted in ${seconds.toFixed(1)} s; PID checked in /proc`,
    );
  }, 180_000);
});

/**
 * Case 3: a 1.x restore runs mfsmetarestore as root. The moment the image is placed, nobody plants
 * `metadata.mfs` (mfsmetarestore's output name) as a symlink to a root-owned file.
 */
describe('the MooseFS user plants metadata.mfs as a link before mfsmetarestore runs (1.6.27 restore --start)', () => {
  const lab = labGeneration('1.6.27');
  let cluster: Lab;
  let base: string;
  let r: RootOnly;
  let config: string;
  let masterConfig: string;
  const dataPath = () => path.join(base, 'restore', 'data');
  const started: Started[] = [];

  beforeAll(async () => {
    cluster = await Lab.start({ lab, metalogger: false, mount: false, sshd: false });
    started.push(cluster);
    await cluster.saveImage();
    const frozen = path.join(cluster.dir, 'frozen');
    await freezeDataPath(cluster.master.dataPath, frozen);
    await writeSnapshot({ store: path.join(cluster.dir, 'snapshots'), image: path.join(frozen, 'metadata.mfs.back') });
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-metarestore-attack-'));
    await fs.chmod(base, 0o755);
    r = await rootOnly(base);
    const dir = path.join(base, 'restore');
    await fs.mkdir(dir, { mode: 0o755 });
    await fs.writeFile(path.join(dir, 'mfsexports.cfg'), '*\t/\trw,alldirs,maproot=0\n');
    await fs.writeFile(path.join(dir, 'mfstopology.cfg'), '');
    masterConfig = path.join(dir, 'mfsmaster.cfg');
    const ports = await freeMasterPorts();
    await fs.writeFile(masterConfig, masterConfigText({ dataPath: dataPath(), dir, host: '127.0.0.1', ports, lab }));
    config = await cluster.writeConfig({}, 'restore.yaml');
  }, 180_000);

  afterAll(async () => {
    const removeBase = () => fs.rm(base, { recursive: true, force: true });
    await tearDownFaults([() => killMasterIn(dataPath()), ...started.reverse(), removeBase]);
  });

  test('case 3: the root-owned file is untouched; the master starts from the metadata.mfs placed by descriptor', async () => {
    const problems: string[] = [];
    let plants = 0;
    for (let round = 0; round < 3; round++) {
      await resetDataPath(dataPath());
      const attack = {
        match: /^metadata\.mfs\.back$/,
        move: { kind: 'plant', name: 'metadata.mfs', target: r.file } as const,
      };
      const args = ['restore', '--latest', '--data-path', dataPath(), '--start', '--master-config', masterConfig];
      args.push('--config', config);
      const res = await attackedRun(dataPath(), r, attack, args);
      await killMasterIn(dataPath());
      if (res.moves.length) plants++;
      problems.push(...res.damage.map((d) => `round ${round}: ${d}`));
      if (!/^MFS RESTORE (OK|WARNING) - .* and serving on /.test(res.first))
        problems.push(`round ${round}: ${res.first}`);
    }
    const note = 'output in a root-only directory, placed by descriptor';
    row('metadata.mfs planted as a symlink before mfsmetarestore (1.6.27)', plants, problems, note);
    expect(problems).toEqual([]);
    expect(plants).toBeGreaterThan(0);
  }, 300_000);
});
