import { parseConfig, jobOptions } from '../../../lib/core/config.js';
import { matchConnected } from '../../../lib/moosefs/connected-metaloggers.js';
import type { Manifest } from '../../../lib/store/manifest.js';
import { planRestore, type ChangelogFacts, type ImageFacts } from '../../../lib/moosefs/restore-model.js';
import type { DataPathFacts, SnapshotFacts } from '../../../lib/verify/source.js';
import {
  formatAge,
  judgeMetalogger,
  judgeSnapshot,
  level,
  reachedTimestamp,
  summarize,
  type MetaloggerInput,
  type VerifyThresholds,
} from '../../../lib/verify/verdict.js';
import verifyJob from '../../../jobs/verify.js';
import { changelog, changelogLines, image } from '../../helpers/changelog-fixtures.js';

const T: VerifyThresholds = {
  lagVersionsWarn: 100,
  lagVersionsCrit: 1000,
  lagSecondsWarn: 300,
  lagSecondsCrit: 1800,
  imageAgeSlackHours: 1,
  imageAgeCritSlackHours: 24,
  snapshotAgeWarnHours: 25,
  snapshotAgeCritHours: 49,
};
const NOW = 1_795_600_000_000;
const NOW_S = NOW / 1000;

function dataPath(images: ImageFacts[], changelogs: ChangelogFacts[]): DataPathFacts {
  return { dataPath: '/var/lib/mfs', images, changelogs, plan: planRestore(images, changelogs) };
}

async function healthy(lastVersion = 200, lastTs = NOW_S - 10): Promise<DataPathFacts> {
  return dataPath(
    [image('metadata_ml.mfs.back', 100, { mtimeMs: NOW - 600_000 })],
    [await changelog('changelog_ml.0.mfs', changelogLines(100, lastVersion, lastTs))],
  );
}

function ml(facts: DataPathFacts | undefined, o: Partial<MetaloggerInput> = {}): MetaloggerInput {
  return {
    name: 'ml1',
    host: '10.0.0.5',
    metaDownloadFreqHours: 24,
    facts,
    masterVersion: 201,
    connected: true,
    now: NOW,
    ...o,
  };
}

describe('thresholds', () => {
  test('alert above the threshold, as Nagios reads value;warn;crit', () => {
    expect(level(100, 100, 1000)).toBe('OK');
    expect(level(101, 100, 1000)).toBe('WARNING');
    expect(level(1000, 100, 1000)).toBe('WARNING');
    expect(level(1001, 100, 1000)).toBe('CRITICAL');
    expect(level(NaN, 100, 1000)).toBe('UNKNOWN');
    expect(level(5, undefined, 0)).toBe('CRITICAL');
  });

  test('ages read at a glance', () => {
    expect(formatAge(42)).toBe('42 s');
    expect(formatAge(3000)).toBe('50 min');
    expect(formatAge(3 * 3600 + 600)).toBe('3 h 10 min');
    expect(formatAge(5 * 86400)).toBe('5 d');
    expect(formatAge(NaN)).toBe('unknown');
  });

  test('a warn threshold above its crit is a config error naming the key', () => {
    const config = parseConfig({ jobs: { verify: { lagVersionsWarn: 2000 } } }, 'c.yaml');
    expect(() => jobOptions(config, 'verify', verifyJob.options)).toThrow(
      'c.yaml: jobs.verify.lagVersionsWarn: must not exceed lagVersionsCrit (1000)',
    );
    expect(jobOptions(parseConfig({}, 'c.yaml'), 'verify', verifyJob.options)).toMatchObject({
      lagVersionsWarn: 100,
      lagVersionsCrit: 1000,
    });
  });
});

