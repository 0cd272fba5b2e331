import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { parseConfig, type Config } from '../../lib/core/config.js';
import { silentLogger } from '../../lib/core/logger.js';
import { checkCopy } from '../../lib/store/copy/check.js';
import { pushToCopy } from '../../lib/store/copy/push.js';
import { LISTING_ANSWER_BYTES, LISTING_LIMITS } from '../../lib/transport/listing-bounds.js';
import { runCliMeasured, type MeasuredRun } from '../helpers/cli.js';
import { attackTest } from '../faults/results.js';
import { HostileS3, type HostileS3Mode, type HostileS3Options } from '../lab/hostile-s3.js';
import { HostileSftp } from '../lab/hostile-sftp.js';

/**
 * Off-site copies whose server never stops listing, drips, or sends a page without end: a real
 * `mfs-jobs` (snapshot list --copy, run promote --dry-run) and the code backup and verify run against
 * a copy (pushToCopy, checkCopy) end within their bound, with one line naming the copy, in bounded
 * memory (the child's peak RSS, VmHWM). Before the bounds: 237 MB → 517 MB in 45 s and no end.
 */

/** Well below what an unbounded listing reaches (hundreds of MB within a minute), well above node + the SDK. */
const RSS_LIMIT_MIB = 300;

let tmp: string;
let credentials: string;
const stop: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-hostile-listing-'));
  credentials = path.join(tmp, 's3-credentials.json');
  const keys = { accessKeyId: 'HOSTILE', secretAccessKey: 'hostile-secret' };
  await fs.writeFile(credentials, JSON.stringify(keys), { mode: 0o600 });
});

