import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig, type Config } from '../../lib/core/config.js';
import { fetchCopySegments, openArchiveCopy, pushSegments } from '../../lib/store/copy/archive.js';
import { writeSegment, type NewSegment, type StoredSegment } from '../../lib/store/segments.js';
import { FaultProxy } from '../lab/proxy.js';
import { LabSshd } from '../lab/sshd.js';

/**
 * A copy's archive as promote fetches it (issue #26): from a real sshd, only the segments at or after the
 * image's version, at most `maxSegments`, and, behind a slow link (a userspace proxy at 20 kB/s), no longer
 * than its time bound (connect and list within it, download within it again): what came in time is kept,
 * the oldest first, and a note says what was left out. Unbounded, the same fetch takes about 20 s.
 */
describe("fetching a copy's archive within bounds", () => {
  let tmp: string;
  let sshd: LabSshd;
  let proxy: FaultProxy | undefined;
  const segs: StoredSegment[] = [];
  const LINES = 1300; // about 64 KiB a segment

  const lines = (from: number, to: number) => {
    let text = '';
    for (let v = from; v <= to; v++) text += `${v}: ${1_790_000_000 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v + 9}\n`;
    return Buffer.from(text, 'latin1');
  };
  const segment = (from: number, to: number): NewSegment => ({
    lines: lines(from, to),
    first: from,
    last: to,
    firstTime: 1_790_000_000 + from,
    lastTime: 1_790_000_000 + to,
    ...(from > 1 ? { previous: from - 1 } : {}),
    source: { name: 'ml1', host: 'h', role: 'metalogger', dataPath: '/var/lib/mfs' },
    metaid: 'AB12',
    mfsJobsVersion: 'test',
  });
  const configFor = (port: number, knownHosts: string): Config => {
    const file = path.join(tmp, 'config.yaml');
    const doc = {
      timezone: 'UTC',
      stateDir: path.join(tmp, 'state'),
      masters: [],
      metaloggers: [],
      snapshotStore: {
        path: path.join(tmp, 'store'),
        copies: [
          {
            name: 'offsite',
            type: 'sftp',
            host: '127.0.0.1',
            port,
            user: 'root',
            identityFile: sshd.clientKey,
            knownHosts,
            path: path.join(tmp, 'offsite'),
            timeoutSeconds: 10,
          },
        ],
      },
    };
    return parseConfig(doc, file);
  };
  const fetchInto = async (config: Config, from: number, bounds: Parameters<typeof fetchCopySegments>[6]) => {
    const dir = await fs.mkdtemp(path.join(tmp, 'fetch-'));
    const copy = config.snapshotStore!.copies[0]!;
    return fetchCopySegments(config, copy, from, {}, dir, AbortSignal.timeout(60_000), bounds);
  };

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-copy-archive-fetch-'));
    sshd = await LabSshd.start(path.join(tmp, 'ssh'));
    const settings = { compression: { type: 'none' as const, level: 3 } };
    for (let i = 0; i < 6; i++)
      segs.push(await writeSegment(path.join(tmp, 'store'), segment(1 + i * LINES, (i + 1) * LINES), settings));
    const config = configFor(sshd.port, sshd.knownHosts);
    const repo = await openArchiveCopy(config, config.snapshotStore!.copies[0]!);
    try {
      const run = await pushSegments(repo, segs, new Set(), AbortSignal.timeout(60_000));
      expect(run.pushed).toEqual(segs.map((s) => s.id));
    } finally {
      await repo.close();
    }
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
    await sshd?.stop();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('only the segments at or after the version, at most maxSegments (the oldest), a note for the rest', async () => {
    const config = configFor(sshd.port, sshd.knownHosts);
    const from = 2 * LINES + 10; // inside the third segment
    const all = await fetchInto(config, from, {});
    expect(all.map((s) => s.id)).toEqual(segs.slice(2).map((s) => s.id));
    const notes: string[] = [];
    const two = await fetchInto(config, from, { maxSegments: 2, notes });
    expect(two.map((s) => s.id)).toEqual(segs.slice(2, 4).map((s) => s.id));
    expect(notes).toEqual([expect.stringMatching(/^copy offsite: archive: 2 of 4 segments left out/)]);
  }, 60_000);

  test('behind a slow link: back within twice its bound with the prefix that came in time', async () => {
    proxy = await FaultProxy.start({ host: '127.0.0.1', port: sshd.port }, { bytesPerSecond: 20_000 });
    const hostPub = (await fs.readFile(`${sshd.hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = path.join(tmp, 'known_hosts-proxy');
    await fs.writeFile(knownHosts, `[127.0.0.1]:${proxy.port} ${hostPub}\n`, { mode: 0o600 });
    const config = configFor(proxy.port, knownHosts);
    const notes: string[] = [];
    const started = Date.now();
    const got = await fetchInto(config, 1, { within: { seconds: 3, setting: 'the test bound' }, notes });
    const seconds = (Date.now() - started) / 1000;
    expect(seconds).toBeLessThan(8);
    expect(got.length).toBeLessThan(segs.length);
    expect(got.map((s) => s.id)).toEqual(segs.slice(0, got.length).map((s) => s.id));
    expect(notes).toEqual([
      expect.stringMatching(
        new RegExp(`^copy offsite: archive: ${segs.length - got.length} of 6 segments not fetched within 3 s`),
      ),
    ]);
  }, 60_000);
});
