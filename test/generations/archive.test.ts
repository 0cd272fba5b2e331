import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { parseChangelogLine } from '../../lib/moosefs/changelog.js';
import { changelogIndex, isChangelogName } from '../../lib/moosefs/metadata.js';
import { metarestoreArgs } from '../../lib/moosefs/generations/binaries.js';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { labGeneration, prefixRoot, type LabVersion } from '../lab/generations.js';
import { LabMaster } from '../lab/moosefs.js';
import { NetLab, NsChunkserver } from '../lab/netns.js';
import { freePort, sleep } from '../lab/proc.js';

/**
 * The changelog archive on the generations besides Debian's 3.0 (test/jobs/archive-restore.test.ts): 4.59.2
 * following its metalogger, and 1.6.4 — no metalogger before 1.6.5 — following a chunkserver's
 * `changelog_csback.0.mfs`. A snapshot is taken, more changes are made, the master is stopped cleanly
 * at a moment T (its `metadata.mfs` is what it had then), started again and changed further; `run
 * archive` seals what the source holds; `restore --latest --to-time T` from the store (the snapshot plus
 * the segments) rebuilds a DATA_PATH whose rolled-forward image is the master's at T, `mfsmetadump` line
 * for line.
 */
const CS_IP = '10.96.0.1';

/** `mfsmetadump`'s lines for an image: 4.59.2's own; 1.6.27's reads 1.6.4's `MFSM 1.5` images. */
async function metadump(image: string, version: LabVersion): Promise<string[]> {
  const bin = path.join(prefixRoot(), version === '1.6.4' ? '1.6.27' : version, 'sbin', 'mfsmetadump');
  const res = await execCapture(bin, [image], { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`${bin} ${image}: exit ${res.code}: ${res.stderr.trim().slice(0, 300)}`);
  // Sessions' traffic counters are not in the changelog; a section's lines in any order are the same metadata.
  const lines = res.stdout.split('\n').map((l) => l.replace(/\b([cl]):\[[^\]]*\]/g, '$1:[-]'));
  return lines.sort();
}

