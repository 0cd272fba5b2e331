import { generationNamed } from '../../../lib/moosefs/generations/index.js';
import { MasterCfg } from '../../../lib/moosefs/master-cfg.js';
import { restoreCommandLine } from '../../../lib/moosefs/roll-forward.js';

/** One reader of a master's cfg: every caller gets the same ports, hosts and locks from the same lines. */
describe('MasterCfg', () => {
  const g15 = generationNamed('1.5');
  const g30 = generationNamed('3.0');

  test("a generation's own keys, MooseFS's defaults where unset, none for a peer it has not", () => {
    const cfg = new MasterCfg('/etc/mfs/mfsmaster.cfg', { MATOCL_LISTEN_PORT: '9521', MATOCU_LISTEN_PORT: '9621' });
    expect(cfg.listenPort(g30, 'cl')).toEqual({ key: 'MATOCL_LISTEN_PORT', port: 9521 });
    expect(cfg.listenPort(g15, 'cl')).toEqual({ key: 'MATOCU_LISTEN_PORT', port: 9621 });
    expect(cfg.listenPort(g30, 'cs')).toEqual({ key: 'MATOCS_LISTEN_PORT', port: 9420 });
    expect(cfg.listenPort(g30, 'cs', 19420)!.port).toBe(19420);
    expect(cfg.listenPort(g15, 'ml')).toBeUndefined();
  });

  test('whatever the generation: the newest key name wins, 1.x names count, unset is the fallback', () => {
    expect(
      new MasterCfg('f', { MATOCL_LISTEN_PORT: '9521', MATOCU_LISTEN_PORT: '9621' }).anyGenerationPort('cl', 1),
    ).toBe(9521);
    expect(new MasterCfg('f', { MATOCU_LISTEN_PORT: '9621' }).anyGenerationPort('cl', 1)).toBe(9621);
    expect(new MasterCfg('f', {}).anyGenerationPort('cl', 9999)).toBe(9999);
    const all = new MasterCfg('f', { MATOML_LISTEN_PORT: '9519', MATOCU_LISTEN_PORT: '9621' });
    expect(all.anyGenerationPorts({ cl: 9999 })).toEqual([9420, 9519, 9621, 9999]);
  });

  test('listen host: loopback for any address, else the one set', () => {
    expect(new MasterCfg('f', {}).localHost(g30, 'cl')).toBe('127.0.0.1');
    expect(new MasterCfg('f', { MATOCL_LISTEN_HOST: '*' }).localHost(g30, 'cl')).toBe('127.0.0.1');
    expect(new MasterCfg('f', { MATOCU_LISTEN_HOST: '10.0.0.5' }).localHost(g15, 'cl')).toBe('10.0.0.5');
  });

  test('DATA_PATH and the locks a master run with it may hold', () => {
    const cfg = new MasterCfg('f', { DATA_PATH: '/var/lib/mfs', LOCK_FILE: '/run/mfs/m.lock' });
    expect(cfg.dataPath).toBe('/var/lib/mfs');
    expect(cfg.lockFiles('/var/lib/mfs')).toEqual(['/run/mfs/m.lock', '/var/lib/mfs/.mfsmaster.lock']);
  });
});

describe('restoreCommandLine', () => {
  const files = { dataPath: '/d', image: 'metadata.mfs.back', changelogs: ['changelog.1.mfs', 'changelog.2.mfs'] };
  test('1.7 and later: mfsmaster -a', () => {
    expect(
      restoreCommandLine({ generation: generationNamed('3.0'), mfsmaster: '/usr/sbin/mfsmaster' }, '/c', files),
    ).toBe(
      ['/usr/sbin/mfsmaster', ...generationNamed('3.0').startArgs('/c', { autoRestore: true, foreground: false })].join(
        ' ',
      ),
    );
  });
  test('before 1.7: mfsmetarestore on the changelogs oldest first, then a plain start', () => {
    const g = generationNamed('1.6.5');
    const start = ['mfsmaster', ...g.startArgs('/c', { autoRestore: false, foreground: false })].join(' ');
    expect(restoreCommandLine({ generation: g }, '/c', files)).toBe(
      `mfsmetarestore -m /d/metadata.mfs.back -o /d/metadata.mfs /d/changelog.2.mfs /d/changelog.1.mfs && ${start}`,
    );
  });
});
