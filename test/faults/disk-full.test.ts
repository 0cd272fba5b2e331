import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { runCli, startCli } from '../helpers/cli.js';
import { bigMaster } from '../helpers/generated.js';
import { Lab, masterEntry } from '../lab/cluster.js';
import type { LabMaster } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { FaultProxy, knownHostsAt } from '../lab/proxy.js';
import { checkStore, crashProblems, describeRun } from './faults.js';
import { recordFaults, tearDownFaults } from './results.js';

/**
 * The snapshot store on a small tmpfs that fills up: by a snapshot bigger than the room left, and by
 * something else writing to the same filesystem while a copy crawls over a slow link. Each time: a
 * clear "no space" error naming ENOSPC and the store, every earlier snapshot intact, nothing left in
 * .tmp; once there is room again, the next run succeeds.
 */
describe('faults: the snapshot store runs out of space', () => {
  let lab: Lab;
  let big: LabMaster;
  let link: FaultProxy;
  let store: string;
  let mounted = false;
  let smallCfg: string;
  let bigCfg: string;
  let slowCfg: string;
  let imageBytes: number;

  const remount = (size: string) => execCapture('mount', ['-o', `remount,size=${size}`, store], { timeoutMs: 10_000 });

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: false, mount: true });
    await lab.makeChanges('small', 10);
    await lab.saveImage();
    big = await bigMaster(path.join(lab.dir, 'big'), 60_000);
    imageBytes = (await fs.stat(path.join(big.dataPath, 'metadata.mfs.back'))).size;
    link = await FaultProxy.start({ host: '127.0.0.1', port: lab.sshd!.port }, { bytesPerSecond: 1_000_000 });
    const knownHosts = await knownHostsAt(lab, link.port, 'slow');
    store = path.join(lab.dir, 'store');
    await fs.mkdir(store, { mode: 0o700 });
    const res = await execCapture('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', store], {
      timeoutMs: 10_000,
    });
    if (res.code !== 0) throw new Error(`mount tmpfs: ${res.stderr}`);
    mounted = true;
    const doc = (masters: object[], sources: string[]) => ({
      masters,
      snapshotStore: { path: store },
      jobs: { backup: { sources } },
    });
    const all = [masterEntry('master', lab.master), masterEntry('big', big)];
    smallCfg = await lab.writeConfig(doc(all, ['master']), 'small.yaml');
    // big is another filesystem than the lab's master: a cluster of its own (its own state dir, where
    // backup learns its identity), sharing only the small store that fills up.
    const bigState = { stateDir: path.join(lab.dir, 'state-big') };
    bigCfg = await lab.writeConfig({ ...doc(all, ['big']), ...bigState }, 'big.yaml');
    slowCfg = await lab.writeConfig(
      { ...doc([masterEntry('big', big, { port: link.port, knownHosts })], ['big']), ...bigState },
      'slow.yaml',
    );
  });
  afterAll(async () => {
    await tearDownFaults([
      mounted ? () => execCapture('umount', [store], { timeoutMs: 10_000 }) : undefined,
      link,
      big,
      lab,
    ]);
  });

  test('a snapshot bigger than the room left, and a disk filled by someone else mid-transfer: ENOSPC named, earlier snapshots intact, .tmp empty', async () => {
    const problems: string[] = [];
    expect(describeRun(await runCli(['run', 'backup', '--config', smallCfg]))).toMatch(/^exit 0: MFS BACKUP OK/);
    const before = await checkStore(store);
    expect(before.good).toHaveLength(1);
    expect(imageBytes).toBeGreaterThan(3 << 20);

    // 1. The image does not fit in the 3 MiB store.
    const tooBig = await runCli(['run', 'backup', '--config', bigCfg]);
    console.log(`image bigger than the store: ${describeRun(tooBig)}`);
    problems.push(...crashProblems(tooBig).map((p) => `too big: ${p}`));
    if (
      !/^MFS BACKUP CRITICAL - big: snapshot store \S+: not enough free space for this snapshot: it needs [\d.]+ MB .*the copy would fail with ENOSPC/.test(
        tooBig.stdout,
      )
    )
      problems.push(`too big: no clear "no space" error: ${tooBig.stdout.split('\n')[0]}`);
    const afterTooBig = await checkStore(store);
    if (afterTooBig.good.join() !== before.good.join() || afterTooBig.problems.length || afterTooBig.temps.length)
      problems.push(`too big: store now ${JSON.stringify(afterTooBig)}`);

    // 2. Room for the image, but another writer fills the filesystem while the copy crawls.
    await remount('8m');
    const run = startCli(['run', 'backup', '--config', slowCfg]);
    await waitFor(
      'image bytes to land',
      async () => {
        // A compressing store copies over SFTP to `<name>.download` first (issue 28), a plain one to the name.
        for (const stage of await fs.readdir(path.join(store, '.tmp')).catch(() => [] as string[])) {
          for (const name of ['metadata.mfs.back', 'metadata.mfs.back.download']) {
            const st = await fs.stat(path.join(store, '.tmp', stage, name)).catch(() => undefined);
            if (st && st.size > 0) return true;
          }
        }
        return undefined;
      },
      30_000,
      20,
    );
    const filler = path.join(store, 'filler');
    await execCapture('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { timeoutMs: 30_000 });
    const filled = await run.done;
    await fs.rm(filler);
    console.log(`disk filled mid-transfer: ${describeRun(filled)}`);
    problems.push(...crashProblems(filled).map((p) => `filled: ${p}`));
    if (
      !/^MFS BACKUP CRITICAL - big: snapshot store \S+: no space left on device \(ENOSPC\) while copying [\d.]+ MB from big:\S+; the partial snapshot was removed, earlier snapshots are untouched/.test(
        filled.stdout,
      )
    )
      problems.push(`filled: no clear "no space" error: ${filled.stdout.split('\n')[0]}`);
    const afterFilled = await checkStore(store);
    if (afterFilled.good.join() !== before.good.join() || afterFilled.problems.length || afterFilled.temps.length)
      problems.push(`filled: store now ${JSON.stringify(afterFilled)}`);

    // 3. Room again: the next run succeeds.
    await remount('16m');
    const next = await runCli(['run', 'backup', '--config', bigCfg]);
    if (next.code !== 0) problems.push(`with room again: ${describeRun(next)}`);
    const end = await checkStore(store);
    if (end.good.length !== 2 || end.problems.length || end.temps.length)
      problems.push(`with room again: store now ${JSON.stringify(end)}`);

    recordFaults({
      area: 'disk',
      fault: 'snapshot store full (tmpfs): image bigger than the room left',
      injected: 1,
      survived: !problems.some((p) => p.startsWith('too big')) ? 1 : 0,
      dataLost: 0,
      lostRestorePoints: before.good.filter((id) => !afterTooBig.good.includes(id)).length,
    });
    recordFaults({
      area: 'disk',
      fault: 'snapshot store full (tmpfs): filled by another writer mid-transfer',
      injected: 1,
      survived: !problems.some((p) => p.startsWith('filled')) ? 1 : 0,
      dataLost: 0,
      lostRestorePoints: before.good.filter((id) => !afterFilled.good.includes(id)).length,
    });
    expect(problems).toEqual([]);
  });
});
