import { parseConfig } from '../../../lib/core/config.js';
import { differingKeys, parseYaml, renderConfig, type InitPlan } from '../../../lib/commands/init-config.js';
import { parseMasterAddress } from '../../../lib/commands/init-run.js';

function plan(over: Partial<InitPlan> = {}): InitPlan {
  return {
    configFile: '/etc/mfs-jobs/config.yaml',
    stateDir: '/var/lib/mfs-jobs',
    store: '/var/lib/mfs-jobs/snapshots',
    master: { name: 'mfsmaster', host: '10.0.0.11', cliPort: 9421, dataPath: '/var/lib/mfs', local: false },
    metaloggers: [{ name: 'ml-10.0.0.21', host: '10.0.0.21', dataPath: '/var/lib/mfs', local: true }],
    chunkservers: [],
    ssh: { user: 'root', port: 22, privateKey: '/etc/mfs-jobs/id_ed25519', knownHosts: '/etc/mfs-jobs/known_hosts' },
    softwareVersion: '4.59.2',
    generation: '4',
    metaid: '6B16A16EE77FB371',
    schedules: [
      { job: 'check-master', schedule: '*/5 * * * *' },
      { job: 'backup', schedule: '7 * * * *' },
    ],
    ...over,
  };
}

describe('init: the config it renders', () => {
  test('loads with the schema every job uses, with what was found', () => {
    const config = parseConfig(parseYaml(renderConfig(plan({ moosefsPrefix: '/opt/mfs/4.59.2' }))), 'x.yaml');
    expect(config.masters[0]).toMatchObject({
      host: '10.0.0.11',
      cliPort: 9421,
      ssh: { acceptUnknownHostKeys: false, port: 22 },
    });
    expect(config.metaloggers[0]).toMatchObject({ local: true, ssh: undefined, metaDownloadFreqHours: 24 });
    expect(config.cluster.metaid).toBe('6B16A16EE77FB371');
    expect(config.moosefs).toEqual({ generation: 'auto', prefixes: { '4': '/opt/mfs/4.59.2' } });
    expect(config.snapshotStore?.compression).toEqual({ type: 'zstd', level: 3 });
    expect(config.jobs.drill).toEqual({ enabled: false });
  });

  test('every host local: no ssh section, no metaid when the master does not report one', () => {
    const text = renderConfig(plan({ master: { ...plan().master, local: true }, metaid: undefined, metaloggers: [] }));
    const config = parseConfig(parseYaml(text), 'x.yaml');
    expect(text).not.toMatch(/^ssh:/m);
    expect(config.cluster.metaid).toBeUndefined();
    expect(config.metaloggers).toEqual([]);
  });

  test('before 1.6.5: the chunkservers the master listed, under chunkservers:, over SSH', () => {
    const cs = { name: 'cs-10.0.0.31', host: '10.0.0.31', dataPath: '/srv/mfs', local: false };
    const text = renderConfig(
      plan({ softwareVersion: '1.6.4', generation: '1.6', metaid: undefined, metaloggers: [], chunkservers: [cs] }),
    );
    const config = parseConfig(parseYaml(text), 'x.yaml');
    expect(config.chunkservers).toMatchObject([
      { name: 'cs-10.0.0.31', host: '10.0.0.31', dataPath: '/srv/mfs', ssh: { acceptUnknownHostKeys: false } },
    ]);
    expect(config.metaloggers).toEqual([]);
  });

  test('the same answers give the same bytes', () => {
    expect(renderConfig(plan())).toBe(renderConfig(plan()));
  });
});

describe('init: what differs between two configs', () => {
  test('names dotted keys; comments and key order do not count', () => {
    const a = parseYaml('a: 1\nb: { c: [1, 2], d: x }\n');
    expect(differingKeys(a, parseYaml('# note\nb: { d: x, c: [1, 2] }\na: 1\n'))).toEqual([]);
    expect(differingKeys(a, parseYaml('a: 2\nb: { c: [1, 3], d: x, e: 1 }\n'))).toEqual(['a', 'b.c.1', 'b.e']);
    expect(differingKeys(a, parseYaml('a: 1\nb: { c: [1], d: x }\n'))).toEqual(['b.c']);
  });
});

describe('init: --master', () => {
  test.each([
    ['10.0.0.11', { host: '10.0.0.11', port: 9421 }],
    ['mfsmaster:19421', { host: 'mfsmaster', port: 19421 }],
    ['[fd00::1]:9421', { host: 'fd00::1', port: 9421 }],
  ])('%s', (text, expected) => {
    expect(parseMasterAddress(text)).toEqual(expected);
  });

  test.each(['', 'host:0', 'host:70000', 'a b', 'host:x'])('refuses %j with one line naming --master', (text) => {
    expect(() => parseMasterAddress(text)).toThrow(/--master/);
  });
});
