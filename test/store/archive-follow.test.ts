import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { runCli, startCli } from '../helpers/cli.js';
import { sleep, waitFor } from '../lab/proc.js';

/**
 * The archive's edges against a DATA_PATH the test writes the way a metalogger does (appending lines,
 * rotating changelog_ml.0.mfs to .1, a last line still being written, a restart at a new version): the
 * real `mfs-jobs run archive [--follow]` reads it as a local source. What the store's segments hold,
 * concatenated, must be exactly the lines written: no gap, no duplicate, no cut line.
 */
describe('changelog archive: rotation, cut last line, kill -9 mid-segment, gaps', () => {
  let dir: string;
  let dataPath: string;
  let store: string;
  let config: string;
  const written: string[] = [];
  const line = (v: number) => `${v}: ${1_790_000_000 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v + 10}\n`;

  const cli = (args: string[]) => runCli([...args, '--config', config, '--json'], { timeoutMs: 60_000 });
  async function append(from: number, to: number, file = 'changelog_ml.0.mfs'): Promise<void> {
    let text = '';
    for (let v = from; v <= to; v++) text += line(v);
    await fs.appendFile(path.join(dataPath, file), text);
    written.push(text);
  }
  /** The archive's segments by first version, and their lines concatenated (stored plain in this store). */
  async function archived(): Promise<{
    ids: string[];
    text: string;
    manifests: { first: number; last: number; gap?: unknown }[];
  }> {
    const root = path.join(store, 'archive');
    const ids = (await fs.readdir(root)).filter((n) => !n.startsWith('.'));
    const manifests = await Promise.all(
      ids.map(
        async (id) =>
          JSON.parse(await fs.readFile(path.join(root, id, 'manifest.json'), 'utf8')) as {
            first: number;
            last: number;
            gap?: unknown;
            files: { name: string }[];
            id: string;
          },
      ),
    );
    manifests.sort((a, b) => a.first - b.first);
    let text = '';
    for (const m of manifests) text += await fs.readFile(path.join(root, m.id, m.files[0]!.name), 'latin1');
    return { ids: manifests.map((m) => m.id), text, manifests };
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-archive-'));
    dataPath = path.join(dir, 'ml');
    store = path.join(dir, 'store');
    await fs.mkdir(dataPath, { mode: 0o700 });
    config = path.join(dir, 'config.yaml');
    const doc = {
      stateDir: path.join(dir, 'state'),
      metaloggers: [{ name: 'ml1', host: 'localhost', dataPath, local: true }],
      snapshotStore: { path: store, compression: 'none' },
      jobs: { archive: { segmentSeconds: 1, pollSeconds: 0.2 } },
    };
    await fs.writeFile(config, YAML.stringify(doc), { mode: 0o600 });
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('a cut last line waits until it is whole; a rotation is followed without a gap or a duplicate', async () => {
    await append(1, 100);
    await fs.appendFile(path.join(dataPath, 'changelog_ml.0.mfs'), '101: 1790000101|CREATE(1,f1');
    const first = await cli(['run', 'archive']);
    expect(first.code).toBe(0);
    let a = await archived();
    expect(a.text).toBe(written.join(''));
    expect(a.manifests.at(-1)!.last).toBe(100);

    // The line completed, more lines, then a rotation (.0 becomes .1, a new .0 goes on).
    await fs.appendFile(path.join(dataPath, 'changelog_ml.0.mfs'), '01,1,438,18,0,0,0):111\n');
    written.push(line(101));
    await append(102, 150);
    await fs.rename(path.join(dataPath, 'changelog_ml.0.mfs'), path.join(dataPath, 'changelog_ml.1.mfs'));
    // A metalogger's _back file (the tail it fetched at connect): starts later than .1, ends before the archive.
    await fs.writeFile(path.join(dataPath, 'changelog_ml_back.0.mfs'), [90, 91, 92].map(line).join(''));
    await append(151, 200);
    const second = await cli(['run', 'archive']);
    expect(second.code).toBe(0);
    a = await archived();
    expect(a.text).toBe(written.join(''));
    expect(a.manifests.at(-1)!.last).toBe(200);
    expect(a.manifests.every((m) => m.gap === undefined)).toBe(true);
  });

  test('archive killed mid-segment (kill -9) resumes exactly at the archive end; SIGTERM seals what is pending', async () => {
    const follow = startCli(['run', 'archive', '--follow', '--config', config]);
    try {
      // Lines arrive while it follows; segments are sealed every second; the kill lands in the middle of one.
      for (let v = 201; v <= 400; v += 20) {
        await append(v, v + 19);
        await sleep(150);
      }
      await waitFor(
        'a segment sealed by the follower',
        async () => (await archived()).manifests.at(-1)!.last > 200,
        20_000,
      );
      follow.child.kill('SIGKILL');
      await follow.done;
    } finally {
      follow.child.kill('SIGKILL');
    }
    await append(401, 450);
    const again = startCli(['run', 'archive', '--follow', '--config', config]);
    await waitFor('the follower to catch up', async () => (await archived()).manifests.at(-1)!.last === 450, 20_000);
    await append(451, 460);
    await sleep(300);
    again.child.kill('SIGTERM');
    const res = await again.done;
    expect(res.code).toBe(0);
    const a = await archived();
    expect(a.manifests.at(-1)!.last).toBe(460);
    expect(a.text).toBe(written.join(''));
  }, 60_000);

  test('the daemon follows when jobs.archive is configured (every other job disabled) and seals on SIGTERM', async () => {
    const off = Object.fromEntries(
      ['check-master', 'check-standby', 'backup', 'verify', 'prune', 'drill'].map((j) => [j, { enabled: false }]),
    );
    const doc = YAML.parse(await fs.readFile(config, 'utf8')) as { jobs: Record<string, unknown> };
    const daemonConfig = path.join(dir, 'daemon.yaml');
    await fs.writeFile(daemonConfig, YAML.stringify({ ...doc, jobs: { ...doc.jobs, ...off } }), { mode: 0o600 });
    const daemon = startCli(['daemon', '--config', daemonConfig]);
    try {
      await append(461, 470);
      await waitFor(
        'the daemon to archive 461..470',
        async () => (await archived()).manifests.at(-1)!.last === 470,
        20_000,
      );
      await append(471, 475);
      await sleep(500);
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect((await daemon.done).code).toBe(0);
    const a = await archived();
    expect(a.manifests.at(-1)!.last).toBe(475);
    expect(a.text).toBe(written.join(''));
  }, 60_000);

  test('a source that rotated past the archive (restarted at a new version) is a recorded gap, CRITICAL in verify', async () => {
    for (const name of await fs.readdir(dataPath)) await fs.rm(path.join(dataPath, name));
    await append(500, 520);
    const res = await cli(['run', 'archive']);
    expect(res.code).toBe(2);
    expect(JSON.parse(res.stdout).summary).toContain('gap: versions 476..499 are not in the archive');
    const a = await archived();
    expect(a.manifests.at(-1)).toMatchObject({ first: 500, last: 520, gap: { from: 476, to: 499 } });

    const verify = await cli(['run', 'verify']);
    expect(verify.code).toBe(2);
    const lines = (JSON.parse(verify.stdout) as { lines: string[] }).lines.join('\n');
    expect(lines).toMatch(/archive \(store\): CRITICAL/);
    expect(lines).toContain('gap: versions 476..499 are not archived');
  });

  test('a source holding another history at the archive end (a master restored to an older point) is refused', async () => {
    // Versions 510..530, but 510..520 are other changes than the ones archived: the archive ends at 520.
    await fs.writeFile(
      path.join(dataPath, 'changelog_ml.0.mfs'),
      Array.from({ length: 21 }, (_, i) => line(510 + i).replace('|CREATE(1,f', '|CREATE(1,g')).join(''),
    );
    const res = await cli(['run', 'archive']);
    expect(res.code).toBe(2);
    expect(res.stdout).toContain('holds another history: its version 520 differs from the archived one');
    expect((await archived()).manifests.at(-1)!.last).toBe(520);
  });
});
