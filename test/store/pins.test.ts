import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { runCli } from '../helpers/cli.js';
import { writeSnapshot } from '../helpers/snapshot-fixture.js';
import { EMPTY_IMAGE } from '../lab/moosefs.js';
import { planStoreRetention } from '../../lib/store/retention.js';
import { planCopy } from '../../lib/store/copy/plan.js';

/**
 * Pinned, annotated restore points (issue #26): `snapshot pin ID --note`, shown by list and show, kept by
 * the store's and the copies' retention whatever the counts say; `unpin` hands it back to retention.
 */
describe('snapshot pin / unpin', () => {
  let dir: string;
  let config: string;
  const ids: string[] = [];
  const cli = (args: string[]) => runCli([...args, '--config', config], { timeoutMs: 60_000 });

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-pins-'));
    const data = path.join(dir, 'data');
    await fs.mkdir(data);
    await fs.copyFile(EMPTY_IMAGE, path.join(data, 'metadata.mfs'));
    const store = path.join(dir, 'store');
    for (const at of ['2026-12-01T10:00:00Z', '2026-12-02T10:00:00Z']) {
      ids.push(
        (await writeSnapshot({ store, image: path.join(data, 'metadata.mfs'), changelogs: [], at: new Date(at) })).id,
      );
    }
    config = path.join(dir, 'config.yaml');
    await fs.writeFile(config, YAML.stringify({ stateDir: path.join(dir, 'state'), snapshotStore: { path: store } }), {
      mode: 0o600,
    });
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('pin with a note: list and show print it; unpin removes it', async () => {
    const pin = await cli(['snapshot', 'pin', ids[0]!, '--note', 'before the 4.x upgrade']);
    expect(pin).toMatchObject({ code: 0 });
    expect(pin.stdout).toContain(`pinned snapshot ${ids[0]}: before the 4.x upgrade`);
    const list = await cli(['snapshot', 'list']);
    expect(list.stdout).toContain(`${ids[0]} P`);
    expect(list.stdout).toContain(`pinned: ${ids[0]}: before the 4.x upgrade`);
    const show = await cli(['snapshot', 'show', ids[0]!, '--json']);
    expect(JSON.parse(show.stdout).pin).toMatchObject({ note: 'before the 4.x upgrade' });
    expect((await cli(['snapshot', 'pin', ids[0]!, '--note', 'two\nlines'])).code).toBe(3);
    expect((await cli(['snapshot', 'unpin', ids[1]!])).code).toBe(3);
    expect((await cli(['snapshot', 'unpin', ids[0]!])).code).toBe(0);
    expect((await cli(['snapshot', 'list'])).stdout).not.toContain('pinned:');
  });

  test('retention keeps a pinned snapshot in the store and on a copy, whatever the counts say', () => {
    const s = (id: string) => ({ id, manifest: { source: { name: 'm1' }, startedAt: id } });
    const snaps = [s('2026-01-01T00:00:00Z'), s('2026-01-02T00:00:00Z'), s('2026-01-03T00:00:00Z')];
    const policy = { keepLast: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0 };
    const pinned = new Set(['2026-01-01T00:00:00Z']);
    expect(planStoreRetention(snaps, ['m1'], policy, 'UTC', pinned).remove).toEqual(['2026-01-02T00:00:00Z']);
    const copy = planCopy({ local: snaps, complete: snaps, incomplete: [], retention: policy, zone: 'UTC', pinned });
    expect(copy.remove).toEqual(['2026-01-02T00:00:00Z']);
  });
});