afterEach(async () => {
  for (const s of stop.splice(0)) await s.close();
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

let n = 0;
/** A config whose only copy is `copy`, a standby for promote --dry-run, an empty store (the disk is gone). */
type Settings = Record<string, unknown>;
async function configWith(copy: Settings, promote: Settings = {}): Promise<{ file: string; config: Config }> {
  const dir = path.join(tmp, `case-${++n}`);
  const standby = path.join(dir, 'standby');
  await fs.mkdir(standby, { recursive: true });
  await fs.mkdir(path.join(dir, 'snapshots'));
  await fs.writeFile(path.join(dir, 'mfsmaster.cfg'), `DATA_PATH = ${standby}\n`);
  const doc = {
    timezone: 'UTC',
    stateDir: path.join(dir, 'state'),
    masters: [],
    metaloggers: [],
    standby: { dataPath: standby, masterConfig: path.join(dir, 'mfsmaster.cfg') },
    snapshotStore: { path: path.join(dir, 'snapshots'), copies: [{ name: 'evil', ...copy }] },
    jobs: { promote: { fenceTimeoutSeconds: 1, clientsWaitSeconds: 0, ...promote } },
  };
  const file = path.join(dir, 'config.yaml');
  await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
  return { file, config: parseConfig(doc, file) };
}

async function hostileS3(
  mode: HostileS3Mode,
  timeoutSeconds: number,
  o: HostileS3Options = {},
  promote: Settings = {},
) {
  const server = await HostileS3.start(mode, o);
  stop.push(server);
  const where = { endpoint: server.endpoint, bucket: 'bkt', prefix: 'mfs/', forcePathStyle: true };
  const copy = { type: 's3', ...where, credentialsFile: credentials, timeoutSeconds };
  return { server, ...(await configWith(copy, promote)) };
}

const S3_LABEL = String.raw`copy evil \(s3 http://127\.0\.0\.1:\d+ bkt/mfs/\)`;
const oneLine = (text: string) => text.trim().split('\n').length === 1;

function listCopy(file: string, timeoutMs = 90_000): Promise<MeasuredRun> {
  return runCliMeasured(['snapshot', 'list', '--config', file, '--copy', 'evil'], timeoutMs);
}

function promoteDryRun(file: string, timeoutMs = 60_000): Promise<MeasuredRun> {
  return runCliMeasured(['run', 'promote', '--dry-run', '--config', file], timeoutMs);
}

/** `snapshot list --copy` ended with one line on stderr naming the copy, in bounded memory. */
function expectRefused(res: MeasuredRun, label: string, why: RegExp): void {
  expect(res.code).toBe(2);
  expect(res.stderr.trim()).toMatch(new RegExp(`^mfs-jobs: ${label}: ${why.source}`));
  expect(oneLine(res.stderr)).toBe(true);
  expect(res.peakMiB).toBeGreaterThan(0);
  expect(res.peakMiB).toBeLessThan(RSS_LIMIT_MIB);
}

/** promote --dry-run: CRITICAL (no source left), the copy named as not used and why, in bounded memory. */
function expectCopyNotUsed(res: MeasuredRun, label: string, why: RegExp): void {
  const lines = res.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim());
  expect(lines[0]).toBe('MFS PROMOTE CRITICAL - no usable metadata image on any source; nothing changed');
  expect(lines).toContainEqual(
    expect.stringMatching(new RegExp(`^copy evil: not used \\(${label}: ${why.source}\\)$`)),
  );
  expect(res.peakMiB).toBeLessThan(RSS_LIMIT_MIB);
}

describe('a hostile S3 copy', () => {
  attackTest(
    'hostile s3',
    'ListObjectsV2 always truncated, 1000 new keys a page',
    'a listing always truncated with 1000 new keys a page ends at 100000 entries, in bounded memory',
    async () => {
      const { file, server } = await hostileS3('endless', 30);
      const res = await listCopy(file);
      expectRefused(
        res,
        S3_LABEL,
        new RegExp(
          `listing mfs/snapshots/: more than ${LISTING_LIMITS.entries} entries \\(a listing that never ends, or not ours\\): refused$`,
        ),
      );
      expect(server.pages).toBeLessThanOrEqual(LISTING_LIMITS.entries / 1000 + 1);
    },
    120_000,
  );

  attackTest(
    'hostile s3',
    'ListObjectsV2 always truncated, empty pages',
    "empty pages always truncated end at the deadline: 10 × the copy's timeoutSeconds",
    async () => {
      const { file } = await hostileS3('endless-empty', 0.5);
      const res = await listCopy(file, 60_000);
      expectRefused(
        res,
        S3_LABEL,
        /listing mfs\/snapshots\/ not done within 5 s \(10 × snapshotStore\.copies\.0\.timeoutSeconds\): abandoned$/,
      );
      expect(res.seconds).toBeLessThan(40);
    },
    90_000,
  );

  attackTest(
    'hostile s3',
    'ListObjectsV2 drips a byte every 5 s',
    'a page dripping a byte every 5 s: snapshot list ends after one timeoutSeconds, naming the copy and the setting',
    async () => {
      const { file } = await hostileS3('drip', 1, { dripMs: 5000 });
      const res = await listCopy(file, 60_000);
      expectRefused(
        res,
        S3_LABEL,
        /listing mfs\/snapshots\/: no answer within 1 s \(snapshotStore\.copies\.0\.timeoutSeconds\): abandoned$/,
      );
      expect(res.seconds).toBeLessThan(30);
    },
    90_000,
  );

  attackTest(
    'hostile s3',
    'promote: copy listing drips (timeoutSeconds 10)',
    'promote --dry-run with the store gone and a dripping copy (timeoutSeconds 10): the copy is given up at sourceTimeoutSeconds',
    async () => {
      const { file } = await hostileS3('drip', 10, { dripMs: 5000 }, { sourceTimeoutSeconds: 2 });
      const res = await promoteDryRun(file, 60_000);
      expectCopyNotUsed(
        res,
        S3_LABEL,
        /listing mfs\/snapshots\/ not done within [\d.]+ s \(what connecting left of jobs\.promote\.sourceTimeoutSeconds = 2 s\): abandoned/,
      );
      expect(res.code).toBe(2);
      // Before: past 75 s and going (the copy was listed before sourceTimeoutSeconds applied).
      expect(res.seconds).toBeLessThan(30);
    },
    90_000,
  );

  attackTest(
    'hostile s3',
    'backup and verify list a dripping copy',
    "backup's push and verify's check of a dripping copy end after its timeoutSeconds, naming it",
    async () => {
      const { config } = await hostileS3('drip', 1, { dripMs: 5000 });
      const copy = config.snapshotStore!.copies[0]!;
      const started = Date.now();
      const pushed = await pushToCopy(config, copy, [], silentLogger(), new AbortController().signal, true);
      const checked = await checkCopy(config, copy, new AbortController().signal, { readBack: false });
      expect((Date.now() - started) / 1000).toBeLessThan(30);
      for (const error of [pushed.error, checked.error]) {
        expect(error).toMatch(
          new RegExp(
            `^${S3_LABEL}: listing mfs/snapshots/: no answer within 1 s \\(snapshotStore\\.copies\\.0\\.timeoutSeconds\\): abandoned$`,
          ),
        );
      }
    },
    90_000,
  );

  attackTest(
    'hostile s3',
    'a 200 MiB ListObjectsV2 page',
    'one page of 200 MiB is cut at 8 MiB before the SDK parses it',
    async () => {
      const { file, server } = await hostileS3('huge', 20, { hugeBytes: 200 * 2 ** 20 });
      const res = await listCopy(file);
      expectRefused(
        res,
        S3_LABEL,
        new RegExp(`an answer to ListObjectsV2Command longer than ${LISTING_ANSWER_BYTES} bytes: refused, not parsed$`),
      );
      expect(server.served).toBeLessThan(100 * 2 ** 20);
    },
    120_000,
  );

  attackTest(
    'hostile s3',
    'XML entity expansion (billion laughs)',
    "billion laughs in a listing: the SDK's parser skips the DOCTYPE and reads an undeclared entity as nothing (never expanded)",
    async () => {
      const { file } = await hostileS3('entities', 10);
      const res = await runCliMeasured(['snapshot', 'list', '--config', file, '--copy', 'evil', '--json'], 60_000);
      expect(res.code).toBe(0);
      // The key `mfs/snapshots/&lol9;` read as `mfs/snapshots/`: an empty name, shown as skipped, never used.
      expect((JSON.parse(res.stdout) as { skipped: string[]; snapshots: unknown[] }).skipped).toEqual(['']);
      expect(res.peakMiB).toBeLessThan(RSS_LIMIT_MIB);
    },
    90_000,
  );
});

describe('a hostile SFTP copy', () => {
  async function endlessCopy(timeoutSeconds: number, promote: Settings = {}) {
    const endlessReaddir = { namesPerAnswer: 500, nameBytes: 100 };
    const server = await HostileSftp.start(path.join(tmp, `sftp-${++n}`), {}, '/offsite/snapshots', { endlessReaddir });
    stop.push(server);
    const reach = {
      host: server.host,
      port: server.port,
      user: 'root',
      identityFile: server.clientKey,
      knownHosts: server.knownHosts,
    };
    const copy = { type: 'sftp', ...reach, path: '/offsite', timeoutSeconds };
    return { server, ...(await configWith(copy, promote)) };
  }
  const label = String.raw`copy evil \(sftp root@127\.0\.0\.1:\d+:/offsite\)`;

  attackTest(
    'hostile sftp',
    'copy: READDIR never ends',
    'a copy whose READDIR never says EOF: snapshot list ends at 100000 entries, in bounded memory',
    async () => {
      const { file, server } = await endlessCopy(10);
      const res = await listCopy(file);
      expectRefused(
        res,
        label,
        new RegExp(
          `listing /offsite/snapshots: more than ${LISTING_LIMITS.entries} entries \\(a listing that never ends, or not ours\\): refused$`,
        ),
      );
      expect(server.readdirs).toBeLessThanOrEqual(LISTING_LIMITS.entries / 500 + 1);
    },
    150_000,
  );

  attackTest(
    'hostile sftp',
    'promote: copy READDIR never ends',
    'promote --dry-run with the store gone and a copy whose READDIR never ends: given up at sourceTimeoutSeconds',
    async () => {
      const { file } = await endlessCopy(10, { sourceTimeoutSeconds: 2 });
      const res = await promoteDryRun(file);
      expectCopyNotUsed(
        res,
        label,
        /listing \/offsite\/snapshots not done within [\d.]+ s \(what connecting left of jobs\.promote\.sourceTimeoutSeconds = 2 s\): abandoned/,
      );
      expect(res.seconds).toBeLessThan(30);
    },
    90_000,
  );
});
