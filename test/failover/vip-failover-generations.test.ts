import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SYNC_UP, sha256 as sha, useFailoverLab, writeFiles, writeDurably } from '../lab/failover.js';
import {
  ClientWatch,
  formatTimeline,
  promoteEvents,
  ucarpMasterAt,
  type TimelineEvent,
} from '../lab/failover-timeline.js';
import { labGeneration } from '../lab/generations.js';
import { waitFor } from '../lab/proc.js';

/**
 * The real virtual-IP failover (test/lab/failover.ts) on the MooseFS generations besides Debian's 3.0.117
 * (test/failover/vip-failover.test.ts): A dies (kill -9 of mfsmaster and ucarp, link down); B's ucarp
 * runs the shipped up-script, which runs `mfs-jobs run promote` with that generation's binaries.
 */

const s = (ms: number) => (ms / 1000).toFixed(2);

describe('virtual-IP failover on MooseFS 4.59.2 (its own master, metalogger, chunkserver and mfsmount)', () => {
  const VIP = '10.81.0.100';
  const suite = useFailoverLab({ prefix: '10.81.0', vip: VIP, lab: labGeneration('4.59.2') });

  test('kill -9 of A: B promotes with mfsmaster -a of 4.59.2, a fresh mount reads every file, the client writes again', async () => {
    const { lab, A, B, masterA, standbyB, mount } = suite;
    expect((await masterA.info()).softwareVersion).toBe('4.59.2');
    const written = new Map<string, string>();
    await writeFiles(mount, 'before', 60, written);
    const target = (await masterA.info()).metadataVersion - 1;
    await waitFor(
      `metalogger to reach version ${target}`,
      async () => ((await lab.metalogger!.lastVersion()) ?? 0) >= target,
      20_000,
    );
    const lastPromoteBefore = await lab.readPromoteState(B);

    const killedAt = Date.now();
    await lab.crash(A);

    await waitFor('VIP on B', async () => (await B.addresses()).includes(VIP), 30_000, 50);
    const vipAt = Date.now();
    const info = await waitFor('master on B to serve', async () => standbyB.info().catch(() => undefined), 60_000, 50);
    const servingAt = Date.now();
    const state = await lab.waitPromoteAfter(B, killedAt, lastPromoteBefore);
    expect(`${state.status}: ${state.summary}`).toMatch(
      /^OK: promoted: serving metadata version \d+ in [\d.]+ s from ml-c; RPO 0 versions$/,
    );
    expect(state.details?.restoreCommand).toBe('mfsmaster -a');
    expect(info.softwareVersion).toBe('4.59.2');
    expect(state.details?.plan?.reached).toBeGreaterThanOrEqual(target + 1);
    expect(info.metadataVersion).toBeGreaterThanOrEqual(target + 1);

    // The client's mount from before carries on: its first write through the VIP after the crash.
    const after = randomBytes(4096);
    await waitFor(
      'a write through the old mount',
      async () => {
        await writeDurably(path.join(mount.dir, 'after-failover'), after);
        return true;
      },
      60_000,
      200,
    );
    const writeAt = Date.now();
    written.set('after-failover', sha(after));
    console.log(
      `4.59.2 RTO (kill -9 of A at t=0): VIP on B ${s(vipAt - killedAt)} s, master on B serving ${s(servingAt - killedAt)} s, ` +
        `first client write ${s(writeAt - killedAt)} s; promote's own RTO ${state.details?.rtoSeconds} s (ms: ${JSON.stringify(state.details?.timings)})`,
    );

    // Every acknowledged file, read from a freshly started mount (no page cache of the first).
    const fresh = await lab.freshMount('mnt-fresh');
    for (const [name, digest] of written) expect(sha(await fs.readFile(path.join(fresh.dir, name)))).toBe(digest);
    const more = randomBytes(100_000);
    await writeDurably(path.join(mount.dir, 'new-after-failover'), more);
    expect(sha(await fs.readFile(path.join(fresh.dir, 'new-after-failover')))).toBe(sha(more));
  }, 180_000);
});

