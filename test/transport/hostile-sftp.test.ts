import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { backupSource } from '../../lib/backup/source.js';
import { parseConfig, type Config, type MetaloggerHost } from '../../lib/core/config.js';
import { TransferError } from '../../lib/core/errors.js';
import { silentLogger } from '../../lib/core/logger.js';
import { scanSourceChangelog } from '../../lib/moosefs/datapath.js';
import { DataPathTarget } from '../../lib/prune/datapath.js';
import { CHANGELOG_GROWTH } from '../../lib/transport/bounded.js';
import { LISTING_LIMITS } from '../../lib/transport/listing-bounds.js';
import { openSource, type FileSource } from '../../lib/transport/remote.js';
import { fetchFile } from '../../lib/transport/transfer.js';
import { inspectDataPath } from '../../lib/verify/source.js';
import { changelogLines } from '../helpers/changelog-fixtures.js';
import { runCli, runCliMeasured } from '../helpers/cli.js';
import { attackTest } from '../faults/results.js';
import { HostileSftp, type EndlessReaddir, type HostileFile } from '../lab/hostile-sftp.js';

/**
 * A metalogger's DATA_PATH served by an SFTP server that lies, read through the code the jobs run
 * (backup's pull, verify's and prune's reading of DATA_PATH): every read ends in bounded time after
 * bounded bytes, with one line naming host and file, and leaves nothing outside its staging place.
 */

const MiB = 1024 * 1024;
const IDLE_SECONDS = 1;

/** A small but well-formed MooseFS 2.0+ image of `version`: header, body, EOF marker. */
function image(version: number): Buffer {
  const head = Buffer.alloc(24);
  head.write('MFSM 2.0', 0, 'latin1');
  head.writeBigUInt64BE(BigInt(version), 8);
  head.writeBigUInt64BE(0x1234abcdn, 16);
  return Buffer.concat([head, Buffer.alloc(60), Buffer.from('[MFS EOF MARKER]', 'latin1')]);
}

const lines = (from: number, to: number) => Buffer.from(changelogLines(from, to), 'latin1');
const oneLine = (err: unknown) => (err as Error).message.split('\n').length === 1;

let tmp: string;
let server: HostileSftp | undefined;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-hostile-'));
});

afterEach(async () => {
  await server?.close();
  server = undefined;
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function lab(
  files: Record<string, HostileFile>,
  o: { endlessReaddir?: EndlessReaddir; idleSeconds?: number } = {},
): Promise<{ config: Config; ml: MetaloggerHost; store: string; stage: string; configFile: string }> {
  const dir = path.join(tmp, `case-${++n}`);
  server = await HostileSftp.start(path.join(dir, 'sftp'), files, undefined, { endlessReaddir: o.endlessReaddir });
  const store = path.join(dir, 'snapshots');
  const stage = path.join(dir, 'stage');
  await fs.mkdir(store, { recursive: true });
  await fs.mkdir(stage, { recursive: true });
  const doc = {
    timezone: 'UTC',
    stateDir: path.join(dir, 'state'),
    ssh: server.sshConfig({ readIdleSeconds: o.idleSeconds ?? IDLE_SECONDS }),
    masters: [],
    metaloggers: [{ name: 'ml1', host: '127.0.0.1', dataPath: server.dataPath }],
    snapshotStore: { path: store },
    jobs: {},
  };
  const configFile = path.join(dir, 'config.yaml');
  await fs.writeFile(configFile, YAML.stringify(doc), { mode: 0o600 });
  const config = parseConfig(doc, configFile);
  return { config, ml: config.metaloggers[0]!, store, stage, configFile };
}

async function open(config: Config, ml: MetaloggerHost, warnings: string[] = []): Promise<FileSource> {
  return openSource(config, ml, undefined, (w) => warnings.push(w));
}

/** Every file under `dir`, with its size. */
async function filesUnder(dir: string): Promise<{ file: string; size: number }[]> {
  const out: { file: string; size: number }[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile())
      out.push({ file: path.join(e.parentPath, e.name), size: (await fs.stat(path.join(e.parentPath, e.name))).size });
  }
  return out;
}

async function timed<T>(work: Promise<T>): Promise<{ err: unknown; seconds: number }> {
  const started = Date.now();
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, seconds: (Date.now() - started) / 1000 };
}

