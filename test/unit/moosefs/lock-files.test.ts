import { masterLockFiles } from '../../../lib/moosefs/mfsmaster.js';
import { generationNamed } from '../../../lib/moosefs/generations/index.js';

describe('where a master run with an mfsmaster.cfg keeps its PID (promote, demote, check-standby ask the same)', () => {
  test("DATA_PATH's .mfsmaster.lock always; LOCK_FILE wherever the cfg points it, relative to DATA_PATH", () => {
    expect(masterLockFiles({}, '/var/lib/mfs')).toEqual(['/var/lib/mfs/.mfsmaster.lock']);
    expect(masterLockFiles({ LOCK_FILE: '/run/mfs/masterB.lock' }, '/var/lib/mfs')).toEqual([
      '/run/mfs/masterB.lock',
      '/var/lib/mfs/.mfsmaster.lock',
    ]);
    expect(masterLockFiles({ LOCK_FILE: 'run/master.lock' }, '/var/lib/mfs')).toEqual([
      '/var/lib/mfs/run/master.lock',
      '/var/lib/mfs/.mfsmaster.lock',
    ]);
  });

  test('before 1.6.5 a cfg without LOCK_FILE leaves the lock where the build says: unknown; later generations: DATA_PATH', () => {
    expect(generationNamed('1.6').lockFile({}, '/var/lib/mfs')).toBeUndefined();
    expect(generationNamed('1.5').lockFile({ LOCK_FILE: '/x/m.lock' }, '/var/lib/mfs')).toBe('/x/m.lock');
    for (const g of ['1.6.5', '3.0', '4'] as const)
      expect(generationNamed(g).lockFile({ LOCK_FILE: '/x/m.lock' }, '/d')).toBe('/d/.mfsmaster.lock');
  });
});