/** Complete lines of a changelog (a last line without its newline was cut by a crash and does not count). */
async function completeLines(file: string): Promise<string[]> {
  const lines = (await fs.readFile(file, 'latin1')).split('\n');
  lines.pop();
  return lines;
}

/** Every complete line of the changelogs named `pattern` in `dir`: version → operation. */
async function changes(dir: string, pattern: RegExp): Promise<Map<number, string>> {
  const held = new Map<number, string>();
  for (const name of (await fs.readdir(dir)).filter((n) => pattern.test(n))) {
    for (const line of await completeLines(path.join(dir, name))) {
      const m = /^(\d+): \d+\|(.*)$/.exec(line);
      if (m) held.set(Number(m[1]), m[2]!);
    }
  }
  return held;
}

async function lastVersion(dir: string, pattern: RegExp): Promise<number> {
  return Math.max(...(await changes(dir, pattern)).keys());
}

/**
 * What the restored changes say of each file written under `dir`: `whole` when its CREATE and its
 * LENGTH (the size written) are there, `created` when only the CREATE is, `absent` otherwise. A 1.6.4
 * master logs CREATE(parent,name,…):inode, AQUIRE, WRITE(inode,…):chunk, LENGTH(inode,size), UNLOCK.
 */
function fileFates(
  restored: Iterable<string>,
  dirs: string[],
  sizes: Map<string, number>,
): Map<string, 'whole' | 'created' | 'absent'> {
  const ops = [...restored];
  const inodes = new Map<string, number>();
  for (const d of dirs) {
    const dirInode = ops.map((op) => new RegExp(`^CREATE\\(1,${d},d,.*\\):(\\d+)$`).exec(op)).find((m) => m)?.[1];
    if (!dirInode) continue;
    for (const op of ops) {
      const m = new RegExp(`^CREATE\\(${dirInode},([^,]+),f,.*\\):(\\d+)$`).exec(op);
      if (m) inodes.set(`${d}/${m[1]}`, Number(m[2]));
    }
  }
  const fates = new Map<string, 'whole' | 'created' | 'absent'>();
  for (const [name, size] of sizes) {
    const inode = inodes.get(name);
    fates.set(name, inode === undefined ? 'absent' : ops.includes(`LENGTH(${inode},${size})`) ? 'whole' : 'created');
  }
  return fates;
}