describe('a metalogger verdict', () => {
  test('holding every change the master has: OK, lag 0, figures as metrics with thresholds', async () => {
    const v = judgeMetalogger(ml(await healthy()), T);
    expect(v.status).toBe('OK');
    expect(v.findings).toEqual([]);
    const metric = (name: string) => v.metrics.find((m) => m.name === name)!;
    expect(metric('lag_versions')).toMatchObject({ value: 0, warn: 100, crit: 1000, labels: { metalogger: 'ml1' } });
    expect(metric('lag_seconds')).toMatchObject({ value: 0, unit: 's' });
    expect(metric('image_age_seconds')).toMatchObject({ value: 600, warn: 25 * 3600, crit: 48 * 3600 });
    expect(metric('restorable_version').value).toBe(201);
    expect(metric('holes')).toMatchObject({ value: 0, crit: 0 });
    expect(metric('connected').value).toBe(1);
  });

  test('behind the master: WARNING above lagVersionsWarn, CRITICAL above lagVersionsCrit; seconds from its newest change', async () => {
    const warn = judgeMetalogger(ml(await healthy(200, NOW_S - 60), { masterVersion: 351 }), T);
    expect(warn.status).toBe('WARNING');
    expect(warn.findings[0]!.text).toBe(
      '150 versions behind the master (restores to 201, master at 351, newest change it holds is 60 s old)',
    );
    expect(warn.metrics.find((m) => m.name === 'lag_seconds')!.value).toBe(60);
    expect(judgeMetalogger(ml(await healthy(), { masterVersion: 1500 }), T).status).toBe('CRITICAL');
    const stale = judgeMetalogger(ml(await healthy(200, NOW_S - 2000), { masterVersion: 205 }), T);
    expect(stale.status).toBe('CRITICAL');
    expect(stale.findings[0]!.text).toMatch(/^4 versions behind .* newest change it holds is 33 min old/);
  });

  test('a little ahead of the master (read after it) is lag 0; far ahead, it holds changes the master never had', async () => {
    const v = judgeMetalogger(ml(await healthy(), { masterVersion: 150 }), T);
    expect(v).toMatchObject({ status: 'OK', figures: { lagVersions: 0 } });
    const far = judgeMetalogger(ml(await healthy(2000), { masterVersion: 150 }), T);
    expect(far.status).toBe('WARNING');
    expect(far.findings[0]!.text).toBe(
      '1851 versions ahead of the master (restores to 2001, master at 150): does it follow another master, or did the master lose changes?',
    );
  });

  test('a hole: CRITICAL, named like mfsmaster names it', async () => {
    const facts = dataPath(
      [image('metadata_ml.mfs.back', 24, { mtimeMs: NOW })],
      [await changelog('changelog_ml.0.mfs', changelogLines(24, 49) + changelogLines(51, 200))],
    );
    const v = judgeMetalogger(ml(facts), T);
    expect(v.status).toBe('CRITICAL');
    expect(v.findings.map((f) => f.text)).toContain('hole 50..50 (mfsmaster -a would stop: "hole in change files")');
    expect(v.metrics.find((m) => m.name === 'holes')!.value).toBe(1);
    expect(summarize([v])).toMatch(/^ml1: hole 50\.\.50/);
  });

  test('several holes are listed together', async () => {
    const facts = dataPath(
      [image('metadata_ml.mfs.back', 24, { mtimeMs: NOW })],
      [await changelog('c', changelogLines(24, 49) + changelogLines(53, 59) + changelogLines(61, 200))],
    );
    expect(judgeMetalogger(ml(facts), T).findings.map((f) => f.text)).toContain(
      'holes 50..52, 60..60 (mfsmaster -a would stop: "hole in change files")',
    );
  });

  test('a cut line in a file the restore needs is CRITICAL; in a file older than the image only WARNING', async () => {
    const cut = dataPath(
      [image('metadata_ml.mfs.back', 100, { mtimeMs: NOW })],
      [await changelog('changelog_ml.0.mfs', changelogLines(100, 200) + '201: 1795')],
    );
    const v = judgeMetalogger(ml(cut), T);
    expect(v.status).toBe('CRITICAL');
    expect(v.findings[0]!.text).toBe(
      'changelog_ml.0.mfs: last line 102 is cut off (no newline at end of file): mfsmaster -a ignores the whole file, so a restore stops at version 100 although this file holds lines up to 200',
    );
    const old = dataPath(
      [image('metadata_ml.mfs.back', 100, { mtimeMs: NOW })],
      [
        await changelog('changelog_ml.1.mfs', changelogLines(1, 50) + '51: 1795'),
        await changelog('changelog_ml.0.mfs', changelogLines(100, 200)),
      ],
    );
    const w = judgeMetalogger(ml(old), T);
    expect(w.status).toBe('WARNING');
    expect(w.findings[0]!.text).toMatch(/changelog_ml\.1\.mfs: .*\(no version lost/);
  });

  test('a changelog without one readable line (overwritten with garbage) is CRITICAL, never "no version lost"', async () => {
    const garbage = 'x\u0001\u00ff binary junk\n'.repeat(20) + 'no newline at the end';
    const facts = dataPath(
      [image('metadata_ml.mfs.back', 100, { mtimeMs: NOW })],
      [await changelog('changelog_ml.1.mfs', changelogLines(100, 150)), await changelog('changelog_ml.0.mfs', garbage)],
    );
    const v = judgeMetalogger(ml(facts, { masterVersion: 152 }), T);
    expect(v.status).toBe('CRITICAL');
    expect(v.findings[0]!.text).toMatch(
      /^changelog_ml\.0\.mfs: not one readable changelog line in 21 lines \(line 1: unparsable line\): the file is damaged and whatever it held is lost$/,
    );
  });

  test('no valid image: CRITICAL, whatever the changelogs say; lag unknown', async () => {
    const facts = dataPath(
      [
        image('metadata_ml.mfs.back', 0, {
          error:
            'ml1 (local):/var/lib/mfs/metadata_ml.mfs.back: not a MooseFS metadata image (header "garbage!", expected "MFSM 2.0")',
        }),
      ],
      [await changelog('c', changelogLines(1, 200))],
    );
    const v = judgeMetalogger(ml(facts), T);
    expect(v.status).toBe('CRITICAL');
    expect(v.findings[0]!.text).toBe(
      `no valid metadata image, mfsmaster -a would stop with "can't find valid metadata file" (metadata_ml.mfs.back: not a MooseFS metadata image (header "garbage!", expected "MFSM 2.0"))`,
    );
    expect(v.metrics.find((m) => m.name === 'lag_versions')!.value).toBeNaN();
  });

  test('an unreachable metalogger is CRITICAL, never OK', () => {
    const v = judgeMetalogger(
      ml(undefined, { error: 'ml1 (10.0.0.5:22): cannot connect over SSH: connection refused' }),
      T,
    );
    expect(v.status).toBe('CRITICAL');
    expect(summarize([v])).toBe(
      'ml1: cannot read its DATA_PATH: ml1 (10.0.0.5:22): cannot connect over SSH: connection refused',
    );
    expect(v.metrics.find((m) => m.name === 'holes')!.value).toBeNaN();
  });

  test('master unknown: no lag finding here (the job reports the master), lag metrics NaN', async () => {
    const v = judgeMetalogger(ml(await healthy(), { masterVersion: undefined, connected: undefined }), T);
    expect(v.status).toBe('OK');
    expect(v.metrics.find((m) => m.name === 'lag_versions')!.value).toBeNaN();
    expect(v.metrics.find((m) => m.name === 'connected')!.value).toBeNaN();
  });

  test('not listed by the master: WARNING', async () => {
    const v = judgeMetalogger(ml(await healthy(), { connected: false }), T);
    expect(v.status).toBe('WARNING');
    expect(v.findings[0]!.text).toBe(
      'not connected to the master (the master does not list 10.0.0.5 among its metaloggers)',
    );
  });

  test('an image older than META_DOWNLOAD_FREQ plus slack: downloads have stopped', async () => {
    const facts = (age: number) => dataPath([image('metadata_ml.mfs.back', 100, { mtimeMs: NOW - age * 1000 })], []);
    expect(judgeMetalogger(ml(facts(25 * 3600), { masterVersion: 100 }), T).status).toBe('OK');
    const warn = judgeMetalogger(ml(facts(26 * 3600), { masterVersion: 100 }), T);
    expect(warn.status).toBe('WARNING');
    expect(warn.findings[0]!.text).toBe(
      'image metadata_ml.mfs.back is 26 h 0 min old (META_DOWNLOAD_FREQ 24 h + 1 h slack): metadata downloads have stopped',
    );
    expect(judgeMetalogger(ml(facts(49 * 3600), { masterVersion: 100 }), T).status).toBe('CRITICAL');
  });
});

describe('when the newest change a restore reaches was made', () => {
  test('exact when a file ends there; otherwise an older file end (lag reads larger, never smaller)', async () => {
    const a = await changelog('a', changelogLines(100, 150, 1000));
    const b = await changelog('b', changelogLines(151, 200, 2000));
    expect(reachedTimestamp(dataPath([image('i', 100)], [a, b]))).toBe(2000);
    const holey = await changelog('b', changelogLines(151, 170, 2000) + changelogLines(172, 200, 3000));
    expect(reachedTimestamp(dataPath([image('i', 100)], [a, holey]))).toBe(1000);
  });
});

describe('a snapshot verdict', () => {
  const manifest = (o: Partial<Manifest> = {}): Manifest => ({
    formatVersion: 1,
    id: '20261125T221500Z-v201',
    source: { name: 'ml1', host: 'h', role: 'metalogger', dataPath: '/var/lib/mfs' },
    image: { name: 'metadata_ml.mfs.back', version: 100, metaid: '6B0765A344C26A01', empty: false },
    changelogs: { first: 100, last: 200 },
    reachesVersion: 201,
    files: [],
    mfsJobsVersion: 't',
    startedAt: new Date(NOW - 3600_000).toISOString(),
    finishedAt: new Date(NOW - 3600_000).toISOString(),
    ...o,
  });
  async function snapshot(
    m: Manifest,
    problems: Record<string, string> = {},
    text = changelogLines(100, 200),
  ): Promise<SnapshotFacts> {
    const images = [image('metadata_ml.mfs.back', 100)];
    const changelogs = [await changelog('changelog_ml.0.mfs', text)];
    const files = [
      { name: 'metadata_ml.mfs.back', role: 'image' as const, problem: problems['metadata_ml.mfs.back'] },
      { name: 'changelog_ml.0.mfs', role: 'changelog' as const, problem: problems['changelog_ml.0.mfs'] },
    ];
    return {
      snapshot: { id: m.id, dir: `/store/snapshots/${m.id}`, manifest: m },
      files,
      images,
      changelogs,
      plan: planRestore(images, changelogs),
    };
  }

  test('whole and fresh: OK, restorable version and age as metrics', async () => {
    const v = judgeSnapshot(
      { store: '/store', facts: await snapshot(manifest()), broken: [], masterVersion: 210, now: NOW },
      T,
    );
    expect(v.status).toBe('OK');
    expect(v.name).toBe('snapshot 20261125T221500Z-v201');
    expect(v.metrics.find((m) => m.name === 'snapshot_age_seconds')!.value).toBe(3600);
    expect(v.metrics.find((m) => m.name === 'snapshot_lag_versions')!.value).toBe(9);
  });

  test('a snapshot whose manifest was refused for trust (forged, unsigned with a key): CRITICAL naming it and why; an unreadable one WARNING', async () => {
    const broken = [
      {
        id: '20261125T231500Z-v205',
        error: 'snapshot 20261125T231500Z-v205: its manifest MAC does not match (edited or forged); refused',
        untrusted: true,
      },
      { id: '20261125T201500Z-v190', error: 'unreadable manifest (ENOENT)' },
    ];
    const v = judgeSnapshot({ store: '/store', facts: await snapshot(manifest()), broken, now: NOW }, T);
    expect(v.status).toBe('CRITICAL');
    expect(v.findings.map((f) => [f.status, f.text])).toEqual([
      [
        'CRITICAL',
        'snapshot 20261125T231500Z-v205 refused: snapshot 20261125T231500Z-v205: its manifest MAC does not match (edited or forged); refused',
      ],
      ['WARNING', 'snapshot directories without a readable manifest: 20261125T201500Z-v190'],
    ]);
  });

  test('a checksum that does not match: CRITICAL naming the file', async () => {
    const v = judgeSnapshot(
      {
        store: '/store',
        facts: await snapshot(manifest(), {
          'changelog_ml.0.mfs': 'sha256 0123456789ab… does not match the manifest (ba9876543210…)',
        }),
        broken: [],
        now: NOW,
      },
      T,
    );
    expect(v.status).toBe('CRITICAL');
    expect(summarize([v])).toBe(
      'snapshot 20261125T221500Z-v201: changelog_ml.0.mfs: sha256 0123456789ab… does not match the manifest (ba9876543210…)',
    );
  });

  test('files that do not reach what the manifest promises: CRITICAL', async () => {
    const v = judgeSnapshot(
      { store: '/store', facts: await snapshot(manifest(), {}, changelogLines(100, 180)), broken: [], now: NOW },
      T,
    );
    expect(v.findings.map((f) => f.text)).toContain('restores to version 181, manifest promises 201');
  });

  test('an image header that disagrees with the manifest: CRITICAL', async () => {
    const v = judgeSnapshot(
      {
        store: '/store',
        facts: await snapshot(
          manifest({ image: { name: 'metadata_ml.mfs.back', version: 90, metaid: '6B0765A344C26A01', empty: false } }),
        ),
        broken: [],
        now: NOW,
      },
      T,
    );
    expect(v.status).toBe('CRITICAL');
    expect(v.findings[0]!.text).toMatch(/header says version 100 .* manifest says version 90/);
  });

  test('old, missing or half-written snapshots are WARNING or CRITICAL, never OK', async () => {
    const old = new Date(NOW - 30 * 3600_000).toISOString();
    expect(
      judgeSnapshot({ store: '/store', facts: await snapshot(manifest({ finishedAt: old })), broken: [], now: NOW }, T)
        .status,
    ).toBe('WARNING');
    expect(judgeSnapshot({ store: '/store', broken: [], now: NOW }, T).findings[0]!.text).toBe(
      'no complete snapshot in /store yet',
    );
    expect(
      judgeSnapshot(
        {
          store: '/store',
          facts: await snapshot(manifest()),
          broken: [{ id: 'x', error: 'unreadable manifest' }],
          now: NOW,
        },
        T,
      ).status,
    ).toBe('WARNING');
    expect(judgeSnapshot({ store: '/store', broken: [], error: 'EACCES', now: NOW }, T).status).toBe('CRITICAL');
  });
});

describe('the summary line', () => {
  test('worst first, prefixed by the source, long lists cut short', () => {
    const s = summarize(
      [
        { name: 'ml1', findings: [{ status: 'WARNING', text: 'w1' }] },
        {
          name: 'ml2',
          findings: [
            { status: 'CRITICAL', text: 'hole 50..50' },
            { status: 'OK', text: 'ignored' },
          ],
        },
        {
          name: '',
          findings: [
            { status: 'UNKNOWN', text: 'no master answers' },
            { status: 'WARNING', text: 'w2' },
            { status: 'WARNING', text: 'w3' },
          ],
        },
      ],
      4,
    );
    expect(s).toBe('ml2: hole 50..50; ml1: w1; w2; w3; (+1 more)');
  });
});

describe('which metaloggers the master lists as connected', () => {
  test('mfscli -SMB says "localhost" for 127.0.0.1: matched by address', () => {
    const v = matchConnected(
      [{ name: 'ml1', host: '127.0.0.1', addresses: ['127.0.0.1'] }],
      [{ host: 'localhost', addresses: ['127.0.0.1', '::1'] }],
    );
    expect(v.connected.get('ml1')).toBe(true);
    expect(v.ambiguous).toEqual([]);
  });

  test('short and full host names match; another host does not', () => {
    const v = matchConnected(
      [
        { name: 'a', host: 'ml-a.example.net', addresses: [] },
        { name: 'b', host: 'ml-b.example.net', addresses: ['10.0.0.2'] },
      ],
      [{ host: 'ml-a', addresses: [] }],
    );
    expect(v.connected.get('a')).toBe(true);
    expect(v.connected.get('b')).toBe(false);
  });

  test('two configured at one address, one listed: cannot tell which, said once', () => {
    const v = matchConnected(
      [
        { name: 'ml1', host: '127.0.0.1', addresses: ['127.0.0.1'] },
        { name: 'ml2', host: '127.0.0.1', addresses: ['127.0.0.1'] },
      ],
      [{ host: 'localhost', addresses: ['127.0.0.1'] }],
    );
    expect(v.connected.get('ml1')).toBeUndefined();
    expect(v.connected.get('ml2')).toBeUndefined();
    expect(v.ambiguous).toEqual([
      'master lists 1 metalogger at localhost where 2 are configured (ml1, ml2): at least one is not connected',
    ]);
  });
});
