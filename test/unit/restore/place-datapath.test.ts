import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { placeFromDataPath } from '../../../lib/restore/restorepoint.js';
import { localSource, type FileSource } from '../../../lib/transport/remote.js';
import { imageBytes } from '../../helpers/synthetic-snapshot.js';

/** Changelog text for versions from..to, one second apart. */
function text(from: number, to: number): string {
  let out = '';
  for (let v = from; v <= to; v++) out += `${v}: ${1_000 + v}|CREATE(1,f${v},1,438,18,0,0,0):${v}\n`;
  return out;
}

/**
 * placeFromDataPath copies the image beside the changelogs, which it chooses from the image header it read
 * before the copy (issue 28, drill at 1M). A metalogger that replaces its image between that read and the copy
 * (it downloads a new one every hour) must still get the changelogs the copied image needs: the real local
 * source, with the replacement made at the moment the image's copy starts.
 */
describe('placing from a DATA_PATH whose image is replaced while it is copied', () => {
  let dir: string;
  let ml: string;
  let into: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-place-'));
    ml = path.join(dir, 'ml');
    into = path.join(dir, 'scratch');
    await fs.mkdir(ml);
    await fs.mkdir(into);
    await fs.writeFile(path.join(ml, 'metadata_ml.mfs.back'), imageBytes(10, 0xabn));
    await fs.writeFile(path.join(ml, 'changelog_ml.2.mfs'), text(1, 8));
    await fs.writeFile(path.join(ml, 'changelog_ml.1.mfs'), text(9, 19));
    await fs.writeFile(path.join(ml, 'changelog_ml.0.mfs'), text(20, 25));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** The local source, with `replace` run just before the image's copy begins. */
  function racing(replace: () => Promise<void>): FileSource {
    const real = localSource('ml');
    return new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== 'download') return Reflect.get(target, prop, receiver) as unknown;
        return async (...args: Parameters<FileSource['download']>) => {
          if (args[0].endsWith('metadata_ml.mfs.back')) await replace();
          return target.download(...args);
        };
      },
    });
  }

  test('unchanged: the image at 10 takes .0 and .1 (.1 starts at 9), not .2', async () => {
    const placed = await placeFromDataPath(localSource('ml'), ml, into);
    expect(placed.header?.version).toBe(10);
    expect(placed.changelogs).toEqual(['changelog_ml.0.mfs', 'changelog_ml.1.mfs']);
    expect(placed.chain?.newest).toBe(26);
    expect((await fs.readdir(into)).sort()).toEqual([
      'changelog_ml.0.mfs',
      'changelog_ml.1.mfs',
      'metadata_ml.mfs.back',
    ]);
  });

  test('replaced by an older image (3): .2 is copied too, and the chain rolls from 3', async () => {
    const older = async () => fs.writeFile(path.join(ml, 'metadata_ml.mfs.back'), imageBytes(3, 0xabn));
    const placed = await placeFromDataPath(racing(older), ml, into);
    expect(placed.header?.version).toBe(3);
    expect(placed.changelogs).toEqual(['changelog_ml.0.mfs', 'changelog_ml.1.mfs', 'changelog_ml.2.mfs']);
    expect(placed.chain?.holes).toEqual([]);
    expect(placed.chain?.newest).toBe(26);
  });

  test('replaced by a newer image (21): only .0, and the changelog it no longer needs is not left in the scratch', async () => {
    const newer = async () => fs.writeFile(path.join(ml, 'metadata_ml.mfs.back'), imageBytes(21, 0xabn));
    const placed = await placeFromDataPath(racing(newer), ml, into);
    expect(placed.header?.version).toBe(21);
    expect(placed.changelogs).toEqual(['changelog_ml.0.mfs']);
    expect(placed.chain?.newest).toBe(26);
    expect((await fs.readdir(into)).sort()).toEqual(['changelog_ml.0.mfs', 'metadata_ml.mfs.back']);
  });
});