describe.each<LabVersion>(['4.59.2', '1.6.4'])('archive on MooseFS %s: restore --to-time through the segments', (v) => {
  let lab: Lab;
  let net: NetLab | undefined;
  let cs: NsChunkserver | undefined;
  let config: string;

  const cli = (args: string[]) => runCli([...args, '--config', config, '--json'], { timeoutMs: 120_000 });
  const chunkserverListed = () => NsChunkserver.waitListed(lab.master.ports.cl);

  const startChunkserver = async () => {
    cs = await NsChunkserver.start({}, path.join(lab.dir, 'cs'), '127.0.0.1', lab.generation, {
      MASTER_PORT: String(lab.master.ports.cs),
      CSSERV_LISTEN_HOST: CS_IP,
      CSSERV_LISTEN_PORT: String(await freePort()),
    });
    await chunkserverListed();
  };

  /** A whole second T after the changes so far, and the clock past it: every later change is stamped after T. */
  async function moment(): Promise<number> {
    const t = Math.ceil(Date.now() / 1000);
    await sleep(t * 1000 + 1_100 - Date.now());
    return t;
  }

  /**
   * 1.6.4's master cannot be stopped at T for its image: its chunkserver dies when the master goes away,
   * and the changelog_csback lines still in its 4 KiB stdio buffer with it (moosefs-notes). Its image at T
   * is its own DATA_PATH's (image and changelog.N.mfs, every line stamped up to T) restored by its own
   * mfsmetarestore: the master's record, not the chunkserver's.
   */
  async function masterImageAt(t: number): Promise<string> {
    const dir = path.join(lab.dir, 'oracle');
    await fs.mkdir(dir);
    const names = (await fs.readdir(lab.master.dataPath)).filter(isChangelogName);
    let kept = '';
    for (const name of names.sort((a, b) => changelogIndex(b)! - changelogIndex(a)!)) {
      const text = await fs.readFile(path.join(lab.master.dataPath, name), 'latin1');
      for (const line of text.split('\n'))
        if ((parseChangelogLine(line)?.timestamp ?? Infinity) <= t) kept += `${line}\n`;
    }
    await fs.writeFile(path.join(dir, 'changelog.0.mfs'), kept);
    const image = path.join(dir, 'metadata.mfs.back');
    await fs.copyFile(path.join(lab.master.dataPath, 'metadata.mfs.back'), image);
    const out = path.join(dir, 'metadata.mfs');
    const res = await execCapture(
      lab.generation.mfsmetarestore,
      metarestoreArgs(image, out, [path.join(dir, 'changelog.0.mfs')]),
      { timeoutMs: 60_000 },
    );
    expect(res.code === 0 ? 'ok' : res.stdout + res.stderr).toBe('ok');
    return out;
  }

  beforeAll(async () => {
    lab = await Lab.start({ lab: labGeneration(v) });
    if (v === '1.6.4') {
      // A 1.6.4 master refuses a chunkserver registering from 127.0.0.0/8: it listens on this machine's
      // address on a bridge of the test's own (test/operator/init.test.ts).
      net = await NetLab.create([], '10.96.0', 'mfsa');
      await net.joinFromHost(CS_IP);
    }
    const dataPath = NsChunkserver.dataPathIn(path.join(lab.dir, 'cs'));
    config = await lab.writeConfig({
      ...(v === '1.6.4' ? { chunkservers: [{ name: 'cs1', host: CS_IP, dataPath, local: true }] } : {}),
      jobs: { archive: { ...(v === '1.6.4' ? { sources: ['cs1'] } : {}), segmentSeconds: 1 } },
    });
  }, 120_000);

  afterAll(async () => {
    await cs?.stop().catch(() => undefined);
    await lab?.stop();
    await net?.destroy();
  });

  test('the master at T is what restore --to-time T rebuilds from a snapshot and the archive', async () => {
    await lab.makeChanges('before', 20);
    await lab.saveImage();
    // The chunkserver after the restart that saved the image (it would die there, its buffer with it).
    if (v === '1.6.4') await startChunkserver();
    expect((await cli(['run', 'backup'])).code).toBe(0);
    await lab.makeChanges('after-snapshot', 30);

    let target: number;
    let oracle: string;
    if (v === '1.6.4') {
      target = await moment();
      // 1.6.4's chunkserver writes changelog_csback through a 4 KiB stdio buffer: enough later lines push
      // the ones up to T out.
      await lab.makeChanges('after-target', 150);
      oracle = await masterImageAt(target);
    } else {
      // T: the master stopped cleanly; its metadata.mfs is what it had. Everything later is stamped after T.
      await lab.master.stop();
      oracle = path.join(lab.dir, 'oracle.mfs');
      await fs.copyFile(path.join(lab.master.dataPath, 'metadata.mfs'), oracle);
      target = await moment();
      await lab.master.start();
      await lab.makeChanges('after-target', 20);
    }

    const archive = await cli(['run', 'archive']);
    expect(archive.code === 0 ? 'ok' : archive.stdout).toBe('ok');
    const sealed = (JSON.parse(archive.stdout) as { details: { sealed: { source: { role: string } }[] } }).details
      .sealed;
    expect(sealed.length).toBeGreaterThan(0);
    expect(sealed.map((s) => s.source.role)).toContain(v === '1.6.4' ? 'chunkserver' : 'metalogger');

    const restored = await LabMaster.create(path.join(lab.dir, 'restored'), { bootstrap: false, lab: lab.generation });
    const at = new Date(target * 1000).toISOString();
    const res = await cli(['restore', '--latest', '--to-time', at, '--data-path', restored.dataPath]);
    expect(res.code === 0 ? 'ok' : res.stdout).toBe('ok');
    const names = await fs.readdir(restored.dataPath);
    // The snapshot reaches only its own version: every change after it came from the archive's segments.
    const report = JSON.parse(res.stdout) as { details: { source: string; restoredVersion: number } };
    const snapshotReaches = Number(/-v(\d+)/.exec(report.details.source)?.[1]);
    expect(report.details.restoredVersion).toBeGreaterThan(snapshotReaches + 40);

    // Rolled forward the generation's own way, without serving: then the image is the master's at T.
    if (v === '1.6.4') await restored.metarestore();
    else {
      const roll = await execCapture(lab.generation.mfsmaster, ['-c', restored.configFile, '-a', 'restore'], {
        timeoutMs: 60_000,
      });
      expect(roll.code === 0 ? 'ok' : `${roll.stderr.slice(-500)} in ${names.join(' ')}`).toBe('ok');
    }
    const mine = await metadump(path.join(restored.dataPath, 'metadata.mfs'), v);
    const theirs = await metadump(oracle, v);
    // The oracle holds the changes made between the snapshot and T, and none made after T.
    expect(theirs.filter((l) => l.includes('after-snapshot')).length).toBe(1);
    expect(theirs.filter((l) => l.includes('after-target'))).toEqual([]);
    expect(mine).toEqual(theirs);
  }, 240_000);
});
