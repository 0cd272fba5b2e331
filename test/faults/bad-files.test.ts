import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCli, type CliResult } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { checkStore, crashProblems } from './faults.js';
import { recordFaults, tearDownFaults } from './results.js';

/**
 * Damaged files in a metalogger's DATA_PATH, read over SFTP the way production reads them: each must
 * give backup and verify a specific one-line error (never exit 0, never a stack trace, never a
 * snapshot), and drill --from the same metalogger must refuse too. The base is a real metalogger's
 * DATA_PATH (an image of version V and changelogs up to the master's version); each case copies it
 * and damages one thing.
 */

interface Case {
  name: string;
  damage: (dir: string, c: Ctx) => Promise<void>;
  backup: RegExp;
  verify: RegExp;
  /** Backup may succeed (a cut last line is the line being written: left out, with a note). */
  backupOk?: boolean;
  /** Drill restores a copy with a cut last line left out: it may succeed where backup is stricter. */
  drillOk?: boolean;
}

interface Ctx {
  imageVersion: number;
  lines: string[];
  /** A version well after the image, held only by changelog_ml.0.mfs. */
  victim: number;
}

const IMAGE = 'metadata_ml.mfs.back';
const CURRENT = 'changelog_ml.0.mfs';
const lineOf = (c: Ctx, v: number) => c.lines.findIndex((l) => l.startsWith(`${v}: `));
const writeLines = (dir: string, lines: string[]) =>
  fs.writeFile(path.join(dir, CURRENT), lines.join('\n') + '\n', 'latin1');
async function rewriteImage(dir: string, f: (b: Buffer) => Buffer): Promise<void> {
  const file = path.join(dir, IMAGE);
  await fs.writeFile(file, f(await fs.readFile(file)));
}

