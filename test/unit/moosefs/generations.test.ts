import { GENERATION_KEYS, parseConfig } from '../../../lib/core/config.js';
import { ConfigError } from '../../../lib/core/errors.js';
import { restoreCommands, restoringBinaries } from '../../../lib/moosefs/generations/binaries.js';
import {
  GENERATION_NAMES,
  generationNamed,
  generationOfSoftware,
  generationsReading,
  generationsWriting,
  listenPortKeys,
  pinnedGeneration,
  sessionsFilesFor,
} from '../../../lib/moosefs/generations/index.js';
import { checkImageEnding, oldestFirst, parseImageHeader } from '../../../lib/moosefs/metadata.js';

/** A `MFSM 1.5` header as 1.5.12, 1.6.4 and 1.6.27 write it: maxnodeid u32, version u64, nextsessionid u32. */
function header15(version: number): Buffer {
  const b = Buffer.alloc(24);
  b.write('MFSM 1.5', 0, 'latin1');
  b.writeUInt32BE(4, 8);
  b.writeBigUInt64BE(BigInt(version), 12);
  b.writeUInt32BE(2, 20);
  return b;
}

describe('MooseFS generations', () => {
  test('the config accepts exactly the generations the adapters know', () => {
    expect([...GENERATION_KEYS]).toEqual(GENERATION_NAMES);
  });

  test.each([
    ['1.5', '1.5'],
    ['1.4', '1.5'],
    ['1.6.4', '1.6'],
    ['1.6.5', '1.6.5'],
    ['1.6.27', '1.6.5'],
    ['1.7.31', '3.0'],
    ['2.0.91', '3.0'],
    ['3.0.117', '3.0'],
    ['4.59.2', '4'],
    ['4.59.2 PRO', '4'],
  ])('a master reporting %s is served by the %s adapter', (software, name) => {
    expect(generationOfSoftware(software)?.name).toBe(name);
  });

  test('an MFSM 1.5 header: version after maxnodeid, no metaid; MFSM 2.0 keeps version and metaid', () => {
    expect(parseImageHeader(header15(166), 'img')).toEqual({
      magic: 'MFSM 1.5',
      version: 166,
      metaid: '',
      empty: false,
    });
    const b = Buffer.alloc(24);
    b.write('MFSM 2.0', 0, 'latin1');
    b.writeBigUInt64BE(155n, 8);
    b.writeBigUInt64BE(0x6b0e97dffb775a3bn, 16);
    expect(parseImageHeader(b, 'img')).toEqual({
      magic: 'MFSM 2.0',
      version: 155,
      metaid: '6B0E97DFFB775A3B',
      empty: false,
    });
  });

  test('an unknown magic is refused naming the header and the formats known', () => {
    const b = header15(1);
    b.write('MFSM 1.6', 0, 'latin1');
    expect(() => parseImageHeader(b, '/x/metadata.mfs.back')).toThrow(
      '/x/metadata.mfs.back: not a MooseFS metadata image (header "MFSM 1.6", expected "MFSM 1.5" or "MFSM 2.0")',
    );
  });

  test('a complete 1.x image ends in an all-zero chunk record; a 2.0 image in [MFS EOF MARKER]', () => {
    const h15 = parseImageHeader(header15(9), 'a');
    expect(() => checkImageEnding(h15, Buffer.alloc(16), 95, 'a')).not.toThrow();
    const cut = Buffer.alloc(16);
    cut[3] = 7;
    expect(() => checkImageEnding(h15, cut, 95, 'a')).toThrow(
      'a: metadata image has no all-zero chunk record ending (truncated or still being written)',
    );
    const h20 = { magic: 'MFSM 2.0', version: 2, metaid: 'AB', empty: false };
    expect(() => checkImageEnding(h20, Buffer.from('[MFS EOF MARKER]', 'latin1'), 100, 'b')).not.toThrow();
    expect(() => checkImageEnding(h20, Buffer.alloc(16), 100, 'b')).toThrow(
      'b: metadata image has no "[MFS EOF MARKER]" ending (truncated or still being written)',
    );
  });

  test('changelogs in the order they were written: higher N first, a metalogger _back file before its live one', () => {
    expect(
      oldestFirst(['changelog_ml.0.mfs', 'changelog_ml.2.mfs', 'changelog_ml_back.0.mfs', 'changelog_ml.1.mfs']),
    ).toEqual(['changelog_ml.2.mfs', 'changelog_ml.1.mfs', 'changelog_ml_back.0.mfs', 'changelog_ml.0.mfs']);
    expect(oldestFirst(['changelog_csback.0.mfs', 'changelog_csback.1.mfs'])).toEqual([
      'changelog_csback.1.mfs',
      'changelog_csback.0.mfs',
    ]);
  });

  test('only 1.x restores need the sessions file beside the image', () => {
    expect(sessionsFilesFor('MFSM 1.5')).toEqual(['sessions.mfs', 'sessions_ml.mfs']);
    expect(sessionsFilesFor('MFSM 2.0')).toEqual([]);
    expect(generationsWriting('MFSM 1.5').map((g) => g.name)).toEqual(['1.6.5', '1.6', '1.5']);
  });

  test('restore binaries: a pinned generation that cannot read the image is refused, naming the key', async () => {
    const config = parseConfig({ moosefs: { generation: '1.6', prefixes: { '1.6': '/opt/m/1.6.4' } } }, 'c.yaml');
    const refusal = restoringBinaries(config, 'MFSM 2.0', 'snapshot x: metadata.mfs.back');
    await expect(refusal).rejects.toThrow(ConfigError);
    await expect(refusal).rejects.toThrow(
      'snapshot x: metadata.mfs.back is a "MFSM 2.0" image (MooseFS 4 or MooseFS 3.0), but moosefs.generation is 1.6 (MooseFS 1.6 (before 1.6.5), "MFSM 1.5" images): refusing to restore it with those binaries',
    );
    const fine = await restoringBinaries(config, 'MFSM 1.5', 'img');
    expect(fine).toMatchObject({
      mfsmaster: '/opt/m/1.6.4/sbin/mfsmaster',
      mfsmetarestore: '/opt/m/1.6.4/sbin/mfsmetarestore',
      key: 'moosefs.prefixes."1.6"',
    });
    expect(fine.generation.restore).toBe('mfsmetarestore');
  });

  test('restore binaries on auto: the generation of the image that has a prefix; the installed mfsmaster must match the image', async () => {
    const withPrefix = parseConfig({ moosefs: { prefixes: { '4': '/opt/m/4.59.2' } } }, 'c.yaml');
    expect((await restoringBinaries(withPrefix, 'MFSM 2.0', 'img')).mfsmaster).toBe('/opt/m/4.59.2/sbin/mfsmaster');
    // No 1.x prefix: the installed mfsmaster (Debian's 3.0.117 here) says what it is, and cannot read MFSM 1.5.
    const installed = parseConfig({}, 'c.yaml');
    await expect(restoringBinaries(installed, 'MFSM 1.5', 'snapshot y: metadata.mfs.back')).rejects.toThrow(
      /^snapshot y: metadata\.mfs\.back is a "MFSM 1\.5" image \(MooseFS 1\.6 \(1\.6\.5 and later\) or MooseFS 1\.6 \(before 1\.6\.5\) or MooseFS 1\.5\), but mfsmaster is MooseFS 3\.0\.117 \("MFSM 2\.0" images\) and cannot restore it: set moosefs\.prefixes\."1\.6\.5" or "1\.6" or "1\.5" to that generation's installation$/,
    );
  });

  test('listen ports: every key any generation reads, newest first, so 1.x cfgs count too', () => {
    expect(listenPortKeys('cl')).toEqual(['MATOCL_LISTEN_PORT', 'MATOCU_LISTEN_PORT']);
    expect(listenPortKeys()).toEqual([
      'MATOML_LISTEN_PORT',
      'MATOCS_LISTEN_PORT',
      'MATOCL_LISTEN_PORT',
      'MATOCU_LISTEN_PORT',
    ]);
  });

  test('which generations restore an image: its writers; any for the bootstrap image; the newest format for an unreadable one', () => {
    expect(generationsReading('MFSM 2.0').map((g) => g.name)).toEqual(['4', '3.0']);
    expect(generationsReading(undefined).map((g) => g.name)).toEqual(['4', '3.0']);
    expect(generationsReading('MFSM NEW').map((g) => g.name)).toEqual(['4', '3.0', '1.6.5', '1.6', '1.5']);
  });

  test('a pinned 3.0 master is asked through mfscli, every other generation through the client protocol', () => {
    expect(pinnedGeneration('auto')).toBeUndefined();
    expect(pinnedGeneration(undefined)).toBeUndefined();
    expect(GENERATION_NAMES.filter((n) => pinnedGeneration(n)!.askPinnedThrough === 'mfscli')).toEqual(['3.0']);
  });

  test('the restore command shown is the one its generation runs: mfsmaster -a, or mfsmetarestore then a plain start', () => {
    const files = { dataPath: '/d', image: 'metadata.mfs.back', changelogs: ['changelog.1.mfs'] };
    expect(restoreCommands(generationNamed('4'), undefined, '/c.cfg', files)).toEqual([
      ['mfsmaster', '-c', '/c.cfg', '-a', 'start'],
    ]);
    expect(
      restoreCommands(
        generationNamed('1.6'),
        { mfsmaster: '/o/sbin/mfsmaster', mfsmetarestore: '/o/sbin/mfsmetarestore' },
        '/c.cfg',
        files,
      ),
    ).toEqual([
      ['/o/sbin/mfsmetarestore', '-m', '/d/metadata.mfs.back', '-o', '/d/metadata.mfs', '/d/changelog.1.mfs'],
      ['/o/sbin/mfsmaster', '-c', '/c.cfg', '-f'],
    ]);
  });
});