function backup(config: Config, ml: MetaloggerHost, store: string) {
  return backupSource({
    config,
    host: ml,
    store,
    newest: undefined,
    snapshotOnNewChangelogs: false,
    dryRun: false,
    log: silentLogger(),
    signal: new AbortController().signal,
    mfsJobsVersion: 'test',
    storage: { compression: { type: 'none', level: 3 } },
  });
}

describe('a hostile SFTP server', () => {
  test('an honest DATA_PATH over the same server backs up (the bounds do not get in the way)', async () => {
    const { config, ml, store } = await lab({
      'metadata_ml.mfs.back': { content: image(10) },
      'changelog_ml.0.mfs': { content: lines(10, 30) },
    });
    const outcome = await backup(config, ml, store);
    expect(outcome.kind).toBe('snapshot');
  });

  attackTest(
    'hostile sftp',
    'a download costs one STAT',
    "a download costs one STAT round trip, not two (the library's own lstat before fastGet is skipped)",
    async () => {
      const { config, ml, stage } = await lab({ 'metadata_ml.mfs.back': { content: image(10) } });
      const source = await open(config, ml);
      try {
        await source.download(`${ml.dataPath}/metadata_ml.mfs.back`, path.join(stage, 'image'), {
          bound: { size: image(10).length },
        });
        expect((await fs.readFile(path.join(stage, 'image'))).equals(image(10))).toBe(true);
      } finally {
        await source.close();
      }
      // An lstat by name (a link is refused), then the handle's fstat: never a second open by name.
      expect(server!.stats.filter((s) => s.endsWith('/metadata_ml.mfs.back'))).toEqual([
        `LSTAT ${ml.dataPath}/metadata_ml.mfs.back`,
      ]);
    },
  );

  attackTest(
    'hostile sftp',
    'rotated changelog one byte past its listing',
    'a rotated changelog gets no growth allowance (drill and promote read it by changelogBound): one byte past its listing is refused',
    async () => {
      const { changelogBound } = await import('../../lib/moosefs/datapath.js');
      expect(changelogBound('changelog_ml.0.mfs', 10)).toEqual({ size: 10, growth: CHANGELOG_GROWTH });
      expect(changelogBound('changelog_ml.3.mfs', 10)).toEqual({ size: 10, growth: 0 });
      const size = lines(1, 20).length;
      const { config, ml, stage } = await lab({
        'changelog_ml.3.mfs': { content: lines(1, 20), readSize: size + 1, statSize: size + 1, listedSize: size },
      });
      const source = await open(config, ml);
      try {
        const { err } = await timed(
          source.download(`${ml.dataPath}/changelog_ml.3.mfs`, path.join(stage, 'c'), {
            bound: changelogBound('changelog_ml.3.mfs', size),
          }),
        );
        expect((err as Error).message).toMatch(
          new RegExp(
            `changelog_ml\\.3\\.mfs: the server announces ${size + 1} bytes at open, more than ${size} bytes announced: refused, nothing copied$`,
          ),
        );
      } finally {
        await source.close();
      }
    },
  );

  attackTest(
    'hostile sftp',
    'listing 100 B, stat and reads 200 MiB (backup)',
    'backup: an image listed as 100 B that stats and reads 200 MiB is refused before a byte is copied (and again on the retry)',
    async () => {
      const real = image(10);
      const { config, ml, store } = await lab({
        'metadata_ml.mfs.back': { content: real, readSize: 200 * MiB, listedSize: real.length },
        'changelog_ml.0.mfs': { content: lines(10, 30) },
      });
      const { err, seconds } = await timed(backup(config, ml, store));
      expect(err).toBeInstanceOf(TransferError);
      expect((err as Error).message).toMatch(
        /^ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data\/metadata_ml\.mfs\.back: the server announces 209715200 bytes at open, more than 100 bytes announced: refused, nothing copied; changed again on the retry, no snapshot taken$/,
      );
      expect(oneLine(err)).toBe(true);
      expect(seconds).toBeLessThan(30);
      // Only the header and EOF-marker reads of the inventory, twice: never the 200 MiB.
      expect(server!.served('metadata_ml.mfs.back')).toBeLessThan(1024);
      expect(await filesUnder(store)).toEqual([]);
    },
  );

  attackTest(
    'hostile sftp',
    'stat lies too: only the announced bytes (backup)',
    'backup pull: a file whose stat lies too gets exactly the announced bytes, whatever the reads offer',
    async () => {
      const { config, ml, stage } = await lab({
        'changelog_ml.1.mfs': { content: lines(1, 3), readSize: Infinity, statSize: 100, listedSize: 100 },
      });
      const source = await open(config, ml);
      try {
        const local = path.join(stage, 'changelog_ml.1.mfs');
        const fetched = await fetchFile(source, `${server!.dataPath}/changelog_ml.1.mfs`, local, {
          size: 100,
          growth: CHANGELOG_GROWTH,
        });
        expect(fetched.size).toBe(100);
        expect(server!.served('changelog_ml.1.mfs')).toBe(100);
      } finally {
        await source.close();
      }
    },
  );

  attackTest(
    'hostile sftp',
    'changelog drips a byte a second (backup)',
    'backup: a changelog that drips a byte a second fails within a few idle windows, naming host and file',
    async () => {
      const { config, ml, store } = await lab({
        'metadata_ml.mfs.back': { content: image(10) },
        'changelog_ml.0.mfs': { content: lines(10, 30), dripMs: 1000 },
      });
      const { err, seconds } = await timed(backup(config, ml, store));
      expect(err).toBeInstanceOf(TransferError);
      expect((err as Error).message).toMatch(
        /^ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data\/changelog_ml\.0\.mfs: (no data for 1 s|only \d+ bytes in 1 s) after \d+ bytes \(the file never ends, or the server drips or stalls\): read abandoned$/,
      );
      expect(seconds).toBeLessThan(30);
      expect(await filesUnder(store)).toEqual([]);
    },
  );

  attackTest(
    'hostile sftp',
    'run backup against a dripping metalogger',
    '`mfs-jobs run backup` against a dripping metalogger: CRITICAL in one line naming host and file, in bounded time',
    async () => {
      const { configFile, store } = await lab({
        'metadata_ml.mfs.back': { content: image(10) },
        'changelog_ml.0.mfs': { content: lines(10, 30), dripMs: 1000 },
      });
      const started = Date.now();
      const res = await runCli(['run', 'backup', '--config', configFile], { timeoutMs: 60_000 });
      expect(res.code).toBe(2);
      expect(res.stdout.split('\n')[0]).toMatch(
        /^MFS BACKUP CRITICAL - ml1: ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data\/changelog_ml\.0\.mfs: (no data for 1 s|only \d+ bytes in 1 s) after \d+ bytes \(the file never ends, or the server drips or stalls\): read abandoned/,
      );
      expect(Date.now() - started).toBeLessThan(60_000);
      expect((await filesUnder(store)).filter((f) => !f.file.endsWith('.lock'))).toEqual([]);
    },
  );

  attackTest(
    'hostile sftp',
    'download stalls: nothing left at its temp path',
    'backup pull: a download that stalls leaves nothing at its temp path',
    async () => {
      const { config, ml, stage } = await lab({ 'metadata_ml.mfs.back': { content: image(10), dripMs: 1000 } });
      const source = await open(config, ml);
      const local = path.join(stage, 'metadata_ml.mfs.back.part');
      const { err, seconds } = await timed(
        fetchFile(source, `${server!.dataPath}/metadata_ml.mfs.back`, local, { size: 100 }),
      );
      await source.close();
      expect((err as Error).message).toMatch(
        /metadata_ml\.mfs\.back: (no data for 1 s|only \d+ bytes in 1 s) after \d+ bytes/,
      );
      expect(seconds).toBeLessThan(30);
      expect(await filesUnder(stage)).toEqual([]);
    },
  );

  attackTest(
    'hostile sftp',
    'image grows between stat and read (backup)',
    'backup: an image that grows between stat and read is never taken (changed again on the retry)',
    async () => {
      const { config, ml, store } = await lab({
        'metadata_ml.mfs.back': { content: image(10), growsOnOpen: 4096 },
        'changelog_ml.0.mfs': { content: lines(10, 30) },
      });
      const { err } = await timed(backup(config, ml, store));
      expect(err).toBeInstanceOf(TransferError);
      expect(oneLine(err)).toBe(true);
      expect((err as Error).message).toMatch(
        /^ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data\/metadata_ml\.mfs\.back: the server announces \d+ bytes at open, more than \d+ bytes announced: refused, nothing copied; changed again on the retry, no snapshot taken$/,
      );
      expect(await filesUnder(store)).toEqual([]);
    },
  );

  attackTest(
    'hostile sftp',
    'changelog never ends (verify)',
    'verify: a changelog that never ends is read to its listed size plus the growth allowance, then refused',
    async () => {
      const { config, ml } = await lab({
        'metadata_ml.mfs.back': { content: image(10) },
        'changelog_ml.0.mfs': { content: lines(10, 12), readSize: Infinity, listedSize: 100 },
      });
      const source = await open(config, ml);
      try {
        const { err, seconds } = await timed(inspectDataPath(source, ml.dataPath, {}));
        expect(err).toBeInstanceOf(TransferError);
        expect((err as Error).message).toMatch(
          /^ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data\/changelog_ml\.0\.mfs: the server sent more than 100 bytes announced \(\+67108864 allowed for growth\) \(\d+\+ bytes\): refused, nothing kept$/,
        );
        expect(seconds).toBeLessThan(60);
        // Read twice (verify reads a moving DATA_PATH once more), each time at most the bound and one chunk.
        expect(server!.served('changelog_ml.0.mfs')).toBeLessThanOrEqual(2 * (100 + CHANGELOG_GROWTH + 2 * MiB));
      } finally {
        await source.close();
      }
    },
  );

  attackTest(
    'hostile sftp',
    'changelog stops sending (verify)',
    'verify: a changelog that stops sending fails after the idle window',
    async () => {
      const { config, ml } = await lab({ 'changelog_ml.1.mfs': { content: lines(1, 50), dripMs: 10_000 } });
      const source = await open(config, ml);
      try {
        const { err, seconds } = await timed(
          scanSourceChangelog(source, `${ml.dataPath}/changelog_ml.1.mfs`, lines(1, 50).length),
        );
        expect((err as Error).message).toMatch(
          /^ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data\/changelog_ml\.1\.mfs: no data for 1 s after 0 bytes/,
        );
        expect(seconds).toBeLessThan(30);
      } finally {
        await source.close();
      }
    },
  );

  attackTest(
    'hostile sftp',
    'rotated changelog grows while scanned (prune)',
    'prune: a rotated changelog that grows past its listing while it is scanned is refused',
    async () => {
      const { config, ml } = await lab({
        'metadata_ml.mfs.back': { content: image(10) },
        'changelog_ml.1.mfs': {
          content: lines(1, 20),
          readSize: lines(1, 20).length + CHANGELOG_GROWTH + MiB,
          listedSize: lines(1, 20).length,
        },
        'changelog_ml.0.mfs': { content: lines(21, 30) },
      });
      const target = await DataPathTarget.open(config, ml, new AbortController().signal);
      try {
        const { err } = await timed(target.scan());
        expect(err).toBeInstanceOf(TransferError);
        expect((err as Error).message).toMatch(/changelog_ml\.1\.mfs: the server sent more than \d+ bytes announced/);
        expect(oneLine(err)).toBe(true);
      } finally {
        await target.close();
      }
    },
  );

  attackTest(
    'hostile sftp',
    'DATA_PATH: READDIR never ends (backup)',
    'a DATA_PATH whose READDIR never says EOF: the listing ends at 100000 entries; `run backup` is CRITICAL in one line naming host and directory, in bounded memory',
    async () => {
      const endless = { namesPerAnswer: 800, nameBytes: 100 };
      const { config, ml, configFile, store } = await lab({}, { endlessReaddir: endless, idleSeconds: 10 });
      const source = await open(config, ml);
      try {
        const { err, seconds } = await timed(source.list(ml.dataPath));
        expect(err).toBeInstanceOf(TransferError);
        expect((err as Error).message).toMatch(
          new RegExp(
            `^ml1 \\(127\\.0\\.0\\.1:\\d+\\): listing /hostile/data: more than ${LISTING_LIMITS.entries} entries \\(a listing that never ends, or not ours\\): refused$`,
          ),
        );
        expect(seconds).toBeLessThan(60);
        expect(server!.readdirs).toBeLessThanOrEqual(LISTING_LIMITS.entries / endless.namesPerAnswer + 1);
      } finally {
        await source.close();
      }
      const res = await runCliMeasured(['run', 'backup', '--config', configFile], 90_000);
      expect(res.code).toBe(2);
      expect(res.stdout.split('\n')[0]).toMatch(
        /^MFS BACKUP CRITICAL - ml1: ml1 \(127\.0\.0\.1:\d+\): listing \/hostile\/data: more than 100000 entries/,
      );
      // Before: 1 GB within 40 s, and no end.
      expect(res.peakMiB).toBeGreaterThan(0);
      expect(res.peakMiB).toBeLessThan(300);
      expect((await filesUnder(store)).filter((f) => !f.file.endsWith('.lock'))).toEqual([]);
    },
    150_000,
  );

  attackTest(
    'hostile sftp',
    "listed names with '/', '..', control characters",
    "listed names with '/', '..' or control characters are skipped with a one-line warning and never opened",
    async () => {
      const hostile = [
        '../../../etc/passwd',
        'changelog_ml.1.mfs/../../x',
        '..',
        'changelog_ml.\n2.mfs',
        'metadata_ml.mfs.back\u001b[2J',
        'a\\b',
      ];
      const { config, ml, store, configFile } = await lab({
        'metadata_ml.mfs.back': { content: image(10) },
        'changelog_ml.0.mfs': { content: lines(10, 30) },
        ...Object.fromEntries(hostile.map((name) => [name, { content: lines(1, 5) }])),
      });
      const warnings: string[] = [];
      const source = await open(config, ml, warnings);
      try {
        const names = (await source.list(ml.dataPath)).map((e) => e.name).sort();
        expect(names).toEqual(['changelog_ml.0.mfs', 'metadata_ml.mfs.back']);
      } finally {
        await source.close();
      }
      // ssh2's readdir drops '.' and '..' itself; every other hostile name reaches our filter.
      expect(warnings).toHaveLength(hostile.filter((name) => name !== '..').length);
      for (const w of warnings)
        expect(w).toMatch(
          /^ml1 \(127\.0\.0\.1:\d+\): \/hostile\/data: skipped listed name ".*": (not a file name|contains a path separator|contains a control character)$/,
        );
      expect(warnings.every((w) => !/[\x00-\x1f]/.test(w))).toBe(true);
      // Inside a job the warnings go to its logger (JSON lines on stderr), never straight to stderr or stdout.
      const run = await runCli(['run', 'verify', '--config', configFile]);
      const logged = run.stderr.split('\n').filter((l) => l.includes('skipped listed name'));
      expect(logged.length).toBeGreaterThan(0);
      for (const l of logged) expect(JSON.parse(l)).toMatchObject({ level: 'warn', job: 'verify' });
      expect(run.stdout).not.toContain('skipped listed name');
      // A whole backup over that listing touches only the plain names.
      const outcome = await backup(config, ml, store);
      expect(outcome.kind).toBe('snapshot');
      const opened = server!.opened.filter((p) => p !== ml.dataPath).map((p) => path.posix.relative(ml.dataPath, p));
      expect(opened.every((p) => p === 'metadata_ml.mfs.back' || p === 'changelog_ml.0.mfs')).toBe(true);
    },
  );
});
