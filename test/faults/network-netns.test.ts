import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { runCli, type CliResult } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import type { LabMaster } from '../lab/moosefs.js';
import { NetLab, type Machine } from '../lab/netns.js';
import { waitFor } from '../lab/proc.js';
import { LabSshd } from '../lab/sshd.js';
import { checkStore, crashProblems, describeRun, transferUnderWay } from './faults.js';
import { tearDownFaults } from './results.js';

/**
 * Link faults made by the kernel, not by a proxy: the master's host S (sshd) and the backup host D
 * (`mfs-jobs run backup`) are network namespaces on a bridge. A slow link is a `tc` token-bucket filter
 * on S's interface (this kernel has no netem); a dead link is S's interface going down mid-transfer, so
 * packets vanish without a reset. Each: a bounded time, one clear line, no snapshot from a partial
 * transfer, nothing left in .tmp; the link healthy again, the next backup is OK.
 */

const RATE = 300_000;

describe('faults: kernel link faults between backup and the master host (tc, link down, in namespaces)', () => {
  let dir: string;
  let net: NetLab;
  let S: Machine, D: Machine;
  let big: LabMaster;
  let sshd: LabSshd;
  let imageBytes: number;
  const rows: { fault: string; ok: boolean; note: string }[] = [];

  async function config(name: string, extra: Record<string, unknown> = {}): Promise<{ file: string; store: string }> {
    const store = path.join(dir, `store-${name}`);
    const doc = {
      timezone: 'UTC',
      stateDir: path.join(dir, `state-${name}`),
      ssh: {
        port: 22,
        user: 'root',
        privateKey: sshd.clientKey,
        knownHosts: sshd.knownHosts,
        connectTimeoutSeconds: 5,
      },
      masters: [{ name: 'big', host: S.ip, dataPath: big.dataPath, cliPort: big.ports.cl }],
      metaloggers: [],
      snapshotStore: { path: store },
      ...extra,
    };
    const file = path.join(dir, `${name}.yaml`);
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    return { file, store };
  }

  /** `mfs-jobs run backup` on D, timed. */
  async function backupFromD(file: string): Promise<{ res: CliResult; seconds: number }> {
    const started = Date.now();
    const res = await runCli(['run', 'backup', '--config', file], { wrap: D.wrap, timeoutMs: 180_000 });
    return { res, seconds: (Date.now() - started) / 1000 };
  }

  /** A fault that must end in a clean CRITICAL: the line, the time bound, an untouched store. */
  async function judge(
    fault: string,
    r: { res: CliResult; seconds: number },
    bound: number,
    expected: RegExp,
    store: string,
  ): Promise<string[]> {
    const problems = crashProblems(r.res).map((p) => `${fault}: ${p}`);
    if (!expected.test(r.res.stdout))
      problems.push(`${fault}: expected ${expected}, got: ${r.res.stdout.split('\n')[0]}`);
    if (r.seconds > bound) problems.push(`${fault}: took ${r.seconds.toFixed(1)} s, bound ${bound} s`);
    const after = await checkStore(store);
    if (after.good.length || after.problems.length || after.temps.length)
      problems.push(`${fault}: store holds ${JSON.stringify(after)}`);
    console.log(`${fault} (${r.seconds.toFixed(1)} s): ${describeRun(r.res)}`);
    rows.push({ fault, ok: problems.length === 0, note: `${r.seconds.toFixed(1)} s, bound ${bound} s` });
    return problems;
  }

  /** A backup that must succeed with one verified snapshot. */
  async function healthy(what: string, r: { res: CliResult; seconds: number }, store: string): Promise<string[]> {
    const after = await checkStore(store);
    const problems = crashProblems(r.res, true).map((p) => `${what}: ${p}`);
    if (r.res.code !== 0 || after.good.length !== 1 || after.problems.length || after.temps.length)
      problems.push(`${what}: ${describeRun(r.res)}; store ${JSON.stringify(after)}`);
    return problems;
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-netns-'));
    net = await NetLab.create(['S', 'D'], '10.79.0');
    [S, D] = [net.machine('S'), net.machine('D')];
    big = await bigMaster(path.join(dir, 'big'), 40_000);
    imageBytes = (await fs.stat(path.join(big.dataPath, 'metadata.mfs.back'))).size;
    sshd = await LabSshd.start(path.join(dir, 'ssh-s'), { host: S.ip, port: 22, wrap: S.wrap });
  });

  afterAll(async () => {
    const destroyNet = async () => {
      await net.destroy();
      expect(await net.leftovers()).toEqual([]);
    };
    const removeDir = () => fs.rm(dir, { recursive: true, force: true });
    await tearDownFaults(
      [sshd, big, net ? destroyNet : undefined, dir && !process.env.MFS_JOBS_KEEP_TEST_DIR ? removeDir : undefined],
      rows,
    );
  });

  test("a slow link (tc tbf, 300 kB/s): the snapshot completes at the link's pace and verifies; a job timeout shorter than the copy ends it cleanly", async () => {
    await S.limitRate(RATE);
    try {
      const ok = await config('tc-slow');
      const done = await backupFromD(ok.file);
      const problems = await healthy('slow link', done, ok.store);
      // The shaping really applied: the image alone needs imageBytes / RATE seconds through the filter.
      if (done.seconds < (imageBytes / RATE) * 0.8)
        problems.push(`slow link: ${done.seconds.toFixed(1)} s for ${imageBytes} bytes: not shaped`);
      console.log(
        `slow link (tc tbf ${RATE / 1000} kB/s, ${imageBytes} bytes image): ${done.seconds.toFixed(1)} s: ${describeRun(done.res)}`,
      );
      rows.push({
        fault: `slow link in the kernel (tc tbf ${RATE / 1000} kB/s)`,
        ok: problems.length === 0,
        note: `${done.seconds.toFixed(1)} s for ${(imageBytes / 1e6).toFixed(1)} MB`,
      });

      const tight = await config('tc-timeout', { jobs: { backup: { timeoutSeconds: 3 } } });
      const cut = await backupFromD(tight.file);
      problems.push(
        ...(await judge(
          'slow link in the kernel beyond jobs.backup.timeoutSeconds',
          cut,
          10,
          /^MFS BACKUP CRITICAL - timed out after 3 s \(jobs\.backup\.timeoutSeconds\)/,
          tight.store,
        )),
      );
      expect(problems).toEqual([]);
    } finally {
      await S.unlimitRate();
    }
  }, 120_000);

  test("the master host's link goes down mid-transfer (packets dropped, no reset): the run ends by itself, no snapshot; link back: OK", async () => {
    await S.limitRate(RATE); // slow enough to be caught mid-transfer
    const down = await config('link-down');
    try {
      const run = backupFromD(down.file);
      await waitFor('the transfer to be under way', () => transferUnderWay(down.store), 30_000, 20);
      await S.linkDown();
      const problems = await judge(
        'master host link down mid-transfer (kernel)',
        await run,
        45,
        /^MFS BACKUP CRITICAL - big: big \(10\.79\.0\.1:22\): download \S+metadata\.mfs\.back: no answer for \d+ s \(SSH keepalive\): the link went silent/,
        down.store,
      );

      await S.linkUp();
      await S.unlimitRate();
      problems.push(...(await healthy('link back up', await backupFromD(down.file), down.store)));
      expect(problems).toEqual([]);
    } finally {
      await S.linkUp().catch(() => undefined);
      await S.unlimitRate().catch(() => undefined);
    }
  }, 120_000);
});