describe("virtual-IP failover on MooseFS 1.6.4, the seed's recipe done by mfs-jobs: hourly backup of the master, chunkservers' changelog_csback", () => {
  const VIP = '10.82.0.100';
  // The seed's hook form: ucarp's up-script runs promote and waits for it; ucarp announces the VIP after.
  const suite = useFailoverLab({ prefix: '10.82.0', vip: VIP, lab: labGeneration('1.6.4'), upScript: SYNC_UP });

  test('kill -9 of A: B restores the backup image + the csback changes with mfsmetarestore; a fresh mount reads every file whose changes reached the chunkserver', async () => {
    const { lab, A, B, masterA, standbyB, mount } = suite;
    expect((await masterA.info()).softwareVersion).toBe('1.6.4');
    const written = new Map<string, string>();
    // 200 files before the seed's hourly pull (all must come back), 30 after it (only the chunkserver has them).
    await writeFiles(mount, 'hourly', 200, written);
    // The seed's cron job on B: pull the master's metadata.mfs.back (and what rolls it forward) into B's store.
    const backup = await lab.runJobs(B, ['run', 'backup']);
    expect(`${backup.stdout}${backup.stderr}`).toMatch(
      /^MFS BACKUP OK - master-a: snapshot \S+: metadata\.mfs\.back version \d+ \+ /,
    );
    expect(backup.code).toBe(0);
    // Written after the pull: only the chunkserver's changelog_csback can bring these back.
    await writeFiles(mount, 'later', 30, written);
    const sizes = new Map<string, number>();
    for (const name of written.keys()) sizes.set(name, (await fs.stat(path.join(mount.dir, name))).size);
    const lastPromoteBefore = await lab.readPromoteState(B);
    // Before the failure, verify on B says whether the pre-1.6.5 restore point holds: the newest snapshot's
    // image rolled forward with the chunkserver's changelog_csback, gap-free, close behind the master.
    const verify = await lab.runJobs(B, ['run', 'verify', '--json']);
    const verdict = JSON.parse(verify.stdout) as { status: string; summary: string; lines: string[] };
    expect(`${verdict.status}: ${verdict.summary}`).toMatch(/^(OK|WARNING): /);
    expect(verdict.lines.join('\n')).toMatch(
      /^cs-c: (OK|WARNING) - snapshot \S+ version \d+ \+ changelog_csback, restores to \d+/m,
    );

    const killedAt = Date.now();
    const clients = await ClientWatch.start({
      killedAt,
      standbyNetPid: lab.ucarps.get(B)!.daemon.pid,
      clientIp: lab.C.ip,
      clientPort: 9421,
      chunkserverPort: 9420,
      chunkserverLog: path.join(lab.chunkserverDir, 'mfschunkserver.log'),
      chunkserverAlive: () => lab.chunkserver!.daemon.running,
      clientNetPid: mount.daemon.pid,
      vip: VIP,
    });
    await lab.crash(A);
    // What the dead master wrote (its own changelog, on A's disk, which promote cannot reach), and what the
    // chunkserver holds: it writes changelog_csback through a stdio buffer, so its file ends mid-line.
    const masterReached = (await lastVersion(masterA.dataPath, /^changelog\.\d+\.mfs$/)) + 1;
    const csback = /^changelog_csback\.\d+\.mfs$/;
    const held = await changes(lab.chunkserver!.dataPath, csback);
    const csReached = (await lastVersion(lab.chunkserver!.dataPath, csback)) + 1;
    const cut = !(await fs.readFile(path.join(lab.chunkserver!.dataPath, 'changelog_csback.0.mfs'), 'latin1')).endsWith(
      '\n',
    );
    const chunkIdsOnChunkserver = async () => {
      const files = await fs.readdir(path.join(lab.chunkserverDir, 'chunks'), { recursive: true });
      return new Set(
        files
          .map((f) => /chunk_([0-9A-F]{16})_/.exec(String(f))?.[1])
          .filter((h) => h)
          .map((h) => parseInt(h!, 16)),
      );
    };
    const chunksBefore = await chunkIdsOnChunkserver();

    await waitFor('VIP on B', async () => (await B.addresses()).includes(VIP), 30_000, 50);
    const vipAt = Date.now();
    const state = await lab.waitPromoteAfter(B, killedAt, lastPromoteBefore);
    const servingAt = Date.now();
    // A cut csback line means changes sat in the chunkserver's buffer: promote says so (WARNING), although no source shows a hole.
    expect(`${state.status}: ${state.summary}`).toMatch(
      cut
        ? /^WARNING: promoted: serving metadata version \d+ in [\d.]+ s from snapshot:\S+ \+ cs-c; RPO 0 versions; cs-c:changelog_csback\.\d+\.mfs ended mid-line: changes after version \d+ were still in its writer's buffer and are lost; the lost files' chunks are still on the chunkservers/
        : /^OK: promoted: serving metadata version \d+ in [\d.]+ s from snapshot:\S+ \+ cs-c; RPO 0 versions$/,
    );
    expect(state.details?.restoreCommand).toBe('mfsmetarestore');
    expect(state.details?.moosefs).toBe('1.6.4');
    // Promote announced the VIP itself once its master served, before its up-script returned to ucarp (the
    // up-script logs its end once promote has printed its lines).
    await waitFor('the up-script to return', async () => ((await lab.syncHookTimes(B))?.end ?? 0) * 1000 > killedAt);
    expect(await fs.readFile(path.join(lab.dir, B.name, 'hook.log'), 'utf8')).toContain(
      `virtual IP ${VIP} announced on ${B.iface} (gratuitous ARP)`,
    );
    // 1.6.4's master does not raise its next chunk id past the chunks a chunkserver reports: promote raised it
    // in the restored image, past every id the lost changes (still on the chunkserver) may have used.
    const chunkIds = state.details?.chunkIds;
    if (!chunkIds || 'error' in chunkIds)
      throw new Error(`promote did not raise the next chunk id: ${JSON.stringify(chunkIds)}`);
    expect(BigInt(chunkIds.to)).toBeGreaterThan(BigInt(Math.max(...chunksBefore)));
    // The newest version reached is the chunkserver's last complete line: nothing more exists anywhere alive.
    expect(state.details?.plan?.reached).toBe(csReached);
    expect(state.details?.metadataVersion).toBe(csReached);
    const info = await standbyB.info();
    expect(info.softwareVersion).toBe('1.6.4');

    // The old mount writes data as soon as the master serves, while the chunkserver reconnects (below).
    // The old mount's first write of data: each attempt a new file (a file whose write failed keeps its chunk).
    const after = randomBytes(100_000);
    const failures: string[] = [];
    let attempt = 0;
    const firstWrite = waitFor(
      'a write of data through the old mount',
      async () => {
        const name = `after-failover-${attempt++}`;
        const began = Date.now();
        try {
          await writeDurably(path.join(mount.dir, 'later', name), after);
          return true;
        } catch (err) {
          failures.push(
            `${name}: ${(err as NodeJS.ErrnoException).code ?? String(err)} after ${s(Date.now() - began)} s`,
          );
          return false;
        }
      },
      120_000,
      200,
    ).then(() => Date.now());

    // A 1.6.4 chunkserver often dies (SIGSEGV) at its first reconnect after its master died: then started again on its chunks.
    const csExit = await lab.chunkserverFollow(B);
    const csBackAt = Date.now();
    // Before the fresh mount below: the timeline's connections to B are then the old mount's.
    const writeAt = await firstWrite;
    const clientEvents = clients.stop();
    console.log(
      `1.6.4 RPO: the dead master had written up to version ${masterReached - 1}, the chunkserver's changelog_csback held ${csReached - 1} ` +
        `(${cut ? 'then a cut line' : 'ending in a whole line'}): ${masterReached - csReached} versions lost, what sat in the chunkserver's stdio buffer ` +
        `(promote's own RPO against the newest source: ${state.details?.rpo?.versions}). RTO: VIP on B ${s(vipAt - killedAt)} s, ` +
        `promote finished ${s(servingAt - killedAt)} s; promote's own RTO ${state.details?.rtoSeconds} s (ms: ${JSON.stringify(state.details?.timings)}). ` +
        `Chunkserver after the failover: ${csExit ? `died (${csExit.signal ?? `exit ${csExit.code}`}), started again` : 'carried on'}`,
    );

    // Every acknowledged file whose changes reached the chunkserver reads back whole from a FRESH mount
    // (never the old one: its page cache proves nothing); the backup's files all do.
    const fates = fileFates(held.values(), ['hourly', 'later'], sizes);
    const fresh = await lab.freshMount('mnt-fresh');
    const counts = { whole: 0, created: 0, absent: 0 };
    for (const [name, digest] of written) {
      const fate = fates.get(name)!;
      counts[fate]++;
      if (name.startsWith('hourly/')) expect(`${name}: ${fate}`).toBe(`${name}: whole`);
      if (fate === 'whole')
        expect(`${name}: ${sha(await fs.readFile(path.join(fresh.dir, name)))}`).toBe(`${name}: ${digest}`);
      // Its CREATE reached the chunkserver but not its LENGTH: the file is there, without its data.
      if (fate === 'created') expect((await fs.stat(path.join(fresh.dir, name))).isFile()).toBe(true);
      // Its changes sat in the chunkserver's buffer: the restored filesystem never had it.
      if (fate === 'absent') await expect(fs.stat(path.join(fresh.dir, name))).rejects.toThrow(/ENOENT/);
    }
    console.log(`1.6.4 files after the failover (of ${written.size} acknowledged): ${JSON.stringify(counts)}`);
    expect(counts.whole).toBeGreaterThanOrEqual(200);

    // The client's mount from before: on 1.6.4 it gets "Input/output error" for good unless the restored
    // master knows its session (moosefs-src/README). promote restores sessions.mfs beside the image (the
    // backup took it from the master), so the old mount carries on: it lists, creates, and the fresh mount sees it.
    expect((await fs.readdir(mount.dir)).sort()).toEqual(['hourly', 'later']);
    // Where the seconds went: ucarp, the up-script, promote's phases, the clients (see test/lab/failover-timeline.ts).
    const since = (ms: number | undefined, what: string): TimelineEvent[] =>
      ms === undefined ? [] : [{ ms: ms - killedAt, what }];
    const hook = await lab.syncHookTimes(B);
    const timeline = formatTimeline([
      { ms: 0, what: "kill -9 of A's master and ucarp, A's link down" },
      ...since(await ucarpMasterAt(path.join(lab.dir, `ucarp-${B.name}.log`), killedAt), 'ucarp on B: MASTER'),
      ...since(hook && hook.start * 1000, 'up-script started (adds the VIP, runs promote)'),
      ...promoteEvents(state, killedAt),
      ...since(hook && hook.end * 1000, 'up-script returned: ucarp announces the VIP (gratuitous ARP)'),
      ...clientEvents,
      ...since(csBackAt, 'chunkserver registered (seen by the test)'),
      ...since(writeAt, 'first write of data through the old mount acknowledged'),
    ]);
    console.log(`1.6.4 failover timeline (s after the kill):\n${timeline}`);
    // Issue 24's goal (≤ 10 s, met in 10 of 11 rounds under load: BENCHMARKS.md) is a bench figure, not a timed
    // test; what fails here is a regression of the kind it fixed: the 30 s of a fixed timer or a client back-off.
    if (writeAt - killedAt > 20_000)
      throw new Error(
        `the old mount's first write came ${s(writeAt - killedAt)} s after the kill (goal 10 s):\n${timeline}`,
      );
    // Which chunk ids the new master handed out, and which of them the chunkserver already held.
    const newChanges = await changes(standbyB.dataPath, /^changelog\.\d+\.mfs$/);
    const handedOut = [...newChanges]
      .filter(([v]) => v >= csReached)
      .map(([, op]) => op)
      .map((op) => Number(/^WRITE\(.*\):(\d+)$/.exec(op)?.[1] ?? 0))
      .filter((id) => id > 0);
    const restoredChunks = [...held.values()].map((op) => Number(/^WRITE\(.*\):(\d+)$/.exec(op)?.[1] ?? 0));
    console.log(
      `1.6.4 old mount: first write of data ${s(writeAt - killedAt)} s after the kill, ${s(writeAt - servingAt)} s after promote finished ` +
        `(failed attempts: ${failures.join(', ') || 'none'}; the chunkserver back ${s(csBackAt - killedAt)} s after the kill). Chunk ids: the restored changes allocated up to ${Math.max(...restoredChunks)}, ` +
        `the chunkserver held up to ${Math.max(...chunksBefore)}; the new master handed out ${handedOut.join(', ')} ` +
        `(already on the chunkserver: ${handedOut.filter((id) => chunksBefore.has(id)).join(', ') || 'none'})`,
    );
    expect(sha(await fs.readFile(path.join(fresh.dir, 'later', `after-failover-${attempt - 1}`)))).toBe(sha(after));
    // Before promote raised the next chunk id, each write got an id the chunkserver held and failed with EIO
    // after 29 s (mfsmount's 30 tries): the first write of data came 131 s after the kill (4 such failures).
    expect(handedOut.filter((id) => chunksBefore.has(id))).toEqual([]);
    // What may still fail is the chunkserver's absence (ENOSPC: no chunkserver registered yet; a 1.6.4 one
    // notices its master is gone only at its next NOP, up to 30 s, then dies and is started again): the
    // write goes through as soon as it is back.
    expect(failures.filter((f) => !/: ENOSPC after/.test(f))).toEqual([]);
    expect(writeAt - Math.max(servingAt, csBackAt)).toBeLessThan(5_000);
  }, 240_000);
});
