import { guardTableScript } from '../../../lib/moosefs/scratch-guard.js';

describe('the scratch master guard script (every generation)', () => {
  test('one table, an output chain, one rule: SYNs to loopback on the three ports from any other uid are reset', () => {
    const script = guardTableScript('mfs_jobs_drill_42', [11001, 11002, 11003], 0);
    expect(script.split('\n')).toEqual([
      'table inet mfs_jobs_drill_42 {',
      '  chain output {',
      '    type filter hook output priority 0; policy accept;',
      '    ip daddr 127.0.0.0/8 tcp dport { 11001, 11002, 11003 } tcp flags & (syn | ack) == syn meta skuid != 0 reject with tcp reset',
      '  }',
      '}',
      '',
    ]);
  });

  test("the drill's own uid is the one let through", () => {
    expect(guardTableScript('t', [1], 1000)).toContain('meta skuid != 1000 reject');
  });
});
