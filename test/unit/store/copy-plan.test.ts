import { parseConfig } from '../../../lib/core/config.js';
import { ConfigError } from '../../../lib/core/errors.js';
import { planCopy } from '../../../lib/store/copy/plan.js';

const snap = (id: string, source = 'master') => ({
  id,
  manifest: {
    source: { name: source },
    startedAt: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}Z`,
  },
});
const keepLast = (n: number) => ({ keepLast: n, keepHourly: 0, keepDaily: 0, keepWeekly: 0 });
const [a, b, c, d] = ['20260301T100000Z-v1', '20260301T110000Z-v2', '20260301T120000Z-v3', '20260301T130000Z-v4'].map(
  (id) => snap(id),
);

describe('what a backup run does to one copy (pure)', () => {
  test('an empty copy gets every local snapshot its retention keeps, newest first', () => {
    const plan = planCopy({ local: [a!, b!, c!], complete: [], incomplete: [], retention: keepLast(2), zone: 'UTC' });
    expect(plan).toMatchObject({ push: [c!.id, b!.id], remove: [], removeIncomplete: [] });
  });

  test('complete remote snapshots are not sent again; the ones retention drops are removed', () => {
    const plan = planCopy({
      local: [b!, c!, d!],
      complete: [a!, b!, c!],
      incomplete: [],
      retention: keepLast(3),
      zone: 'UTC',
    });
    expect(plan).toMatchObject({ push: [d!.id], remove: [a!.id] });
  });

  test('a copy keeps longer than the store when its retention says so', () => {
    const plan = planCopy({
      local: [d!],
      complete: [a!, b!, c!],
      incomplete: [],
      retention: keepLast(10),
      zone: 'UTC',
    });
    expect(plan).toMatchObject({ push: [d!.id], remove: [] });
  });

  test('an incomplete upload of a local snapshot is finished; one nothing will finish is removed', () => {
    const plan = planCopy({
      local: [c!, d!],
      complete: [],
      incomplete: [a!.id, d!.id],
      retention: keepLast(2),
      zone: 'UTC',
    });
    expect(plan).toMatchObject({ push: [d!.id, c!.id], removeIncomplete: [a!.id] });
  });

  test("retention counts per source: one busy source never pushes out another's only snapshot", () => {
    const other = snap('20260301T090000Z-v9', 'ml1');
    const plan = planCopy({
      local: [other, a!, b!, c!],
      complete: [],
      incomplete: [],
      retention: keepLast(1),
      zone: 'UTC',
    });
    expect(plan.push.sort()).toEqual([other.id, c!.id].sort());
  });
});

describe('snapshotStore.copies config', () => {
  const base = { snapshotStore: { path: '/srv/mfs-snapshots', copies: [] as unknown[] } };
  const sftp = {
    name: 'dr',
    type: 'sftp',
    host: 'dr.example',
    user: 'mfsbackup',
    identityFile: '/etc/mfs-jobs/id',
    knownHosts: '/etc/mfs-jobs/known_hosts',
    path: '/srv/mfs',
  };
  const s3 = { name: 'cloud', type: 's3', bucket: 'mfs-backups', credentialsFile: '/etc/mfs-jobs/s3.json' };
  const parse = (copies: unknown[]) => parseConfig({ snapshotStore: { ...base.snapshotStore, copies } }, 'c.yaml');
  const error = (copies: unknown[]) => {
    try {
      parse(copies);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  test("defaults: port 22, region us-east-1, no prefix, 30 s timeout, 16 MiB parts, the store's retention", () => {
    const config = parse([sftp, s3]);
    expect(config.snapshotStore!.copies).toEqual([
      { ...sftp, port: 22, timeoutSeconds: 30 },
      { ...s3, region: 'us-east-1', prefix: '', forcePathStyle: false, partSizeMiB: 16, timeoutSeconds: 30 },
    ]);
    expect(parseConfig(base).snapshotStore!.copies).toEqual([]);
  });

  test('errors name the key', () => {
    expect(error([{ ...sftp, identityFile: 'id_ed25519' }])).toBe(
      'c.yaml: snapshotStore.copies.0.identityFile: expected an absolute path',
    );
    expect(error([sftp, { ...s3, name: 'a b' }])).toMatch(
      /^c\.yaml: snapshotStore\.copies\.1\.name: expected a short name/,
    );
    expect(error([{ ...s3, prefix: '/mfs' }])).toMatch(
      /^c\.yaml: snapshotStore\.copies\.0\.prefix: expected "" or a prefix ending in "\/"/,
    );
    expect(error([{ ...s3, secretAccessKey: 'x' }])).toBe(
      'c.yaml: snapshotStore.copies.0.secretAccessKey: unknown key',
    );
    expect(error([{ ...sftp, type: 'ftp' }])).toMatch(/^c\.yaml: snapshotStore\.copies\.0\.type: /);
    expect(error([sftp, { ...s3, name: 'dr' }])).toBe(
      'c.yaml: snapshotStore.copies.1.name: copy name "dr" is used twice',
    );
  });
});
