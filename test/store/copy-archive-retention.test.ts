import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LIBFAKETIME } from '../lab/clock.js';
import { LabSshd } from '../lab/sshd.js';

/**
 * The recovery window on an off-site copy (issue #26): a real sshd holds the copy; backup's copy retention
 * (its own: keepLast 1, recoveryWindow 1h) drops the snapshot before the window, and with it every archive
 * segment that only that image needed — unless the snapshot is pinned. The local store keeps longer (no
 * window), and the archiver never sends a segment the copy pruned back to it. Snapshots "hours ago" are
 * taken by the real CLI under libfaketime (the MooseFS processes keep the real clock).
 */
describe('archive segments on a copy follow its recovery window and the store pins', () => {
  let lab: Lab;
  let copySshd: LabSshd;
  let remote: string;
  let config: string;
  const ids: string[] = [];

  const cli = async (args: string[], hoursAgo = 0) => {
    const env = hoursAgo
      ? { LD_PRELOAD: LIBFAKETIME, FAKETIME: `-${hoursAgo}h`, FAKETIME_DONT_FAKE_MONOTONIC: '1' }
      : undefined;
    const json = args[0] === 'run' ? ['--json'] : [];
    const res = await runCli([...args, '--config', config, ...json], { env, timeoutMs: 120_000 });
    expect(res.code === 0 ? 'ok' : res.stdout + res.stderr).toBe('ok');
    return (json.length ? JSON.parse(res.stdout) : {}) as {
      summary: string;
      lines: string[];
      details: Record<string, unknown>;
    };
  };
  const onCopy = async (dir: 'snapshots' | 'archive') =>
    (await fs.readdir(path.join(remote, dir)).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  const segmentsInStore = async () =>
    (await fs.readdir(path.join(lab.dir, 'snapshots', 'archive'))).filter((n) => !n.startsWith('.')).sort();
  /** A new image (a backup makes a snapshot only of a new one), then a backup `hoursAgo`. */
  async function snapshot(name: string, hoursAgo: number) {
    await lab.makeChanges(name, 5);
    await lab.saveImage();
    await lab.makeChanges(`${name}-after`, 2);
    const report = await cli(['run', 'backup'], hoursAgo);
    for (const s of report.details.sources as { result: string; snapshot: string }[])
      if (s.result === 'snapshot') ids.push(s.snapshot);
    return report;
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true });
    copySshd = await LabSshd.start(path.join(lab.dir, 'copy-ssh'));
    remote = path.join(lab.dir, 'offsite');
    config = await lab.writeConfig({
      snapshotStore: {
        path: path.join(lab.dir, 'snapshots'),
        compression: 'none',
        copies: [
          copySshd.copyConfig('offsite', remote, {
            timeoutSeconds: 5,
            retention: { keepLast: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0, recoveryWindow: '1h' },
          }),
        ],
      },
      jobs: { archive: { segmentSeconds: 1 } },
    });
  }, 120_000);
  afterAll(async () => {
    await copySshd?.stop();
    await lab?.stop();
  });

  test('a pinned snapshot keeps its segments on the copy; unpinned, both go and are not sent back', async () => {
    await snapshot('a', 3);
    // Segment 1 holds the lines up to here: only snapshot a's image needs them.
    await cli(['run', 'archive']);
    await snapshot('b', 2);
    await lab.makeChanges('c', 3);
    await cli(['run', 'archive']);
    const [first, second] = await onCopy('archive');
    expect(second).toBeDefined();
    expect(ids).toHaveLength(2);

    await cli(['snapshot', 'pin', ids[0]!, '--note', 'before the upgrade']);
    await snapshot('now', 0);
    expect(ids).toHaveLength(3);
    // a is before the window and not the newest before it, but pinned: it and its segment stay.
    expect(await onCopy('snapshots')).toEqual(ids);
    expect(await onCopy('archive')).toEqual([first, second]);

    await cli(['snapshot', 'unpin', ids[0]!]);
    const report = await cli(['run', 'backup']);
    expect(await onCopy('snapshots')).toEqual(ids.slice(1));
    expect(await onCopy('archive')).toEqual([second]);
    expect(report.lines).toContain(
      `copy offsite: removed 1 archive segment older than every image it keeps (${first})`,
    );
    // The store keeps longer (no window): the segment is still there, and the archiver does not push it back.
    expect(await segmentsInStore()).toContain(first);
    await lab.makeChanges('d', 3);
    await cli(['run', 'archive']);
    const after = await onCopy('archive');
    expect(after).not.toContain(first);
    expect(after.length).toBe(2);
  }, 240_000);
});
