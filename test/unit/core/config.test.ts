import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { jobOptions, parseConfig } from '../../../lib/core/config.js';
import { ConfigError } from '../../../lib/core/errors.js';
import { loadJobs } from '../../../jobs/index.js';
import { REPO_ROOT } from '../../helpers/cli.js';

const base = {
  ssh: { privateKey: '/k', knownHosts: '/kh' },
  masters: [{ name: 'm', host: '10.0.0.1' }],
};

function problem(doc: unknown): string {
  try {
    parseConfig(doc, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  test('the shipped example config is valid, every job section included', async () => {
    const doc = YAML.parse(await fs.readFile(path.join(REPO_ROOT, 'examples', 'config.yaml'), 'utf8'));
    const config = parseConfig(doc, 'examples/config.yaml');
    expect(config.masters[0]!.ssh?.port).toBe(22);
    expect(config.metaloggers[1]!.ssh?.port).toBe(2222);
    for (const job of await loadJobs()) expect(() => jobOptions(config, job.name, job.options)).not.toThrow();
  });

  test('defaults fill what is left out', () => {
    const config = parseConfig(base);
    expect(config).toMatchObject({
      timezone: 'UTC',
      stateDir: '/var/lib/mfs-jobs',
      lockDir: '/var/lib/mfs-jobs/locks',
      daemon: { socket: '/var/lib/mfs-jobs/daemon.sock' },
    });
    expect(parseConfig({ ...base, stateDir: '/srv/s' }).daemon.socket).toBe('/srv/s/daemon.sock');
    expect(parseConfig({ ...base, daemon: { socket: false } }).daemon.socket).toBeUndefined();
    expect(config.masters[0]).toMatchObject({
      cliHost: '10.0.0.1',
      cliPort: 9421,
      dataPath: '/var/lib/mfs',
      ssh: { port: 22, user: 'root' },
    });
  });

  test('errors name the key and what was expected', () => {
    expect(problem({ ...base, masters: [{ name: 'm', host: 'h', cliPort: 'x' }] })).toMatch(
      /masters\.0\.cliPort: .*expected number/,
    );
    expect(problem({ ...base, timezone: 'Mars/Base' })).toMatch(/timezone: expected an IANA time zone/);
    expect(problem({ ...base, stateDir: 'relative' })).toMatch(/stateDir: expected an absolute path/);
    expect(problem({ ...base, daemon: { socket: 'daemon.sock' } })).toMatch(/daemon\.socket: /);
    expect(problem({ ...base, standby: { dataPath: '/d', promoteOnVip: 'yes' } })).toMatch(
      /standby\.promoteOnVip: .*expected boolean/,
    );
    expect(problem({ ...base, mastres: [] })).toMatch(/mastres: unknown key/);
    expect(problem({ ...base, jobs: { backup: { schedule: 'every hour' } } })).toMatch(
      /jobs\.backup\.schedule: expected a cron expression/,
    );
    expect(problem({ ...base, ssh: { privateKey: '/k' } })).toMatch(/masters\.0\.ssh\.knownHosts/);
    expect(problem({ ...base, metaloggers: [{ name: 'm', host: 'x' }] })).toMatch(/host name "m" is used twice/);
  });

  test('snapshotStore: zstd 3 for a store whose config says nothing; compression and encryption keys are checked, errors name the key', () => {
    const store = (extra: Record<string, unknown>) => ({ ...base, snapshotStore: { path: '/s', ...extra } });
    expect(parseConfig(store({}), 'test.yaml').snapshotStore).toMatchObject({
      compression: { type: 'zstd', level: 3 },
    });
    expect(parseConfig(store({ compression: { type: 'none' } }), 'test.yaml').snapshotStore!.compression).toEqual({
      type: 'none',
      level: 3,
    });
    expect(problem(store({ compression: { type: 'gzip' } }))).toContain('snapshotStore.compression.type');
    // compression_shorthand_refused: `compression: zstd` is what an operator types.
    expect(parseConfig(store({ compression: 'zstd' }), 'test.yaml').snapshotStore!.compression).toEqual({
      type: 'zstd',
      level: 3,
    });
    expect(parseConfig(store({ compression: 'none' }), 'test.yaml').snapshotStore!.compression).toEqual({
      type: 'none',
      level: 3,
    });
    expect(problem(store({ compression: 'gzip' }))).toContain('snapshotStore.compression.type');
    expect(problem(store({ compression: { type: 'zstd', level: 20 } }))).toContain('snapshotStore.compression.level');
    expect(problem(store({ compression: { type: 'zstd', level: 2.5 } }))).toContain('snapshotStore.compression.level');
    expect(problem(store({ encryption: { keyFile: 'relative/key' } }))).toContain('snapshotStore.encryption.keyFile');
    expect(problem(store({ encryption: { keyFile: '/k', cipher: 'rot13' } }))).toContain('snapshotStore.encryption');
  });

  test("a job section is checked with the job's own schema", async () => {
    const config = parseConfig({ ...base, jobs: { 'check-master': { cliTimeoutSeconds: -1 } } }, 'c.yaml');
    const job = (await loadJobs()).find((j) => j.name === 'check-master')!;
    expect(() => jobOptions(config, job.name, job.options)).toThrow(/jobs\.check-master\.cliTimeoutSeconds/);
  });
});
