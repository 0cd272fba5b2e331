import { createHash } from 'node:crypto';
import { promises as fs, readdirSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../../lib/core/config.js';
import { listCopySegments, openArchiveCopy } from '../../lib/store/copy/archive.js';
import { archiveChain, listSegments, verifySegment, type SegmentManifest } from '../../lib/store/segments.js';
import { runCli, startCli } from '../helpers/cli.js';
import { withoutStore } from '../helpers/store-loss.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster, waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { waitFor } from '../lab/proc.js';
import { LabSshd } from '../lab/sshd.js';
import {
  describeRun,
  iterations,
  lastLogMessage,
  SEED,
  seededRandom,
  shortestRun,
  spreadDelays,
  type KilledRun,
} from './faults.js';
import { recordFaults, tearDownFaults } from './results.js';

/**
 * SIGKILL of `mfs-jobs run archive --follow` (issue #26) following a real metalogger while files are
 * written through a mount, with an SFTP copy on a second sshd: at points spread over a calibrated run
 * (start-up, connecting, reading) and the moment each step of a segment's life begins — staged under
 * archive/.tmp, renamed into place (not pushed yet), its changelog and then its manifest uploading to the
 * copy, its manifest in place. After each kill no reader sees a partial segment; the
 * next run removes the staging leftovers, resumes exactly at the archive's end (no gap, no overlap, every
 * segment's lines exactly its versions), archives up to the master and brings the copy to the store's end.
 * At the end the two archives are equal, and a restore --to-version of the archive's end from either gives
 * the same DATA_PATH.
 */
const SEGMENT_ID = /^\d{8}T\d{6}Z-v\d+$/;

interface Step {
  delay?: number;
  on?: { where: 'store' | 'staging' | 'copy'; match: RegExp; inSegment?: RegExp; nth?: number; what: string };
}

describe('faults: SIGKILL of a following archiver (store and an SFTP copy)', () => {
  let lab: Lab;
  let copySshd: LabSshd;
  let configFile: string;
  let config: Config;
  let remote: string;
  const store = () => path.join(lab.dir, 'snapshots');
  const verified = new Set<string>();
  let writing: { stop(): Promise<number> } | undefined;

  /** Files created through the mount every 20 ms until stopped (each one a few changelog lines). */
  function startWriter(tag: string): { stop(): Promise<number> } {
    let stopped = false;
    let n = 0;
    const dir = path.join(lab.mount!.dir, 'live');
    const done = (async () => {
      while (!stopped) {
        await fs.writeFile(path.join(dir, `${tag}-${n++}`), '');
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    return {
      async stop() {
        stopped = true;
        await done;
        return n;
      },
    };
  }

  const manifests = (l: { segments: { manifest: SegmentManifest }[] }) => l.segments.map((s) => s.manifest);
  async function copyListing() {
    const repo = await openArchiveCopy(config, config.snapshotStore!.copies[0]!, AbortSignal.timeout(30_000));
    try {
      return await listCopySegments(repo, {}, AbortSignal.timeout(30_000));
    } finally {
      await repo.close();
    }
  }

  /** What a reader of either archive sees: complete segments only, gap-free, each exactly its versions. */
  async function readersSee(when: string) {
    const problems: string[] = [];
    const local = await listSegments(store(), {});
    problems.push(...local.broken.map((b) => `${when}: store segment ${b.id} is partial or refused: ${b.error}`));
    const chain = archiveChain(manifests(local));
    problems.push(...chain.holes.map((h) => `${when}: store archive has a gap ${h.from}..${h.to}`));
    problems.push(...chain.overlaps.map((o) => `${when}: store archive overlaps: ${o}`));
    for (const s of local.segments) {
      if (verified.has(s.id)) continue;
      const bad = await verifySegment(s, {});
      problems.push(...bad.map((p) => `${when}: store segment ${s.id}: ${p}`));
      if (!bad.length) verified.add(s.id);
    }
    const copy = await copyListing();
    problems.push(...copy.broken.map((b) => `${when}: copy segment ${b.id} is refused: ${b.error}`));
    const copyChain = archiveChain(manifests(copy));
    problems.push(...copyChain.overlaps.map((o) => `${when}: copy archive overlaps: ${o}`));
    const localById = new Map(local.segments.map((s) => [s.id, s.manifest]));
    for (const s of copy.segments) {
      const mine = localById.get(s.id);
      if (!mine) problems.push(`${when}: copy holds segment ${s.id}, the store does not`);
      else if (mine.files[0]!.sha256 !== s.manifest.files[0]!.sha256)
        problems.push(`${when}: copy segment ${s.id} differs from the store's`);
    }
    const ids = { store: local.segments.map((s) => s.id), copy: copy.segments.map((s) => s.id) };
    return { problems, last: chain.last, incomplete: copy.incomplete, ids };
  }

  /** Start the follower and SIGKILL it (by PID) after `step.delay`, or the moment `step.on` happens. */
  async function runAndKillArchiver(step: Step): Promise<KilledRun & { missed?: boolean }> {
    const run = startCli(['run', 'archive', '--follow', '--config', configFile]);
    const started = Date.now();
    let delayMs = -1;
    const kill = () => {
      if (delayMs >= 0) return;
      delayMs = Date.now() - started;
      run.child.kill('SIGKILL');
    };
    const watchers: FSWatcher[] = [];
    const timers = [setTimeout(kill, step.delay ?? 12_000)];
    if (step.on) {
      const on = step.on;
      const root =
        on.where === 'store'
          ? path.join(store(), 'archive')
          : on.where === 'staging'
            ? path.join(store(), 'archive', '.tmp')
            : path.join(remote, 'archive');
      let seen = 0;
      watchers.push(
        watch(root, (_event, name) => {
          if (!name || !on.match.test(name)) return;
          if (!on.inSegment) {
            if (++seen >= (on.nth ?? 1)) kill();
            return;
          }
          // The upload's own files appear in the new segment's directory on the copy.
          const dir = path.join(root, name);
          try {
            watchers.push(watch(dir, (_e, file) => file && on.inSegment!.test(file) && kill()));
            // Made before the watch was: caught now (an upload finished already is caught on the next segment).
            if (readdirSync(dir).some((file) => on.inSegment!.test(file))) kill();
          } catch {
            // Gone already (pushed and renamed, or a stale event).
          }
        }),
      );
    }
    const result = await run.done;
    for (const t of timers) clearTimeout(t);
    for (const w of watchers) w.close();
    const missed = step.on !== undefined && delayMs >= 12_000;
    return { killed: result.signal === 'SIGKILL', delayMs, result, lastLog: lastLogMessage(result.stderr), missed };
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true });
    copySshd = await LabSshd.start(path.join(lab.dir, 'copy-ssh'));
    remote = path.join(lab.dir, 'offsite');
    configFile = await lab.writeConfig({
      snapshotStore: {
        path: store(),
        compression: 'zstd',
        copies: [copySshd.copyConfig('offsite', remote, { timeoutSeconds: 5 })],
      },
      jobs: { archive: { segmentSeconds: 1, pollSeconds: 0.2 } },
    });
    config = await loadConfig(configFile);
    await fs.mkdir(path.join(lab.mount!.dir, 'live'));
    // An image for the final restore, in the store and on the copy.
    await lab.makeChanges('before', 5);
    await lab.saveImage();
    const backup = await runCli(['run', 'backup', '--config', configFile]);
    if (backup.code !== 0) throw new Error(`backup: ${describeRun(backup)}`);
  }, 120_000);
  afterAll(async () => {
    await writing?.stop().catch(() => undefined);
    await tearDownFaults([copySshd, lab]);
  });

  const timed = iterations('ARCHIVE', 2, 30);

  test('killed at every step of a segment: no partial segment, the next run resumes at the end, the copy catches up', async () => {
    const random = seededRandom(SEED + 26);
    // Calibrate: from start-up to the first segment sealed by this run and on the copy.
    const runMs = await shortestRun(async () => {
      const before = (await listSegments(store(), {})).segments.length;
      writing = startWriter(`calibrate-${Date.now()}`);
      const started = Date.now();
      const run = startCli(['run', 'archive', '--follow', '--config', configFile]);
      try {
        await waitFor(
          'a segment sealed and pushed',
          async () => (await copyListing()).segments.length > before,
          30_000,
          20,
        );
        return Date.now() - started;
      } finally {
        run.child.kill('SIGTERM');
        expect(describeRun(await run.done)).toMatch(/^exit 0/);
        await writing.stop();
        writing = undefined;
      }
    }, 1);

    const plan: Step[] = [
      ...spreadDelays(timed, 100, runMs, random).map((delay) => ({ delay })),
      { on: { where: 'staging', match: /^segment-/, what: 'segment staged under archive/.tmp (sealing)' } },
      { on: { where: 'store', match: SEGMENT_ID, what: 'segment renamed into place, not pushed yet' } },
      {
        on: {
          where: 'copy',
          match: SEGMENT_ID,
          inSegment: /^changelog\..*\.mfs-jobs-part$/,
          what: "segment's changelog uploading to the copy",
        },
      },
      {
        on: {
          where: 'copy',
          match: SEGMENT_ID,
          inSegment: /^manifest\.json\.mfs-jobs-part$/,
          what: "segment's manifest uploading to the copy",
        },
      },
      {
        on: {
          where: 'copy',
          match: SEGMENT_ID,
          inSegment: /^manifest\.json$/,
          what: "segment's manifest in place on the copy (pushed)",
        },
      },
      {
        on: { where: 'staging', match: /^segment-/, nth: 2, what: 'the next segment staged, after a push' },
      },
    ];
    const failures: string[] = [];
    const log: string[] = [];
    let injected = 0;
    let survived = 0;
    for (const [i, step] of plan.entries()) {
      const began = Date.now();
      writing = startWriter(`kill-${i}`);
      let killed: Awaited<ReturnType<typeof runAndKillArchiver>>;
      try {
        killed = await runAndKillArchiver(step);
      } finally {
        await writing.stop();
        writing = undefined;
      }
      const when = step.on ? `on "${step.on.what}" (${killed.delayMs} ms)` : `after ${step.delay} ms`;
      const problems: string[] = [];
      if (killed.killed && !killed.missed) injected++;
      else problems.push(`not killed where planned: ${describeRun(killed.result)}`);

      // Right after the kill: staging leftovers and an unfinished upload are allowed, a partial segment not.
      const after = await readersSee('after the kill');
      problems.push(...after.problems);

      // The next run (one pass): cleans up, resumes at the end, archives up to the master, pushes the rest.
      const target = await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
      const nextStarted = Date.now();
      const next = await runCli(['run', 'archive', '--config', configFile, '--json']);
      const nextMs = Date.now() - nextStarted;
      if (next.code !== 0) problems.push(`next run: ${describeRun(next)}`);
      const clean = await readersSee('after the next run');
      problems.push(...clean.problems);
      const sealed = (JSON.parse(next.stdout || '{}') as { details?: { sealed?: SegmentManifest[] } }).details?.sealed;
      const firstNew = sealed?.[0];
      if (firstNew && after.last !== undefined && firstNew.first !== after.last + 1)
        problems.push(`next run: first new segment starts at ${firstNew.first}, the archive ended at ${after.last}`);
      if (clean.last === undefined || clean.last < target)
        problems.push(`after the next run: the archive ends at ${clean.last}, the metalogger holds ${target}`);
      const temps = await fs.readdir(path.join(store(), 'archive', '.tmp')).catch(() => [] as string[]);
      if (temps.length) problems.push(`after the next run: archive/.tmp holds ${temps.join(', ')}`);
      if (clean.incomplete.length)
        problems.push(`after the next run: copy has unfinished ${clean.incomplete.join(', ')}`);
      if (clean.ids.store.join() !== clean.ids.copy.join())
        problems.push(
          `after the next run: copy holds ${clean.ids.copy.length} segments, the store ${clean.ids.store.length}`,
        );

      if (killed.killed && problems.length === 0) survived++;
      log.push(
        `kill ${when}: last log "${killed.lastLog}"; ${Date.now() - began} ms, next run ${nextMs} ms; archive end ${after.last} → ${clean.last}${after.incomplete.length ? `, copy upload left ${after.incomplete.length}` : ''}${problems.length ? ` — ${problems.join('; ')}` : ''}`,
      );
      failures.push(...problems.map((p) => `iteration ${i} (kill ${when}): ${p}`));
    }
    console.log(`archive kills (seed ${SEED + 26}, first push ${runMs} ms):\n${log.join('\n')}`);
    recordFaults({
      area: 'kill -9',
      fault: 'mfs-jobs run archive --follow',
      injected,
      survived,
      dataLost: 0,
      lostRestorePoints: 0,
      note: `seed ${SEED + 26}`,
    });
    expect(failures).toEqual([]);
    expect(injected).toBe(plan.length);

    // The two archives are equal and gap-free; the archive's end restores the same from either.
    const local = await listSegments(store(), {});
    const copy = await copyListing();
    expect(archiveChain(manifests(copy))).toEqual(archiveChain(manifests(local)));
    expect(archiveChain(manifests(local)).holes).toEqual([]);
    const last = archiveChain(manifests(local)).last!;
    const restored = async (name: string, from: string[]) => {
      const m = await LabMaster.create(path.join(lab.dir, name), { bootstrap: false, ports: lab.master.ports });
      const args = ['restore', ...from, '--to-version', String(last + 1), '--data-path', m.dataPath, '--json'];
      const res = await runCli([...args, '--config', configFile]);
      const report = JSON.parse(res.stdout) as { status: string; summary: string; details: Record<string, unknown> };
      expect({ code: res.code, status: report.status, summary: report.summary }).toMatchObject({ code: 0 });
      return { report, files: await digest(m.dataPath) };
    };
    const fromStore = await restored('restored-store', ['--latest']);
    const fromCopy = await withoutStore(store(), () => restored('restored-copy', ['--from', 'copy:offsite']));
    expect(fromStore.report.details.restoredVersion).toBe(last + 1);
    expect(fromCopy.report.details.restoredVersion).toBe(last + 1);
    expect(fromCopy.files).toEqual(fromStore.files);
  }, 300_000);
});

/** Every file in a DATA_PATH by name: its sha256 (what a restore placed and rolled forward). */
async function digest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir)).sort()) {
    const st = await fs.stat(path.join(dir, name));
    if (st.isFile())
      out[name] = createHash('sha256')
        .update(await fs.readFile(path.join(dir, name)))
        .digest('hex');
  }
  return out;
}
