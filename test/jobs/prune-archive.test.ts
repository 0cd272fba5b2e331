import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { LIBFAKETIME } from '../lab/clock.js';
import { LabSshd } from '../lab/sshd.js';
import { restoreFrom, type ImageHeader } from '../../lib/moosefs/metadata.js';

interface Report {
  status: string;
  summary: string;
  lines: string[];
  details: Record<string, unknown>;
}
interface Span {
  id: string;
  first: number;
  last: number;
}

/**
 * `run prune` applies the recovery window to the changelog archive as backup does (issue #26): in the store
 * and on an SFTP copy (a real sshd), the segments whose lines are all older than every image kept there go,
 * a pinned snapshot's stay, the newest always stays; `--dry-run` removes nothing and names them; a second
 * run removes nothing more. Backups (and so the archive) run under a config without a window, so every
 * removal seen is prune's. Snapshots "hours ago" are taken by the real CLI under libfaketime.
 */
describe('prune removes archive segments older than every retained image (store and SFTP copy)', () => {
  let lab: Lab;
  let copySshd: LabSshd;
  let remote: string;
  let store: string;
  let backupConfig: string;
  let pruneConfig: string;
  const ids: string[] = [];

  const cli = async (args: string[], o: { hoursAgo?: number; config?: string } = {}): Promise<Report> => {
    const env = o.hoursAgo
      ? { LD_PRELOAD: LIBFAKETIME, FAKETIME: `-${o.hoursAgo}h`, FAKETIME_DONT_FAKE_MONOTONIC: '1' }
      : undefined;
    const json = args[0] === 'run' ? ['--json'] : [];
    const res = await runCli([...args, '--config', o.config ?? backupConfig, ...json], { env, timeoutMs: 120_000 });
    expect(res.code === 0 ? 'ok' : res.stdout + res.stderr).toBe('ok');
    return (json.length ? JSON.parse(res.stdout) : {}) as Report;
  };
  const prune = (dryRun = false) => cli(['run', 'prune', ...(dryRun ? ['--dry-run'] : [])], { config: pruneConfig });
  const manifest = async <T>(file: string) => JSON.parse(await fs.readFile(file, 'utf8')) as T;
  const listed = async (dir: string) =>
    (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  /** The segments under `root` (the store, or the copy's path), by version. */
  async function segments(root: string): Promise<Span[]> {
    const dir = path.join(root, 'archive');
    const out = await Promise.all((await listed(dir)).map((id) => manifest<Span>(path.join(dir, id, 'manifest.json'))));
    return out.map(({ id, first, last }) => ({ id, first, last })).sort((a, b) => a.first - b.first);
  }
  /** The versions the snapshots under `root` (those of `only`) restore from. */
  async function starts(root: string, only?: string[]): Promise<number[]> {
    const dir = path.join(root, 'snapshots');
    const images = await Promise.all(
      (only ?? (await listed(dir))).map(
        async (id) => (await manifest<{ image: ImageHeader }>(path.join(dir, id, 'manifest.json'))).image,
      ),
    );
    return images.map(restoreFrom);
  }
  /** What prune must remove under `root`: segments wholly before every image kept there, never the newest. */
  async function expectedGone(root: string, kept?: string[]): Promise<string[]> {
    const oldest = Math.min(...(await starts(root, kept)));
    const all = await segments(root);
    return all
      .slice(0, -1)
      .filter((s) => s.last < oldest)
      .map((s) => s.id);
  }
  const archiveDetails = (r: Report) =>
    r.details.archive as { destination: string; removedSegments?: string[]; wouldRemoveSegments?: string[] }[];
  /** A new image (a backup makes a snapshot only of a new one), then a backup `hoursAgo`, then the archive. */
  async function snapshot(name: string, hoursAgo: number): Promise<void> {
    await lab.makeChanges(name, 5);
    await lab.saveImage();
    await lab.makeChanges(`${name}-after`, 2);
    const report = await cli(['run', 'backup'], { hoursAgo });
    for (const s of report.details.sources as { result: string; snapshot: string }[])
      if (s.result === 'snapshot') ids.push(s.snapshot);
    await cli(['run', 'archive']);
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true });
    copySshd = await LabSshd.start(path.join(lab.dir, 'copy-ssh'));
    remote = path.join(lab.dir, 'offsite');
    store = path.join(lab.dir, 'snapshots');
    const counts = { keepHourly: 0, keepDaily: 0, keepWeekly: 0 };
    const settings = (window: object) => ({
      snapshotStore: {
        path: store,
        compression: 'none',
        retention: { keepLast: 3, ...counts, ...window },
        copies: [
          copySshd.copyConfig('offsite', remote, {
            timeoutSeconds: 5,
            retention: { keepLast: 2, ...counts, ...window },
          }),
        ],
      },
      jobs: {
        archive: { segmentSeconds: 1 },
        prune: { maxAgeHours: 1, keepRestorePoints: 2, minAgeMinutes: 0 },
      },
    });
    backupConfig = await lab.writeConfig(settings({}));
    pruneConfig = await lab.writeConfig(settings({ recoveryWindow: '1h' }), 'prune.yaml');
  }, 120_000);
  afterAll(async () => {
    await copySshd?.stop();
    await lab?.stop();
  });

  test('dry run names, run removes exactly the unneeded segments; pinned keeps; newest stays; idempotent', async () => {
    await snapshot('a', 3);
    await snapshot('b', 2);
    await snapshot('now', 0);
    expect(ids).toHaveLength(3);
    // The copy keeps two snapshots (b, now), the store three; a is pinned in the store.
    expect(await listed(path.join(remote, 'snapshots'))).toEqual(ids.slice(1));
    await cli(['snapshot', 'pin', ids[0]!, '--note', 'before the upgrade']);
    const storeBefore = await segments(store);
    const copyBefore = await segments(remote);
    expect(storeBefore.length).toBeGreaterThanOrEqual(3);
    const copyGone = await expectedGone(remote);
    expect(copyGone.length).toBeGreaterThan(0);

    const dry = await prune(true);
    expect(archiveDetails(dry)).toEqual([
      { destination: 'store', wouldRemoveSegments: [], errors: [] },
      { destination: 'copy offsite', wouldRemoveSegments: copyGone, errors: [] },
    ]);
    expect(dry.lines).toContain(
      `copy offsite: would remove ${copyGone.length} archive segment${copyGone.length === 1 ? '' : 's'} ` +
        `older than every image it keeps (${copyGone.join(', ')})`,
    );
    expect(await segments(store)).toEqual(storeBefore);
    expect(await segments(remote)).toEqual(copyBefore);

    // The pinned snapshot keeps its segments in the store; the copy (without it) loses them.
    const run = await prune();
    expect(run.status).toBe('OK');
    expect(archiveDetails(run)).toEqual([
      { destination: 'store', removedSegments: [], errors: [] },
      { destination: 'copy offsite', removedSegments: copyGone, errors: [] },
    ]);
    expect(await segments(store)).toEqual(storeBefore);
    expect(await segments(remote)).toEqual(copyBefore.filter((s) => !copyGone.includes(s.id)));

    // Unpinned: prune's own rules drop snapshot a, and the archive follows it.
    await cli(['snapshot', 'unpin', ids[0]!]);
    const dry2 = await prune(true);
    expect(await listed(path.join(store, 'snapshots'))).toEqual(ids);
    const storeGone = await expectedGone(store, ids.slice(1));
    expect(storeGone.length).toBeGreaterThan(0);
    expect(archiveDetails(dry2)[0]).toEqual({ destination: 'store', wouldRemoveSegments: storeGone, errors: [] });
    expect(await segments(store)).toEqual(storeBefore);

    const run2 = await prune();
    expect(await listed(path.join(store, 'snapshots'))).toEqual(ids.slice(1));
    expect(archiveDetails(run2)[0]).toEqual({ destination: 'store', removedSegments: storeGone, errors: [] });
    const left = await segments(store);
    expect(left).toEqual(storeBefore.filter((s) => !storeGone.includes(s.id)));
    // What is left reaches from the oldest image kept; the newest segment is among it.
    expect(left.at(-1)).toEqual(storeBefore.at(-1));
    expect(await expectedGone(store)).toEqual([]);

    const again = await prune();
    expect(archiveDetails(again)).toEqual([
      { destination: 'store', removedSegments: [], errors: [] },
      { destination: 'copy offsite', removedSegments: [], errors: [] },
    ]);
    expect(await segments(store)).toEqual(left);
  }, 300_000);
});
