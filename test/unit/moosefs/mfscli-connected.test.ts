import { parseConnected } from '../../../lib/moosefs/mfscli.js';

/** `mfscli -SMS` / `-SCS` with `-p -s TAB`, as measured on Debian's 3.0.117 (an active mount; one left after umount). */
describe('parseConnected: who is back on a master', () => {
  test('counts active and inactive mounts and connected chunkservers', () => {
    const mounts = [
      'active mounts, parameters:\t1\tlocalhost\t/mnt/a\t0\t1\t3.0.117\t/\trw\tyes\tno\tno\t0\t0\t-\t-\t-\t-\t-\t-\t000\t00000000',
      '',
      'inactive mounts, parameters:\t2\tlocalhost\t/mnt/b\t3\t0',
      'inactive mounts, parameters:\t3\tclient-c\t/mnt/c\t1\t0',
    ].join('\n');
    const servers = 'chunk servers:\t10.77.0.3\t9422\t-\t3.0.117\t0\t0\t0\t4294967296\t0\t0\t0\t0\n';
    expect(parseConnected(mounts, servers)).toEqual({ activeMounts: 1, inactiveMounts: 2, chunkservers: 1 });
  });

  test('an empty master: nothing connected, nothing known', () => {
    expect(parseConnected('\n\n', '\n')).toEqual({ activeMounts: 0, inactiveMounts: 0, chunkservers: 0 });
  });
});