const cases: Case[] = [
  {
    name: 'truncated image',
    damage: (d) => rewriteImage(d, (b) => b.subarray(0, Math.floor(b.length / 2))),
    backup: /newest metadata image metadata_ml\.mfs\.back rejected: metadata image has no "\[MFS EOF MARKER\]" ending/,
    verify: /metadata_ml\.mfs\.back.*\[MFS EOF MARKER\]/,
  },
  {
    name: 'image of random bytes',
    damage: (d) => rewriteImage(d, (b) => randomBytes(b.length)),
    backup:
      /metadata_ml\.mfs\.back rejected: not a MooseFS metadata image \(header bytes [0-9a-f]{16}, expected "MFSM 1\.5" or "MFSM 2\.0"\)/,
    verify: /metadata_ml\.mfs\.back.*not a MooseFS metadata image/,
  },
  {
    name: 'image with the wrong magic',
    damage: (d) => rewriteImage(d, (b) => Buffer.concat([Buffer.from('MFSM 1.6'), b.subarray(8)])),
    backup:
      /metadata_ml\.mfs\.back rejected: not a MooseFS metadata image \(header "MFSM 1\.6", expected "MFSM 1\.5" or "MFSM 2\.0"\)/,
    verify: /metadata_ml\.mfs\.back.*header "MFSM 1\.6"/,
  },
  {
    name: 'empty image (0 bytes)',
    damage: (d) => rewriteImage(d, () => Buffer.alloc(0)),
    backup: /metadata_ml\.mfs\.back rejected: metadata image truncated \(0 bytes\)/,
    verify: /metadata_ml\.mfs\.back.*truncated \(0 bytes\)/,
  },
  {
    name: 'every file empty',
    damage: async (d) => {
      for (const n of await fs.readdir(d)) await fs.writeFile(path.join(d, n), '');
    },
    backup: /metadata_ml\.mfs\.back rejected: metadata image truncated \(0 bytes\)/,
    verify: /metadata_ml\.mfs\.back.*truncated \(0 bytes\)/,
  },
  {
    name: 'empty DATA_PATH',
    damage: async (d) => {
      for (const n of await fs.readdir(d)) await fs.rm(path.join(d, n));
    },
    backup: /no usable metadata image \(no metadata\*\.mfs\* file\)/,
    verify: /no metadata image/i,
  },
  {
    name: 'changelog with a hole',
    damage: (d, c) =>
      writeLines(
        d,
        c.lines.filter((_, i) => i !== lineOf(c, c.victim)),
      ),
    backup: /changelogs miss versions (\d+)\.\.\1 after image version \d+/,
    verify: /hole|missing|miss/,
  },
  {
    name: 'duplicated line',
    damage: (d, c) =>
      writeLines(
        d,
        c.lines.flatMap((l, i) => (i === lineOf(c, c.victim) ? [l, l] : [l])),
      ),
    backup: /changelog_ml\.0\.mfs:\d+: version (\d+) repeated/,
    verify: /repeated/,
  },
  {
    name: 'lines out of order',
    damage: (d, c) => {
      const l = [...c.lines];
      const i = lineOf(c, c.victim);
      [l[i], l[i + 1]] = [l[i + 1]!, l[i]!];
      return writeLines(d, l);
    },
    backup: /changelog_ml\.0\.mfs:\d+: version \d+ goes backwards \(after \d+\)/,
    verify: /goes backwards/,
  },
  {
    name: 'line cut in half (mid-file)',
    damage: (d, c) =>
      writeLines(
        d,
        c.lines.map((l, i) => (i === lineOf(c, c.victim) ? l.slice(0, l.indexOf('(') + 3) : l)),
      ),
    backup: /changelog_ml\.0\.mfs:\d+: unparsable line \(cut off or damaged\) at version \d+/,
    verify: /unparsable line \(cut off or damaged\)/,
  },
  {
    name: 'last line cut in half',
    damage: (d, c) => fs.writeFile(path.join(d, CURRENT), c.lines.join('\n').slice(0, -12), 'latin1'),
    backup:
      /^MFS BACKUP OK - bad: snapshot [^\n]*\n(.*\n)*\s*bad: note: changelog_ml\.0\.mfs: left out a cut last line/,
    verify: /last line \d+ is cut off \(no newline at end of file\): mfsmaster -a ignores the whole file/,
    backupOk: true,
    drillOk: true,
  },
  {
    name: 'changelog of random bytes',
    damage: (d) => fs.writeFile(path.join(d, CURRENT), randomBytes(200_000)),
    backup: /changelog_ml\.0\.mfs:\d+: (unparsable line|line longer than)/,
    verify:
      /changelog_ml\.0\.mfs: not one readable changelog line in \d+ lines \(line 1: (unparsable line|line longer than)/,
  },
  {
    name: 'huge line (2 MiB) mid-file',
    damage: (d, c) =>
      writeLines(
        d,
        c.lines.map((l, i) =>
          i === lineOf(c, c.victim) ? `${c.victim}: 1795650000|CREATE(1,${'x'.repeat(2 << 20)},1,438,18,0,0,0):9` : l,
        ),
      ),
    backup: /changelog_ml\.0\.mfs:\d+: line longer than 1048576 bytes/,
    verify: /longer than 1048576 bytes/,
  },
  {
    name: 'huge last line without newline (5 MiB)',
    damage: (d, c) =>
      fs.writeFile(
        path.join(d, CURRENT),
        c.lines.join('\n') + '\n' + `${c.victim}: 1795650000|` + 'y'.repeat(5 << 20),
        'latin1',
      ),
    backup: /changelog_ml\.0\.mfs:\d+: line longer than 1048576 bytes/,
    verify:
      /changelog_ml\.0\.mfs: last line \d+ is cut off \(no newline at end of file\): mfsmaster -a ignores the whole file/,
    drillOk: true,
  },
];

describe('faults: damaged files in a metalogger DATA_PATH', () => {
  let lab: Lab;
  let base: string;
  let ctx: Ctx;

  beforeAll(async () => {
    lab = await Lab.start();
    await lab.makeChanges('before-image', 30);
    await lab.saveImage();
    await lab.metalogger!.stop();
    await lab.metalogger!.start();
    await lab.makeChanges('after-image', 60);
    await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
    base = path.join(lab.dir, 'base');
    await fs.mkdir(base, { mode: 0o700 });
    for (const n of await fs.readdir(lab.metalogger!.dataPath))
      if (/^(metadata|changelog)/.test(n))
        await fs.copyFile(path.join(lab.metalogger!.dataPath, n), path.join(base, n));
    const lines = (await fs.readFile(path.join(base, CURRENT), 'latin1')).trimEnd().split('\n');
    const image = await fs.readFile(path.join(base, IMAGE));
    const imageVersion = Number(image.readBigUInt64BE(8));
    const last = Number(/^(\d+):/.exec(lines[lines.length - 1]!)![1]);
    ctx = { imageVersion, lines, victim: Math.floor((imageVersion + last) / 2) };
    expect(ctx.victim).toBeGreaterThan(imageVersion + 5);
  });
  afterAll(async () => {
    await tearDownFaults([lab]);
  });

  /** One case: damage a copy of the base, run backup, verify and drill on it; what went wrong, and what they said. */
  async function runCase(i: number, c: Case): Promise<{ problems: string[]; log: string }> {
    const dir = path.join(lab.dir, `bad-${i}`);
    await fs.cp(base, dir, { recursive: true });
    await c.damage(dir, ctx);
    const store = path.join(lab.dir, `store-${i}`);
    // Own state and lock directories: the cases run side by side.
    const own = {
      stateDir: path.join(lab.dir, `state-${i}`),
      metaloggers: [{ name: 'bad', host: '127.0.0.1', dataPath: dir }],
    };
    const backupCfg = await lab.writeConfig(
      { ...own, snapshotStore: { path: store }, jobs: { backup: { sources: ['bad'] } } },
      `bad-${i}-backup.yaml`,
    );
    const verifyCfg = await lab.writeConfig(
      { ...own, snapshotStore: undefined, jobs: { verify: { cutLineRetrySeconds: 0 } } },
      `bad-${i}-verify.yaml`,
    );
    const drillCfg = await lab.writeConfig({ ...own, snapshotStore: undefined }, `bad-${i}-drill.yaml`);
    const problems: string[] = [];
    const judge = (job: string, res: CliResult, expected: RegExp, ok = false) => {
      const line = res.stdout.split('\n')[0] ?? '';
      problems.push(...crashProblems(res, ok).map((p) => `${job}: ${p}`));
      if (!expected.test(res.stdout)) problems.push(`${job}: expected ${expected}, got: ${line}`);
      if (!line.startsWith(`MFS ${job.toUpperCase()} `)) problems.push(`${job}: not a Nagios line: ${line}`);
      return line;
    };
    const backup = judge('backup', await runCli(['run', 'backup', '--config', backupCfg]), c.backup, c.backupOk);
    const after = await checkStore(store);
    if (after.problems.length || after.temps.length)
      problems.push(`backup left ${[...after.problems, ...after.temps].join(', ')}`);
    if (!c.backupOk && after.good.length)
      problems.push(`backup took a snapshot of damaged files: ${after.good.join(', ')}`);
    const verify = judge('verify', await runCli(['run', 'verify', '--config', verifyCfg]), c.verify);
    const drill = judge(
      'drill',
      await runCli(['run', 'drill', '--from', 'bad', '--config', drillCfg]),
      /^MFS DRILL (CRITICAL|WARNING|OK) - /,
      c.drillOk,
    );
    const log = `${c.name}:\n  backup ${backup.slice(0, 220)}\n  verify ${verify.slice(0, 220)}\n  drill  ${drill.slice(0, 220)}${problems.length ? `\n  PROBLEMS: ${problems.join('; ')}` : ''}`;
    return { problems, log };
  }

  test('each damage: a specific one-line error from backup, verify and drill; no crash, no snapshot', async () => {
    const results: { problems: string[]; log: string }[] = new Array(cases.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < cases.length; i = next++) results[i] = await runCase(i, cases[i]!);
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    console.log(
      `damaged DATA_PATH files (image version ${ctx.imageVersion}, damaged version ${ctx.victim}):\n${results.map((r) => r.log).join('\n')}`,
    );
    for (const [i, c] of cases.entries()) {
      const ok = results[i]!.problems.length === 0;
      recordFaults({
        area: 'bad file',
        fault: c.name,
        injected: 1,
        survived: ok ? 1 : 0,
        dataLost: 0,
        lostRestorePoints: 0,
        note: 'backup, verify, drill --from',
      });
    }
    expect(cases.flatMap((c, i) => results[i]!.problems.map((p) => `${c.name}: ${p}`))).toEqual([]);
  });
});
