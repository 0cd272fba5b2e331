import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MirrorStore, mirrorPass } from '../../../lib/failover/mirror.js';
import { localSource } from '../../../lib/transport/remote.js';
import { generatedLines } from '../../helpers/generated.js';
import { imageBytes } from '../../helpers/synthetic-snapshot.js';

/**
 * The mirror's rules on real files (a local source reads the same way an SFTP one does): what it
 * copies, and above all when it refuses to stand in for the source.
 */
describe('warm standby mirror', () => {
  let dir: string;
  let src: string;
  let store: MirrorStore;
  const files = localSource('ml1');
  const METAID = 0x6b0eebe7097eb439n;
  const stageDir = () => path.join(dir, 'staging');

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-mirror-'));
    src = path.join(dir, 'ml');
    await fs.mkdir(src);
    await fs.mkdir(stageDir());
    store = new MirrorStore(path.join(dir, 'mirror'));
    await fs.writeFile(path.join(src, 'metadata_ml.mfs.back'), imageBytes(100, METAID));
    await fs.writeFile(path.join(src, 'changelog_ml.0.mfs'), generatedLines(90, 120));
  });
  afterEach(async () => fs.rm(dir, { recursive: true, force: true }));

  const changelog = (first: number, size: number, name = 'changelog_ml.0.mfs') => ({
    source: 'ml1',
    name,
    path: path.join(src, name),
    size,
    segments: [{ first }],
  });

  /** Mirror the source, let its changelog grow by five lines, stage it: the staged bytes are the source's. */
  const stageGrown = async (into: MirrorStore) => {
    await mirrorPass(into, 'ml1', files, src);
    await fs.appendFile(path.join(src, 'changelog_ml.0.mfs'), generatedLines(121, 125));
    const full = await fs.readFile(path.join(src, 'changelog_ml.0.mfs'));
    const tmp = path.join(stageDir(), 'cl');
    const use = await into.stage(changelog(90, full.length), files, tmp);
    expect((await fs.readFile(tmp)).equals(full)).toBe(true);
    return { use, tmp, full };
  };

  test('a pass keeps the newest image and the changelogs past it, named by what they hold', async () => {
    await fs.writeFile(path.join(src, 'changelog_ml.1.mfs'), generatedLines(50, 89));
    await fs.writeFile(path.join(src, 'changelog_ml.2.mfs'), generatedLines(10, 49));
    const pass = await mirrorPass(store, 'ml1', files, src);
    expect(pass).toMatchObject({ imageVersion: 100, newestVersion: 120, files: 2 });
    // changelog_ml.2 ends before the image: not needed, not kept.
    expect((await fs.readdir(store.sourceDir('ml1'))).sort()).toEqual([
      'changelog-90.mfs',
      'image-100-6B0EEBE7097EB439.mfs',
    ]);
    const again = await mirrorPass(store, 'ml1', files, src);
    expect(again.fetched).toBe(0);
  });

  test('the source rotates (changelog_ml.0 → .1): nothing is read again; a new .0 is', async () => {
    await mirrorPass(store, 'ml1', files, src);
    await fs.rename(path.join(src, 'changelog_ml.0.mfs'), path.join(src, 'changelog_ml.1.mfs'));
    await fs.writeFile(path.join(src, 'changelog_ml.0.mfs'), generatedLines(121, 130));
    const pass = await mirrorPass(store, 'ml1', files, src);
    expect(pass.fetched).toBe(generatedLines(121, 130).length);
    expect((await fs.readdir(store.sourceDir('ml1'))).sort()).toEqual([
      'changelog-121.mfs',
      'changelog-90.mfs',
      'image-100-6B0EEBE7097EB439.mfs',
    ]);
  });

  test('stage: the image by a hard link, a changelog as the mirrored bytes plus only the new ones', async () => {
    const { use } = await stageGrown(store);
    expect(use).toEqual({ reused: generatedLines(90, 120).length, fetched: generatedLines(121, 125).length });
    const image = {
      source: 'ml1',
      name: 'metadata_ml.mfs.back',
      path: path.join(src, 'metadata_ml.mfs.back'),
      size: imageBytes(100, METAID).length,
      version: 100,
      metaid: '6B0EEBE7097EB439',
    };
    const img = path.join(stageDir(), 'img');
    expect(await store.stage(image, files, img)).toEqual({ reused: image.size, fetched: 0 });
    expect((await fs.stat(img)).ino).toBe((await fs.stat(store.imagePath('ml1', 100, '6B0EEBE7097EB439'))).ino);
    // Something writes into the linked image (a master that did not rename): the mirror no longer vouches for it.
    await fs.appendFile(img, '');
    const h = await fs.open(img, 'r+');
    await h.write(Buffer.from('x'), 0, 1, 30);
    await h.close();
    expect(await store.stage(image, files, path.join(stageDir(), 'img2'))).toBeUndefined();
    const pass = await mirrorPass(store, 'ml1', files, src);
    expect(pass.fetched).toBe(image.size + generatedLines(121, 125).length);
    expect((await fs.readFile(store.imagePath('ml1', 100, '6B0EEBE7097EB439'))).equals(imageBytes(100, METAID))).toBe(
      true,
    );
  });

  test("the daemon's own store: a changelog brought up to date in the mirror and linked, its scan kept as it grew; a linked file is never written into again", async () => {
    const owner = new MirrorStore(path.join(dir, 'mirror'), true);
    const { use, tmp, full } = await stageGrown(owner);
    expect(use).toMatchObject({ reused: generatedLines(90, 120).length, fetched: generatedLines(121, 125).length });
    expect((await fs.stat(tmp)).ino).toBe((await fs.stat(owner.changelogPath('ml1', 90))).ino);
    // The kept scan is the scan of the staged bytes.
    const { scanChangelogFile } = await import('../../../lib/moosefs/changelog.js');
    expect(use!.scan).toEqual({ ...(await scanChangelogFile(tmp)), file: tmp });
    expect(use!.scan).toMatchObject({
      first: 90,
      last: 125,
      segments: [{ first: 90, last: 125 }],
      problems: [],
      truncatedLastLine: false,
    });
    // The source grows on; the mirror's next pass copies before it appends: the staged (placed) file stays as it was.
    await fs.appendFile(path.join(src, 'changelog_ml.0.mfs'), generatedLines(126, 130));
    await mirrorPass(owner, 'ml1', files, src);
    expect((await fs.readFile(tmp)).equals(full)).toBe(true);
    expect(await fs.readFile(owner.changelogPath('ml1', 90), 'latin1')).toBe(generatedLines(90, 130));
    expect((await fs.stat(owner.changelogPath('ml1', 90))).nlink).toBe(1);
  });

  test('stage refuses what is not provably the same bytes: another image version or size, a changelog the source rewrote', async () => {
    await mirrorPass(store, 'ml1', files, src);
    const image = {
      source: 'ml1',
      name: 'metadata_ml.mfs.back',
      path: path.join(src, 'metadata_ml.mfs.back'),
      size: imageBytes(100, METAID).length,
      version: 101,
      metaid: '6B0EEBE7097EB439',
    };
    expect(await store.stage(image, files, path.join(stageDir(), 'a'))).toBeUndefined();
    expect(
      await store.stage({ ...image, version: 100, size: image.size + 1 }, files, path.join(stageDir(), 'b')),
    ).toBeUndefined();
    // Same first version, other content (a different history written under the same name): refused, nothing left behind.
    const rewritten = generatedLines(90, 120).replace('CREATE(1,f100,', 'CREATE(1,g100,');
    await fs.writeFile(path.join(src, 'changelog_ml.0.mfs'), rewritten.replace(/f120/, 'h120'));
    expect(await store.stage(changelog(90, rewritten.length), files, path.join(stageDir(), 'c'))).toBeUndefined();
    expect(await fs.readdir(stageDir())).toEqual([]);
    // A source shorter than the mirror (truncated, replaced): refused too.
    await fs.writeFile(path.join(src, 'changelog_ml.0.mfs'), generatedLines(90, 95));
    expect(
      await store.stage(changelog(90, generatedLines(90, 95).length), files, path.join(stageDir(), 'd')),
    ).toBeUndefined();
  });

  test('a pass starts over a mirrored changelog whose source bytes changed; a planted link is never written through', async () => {
    await mirrorPass(store, 'ml1', files, src);
    await fs.writeFile(path.join(src, 'changelog_ml.0.mfs'), generatedLines(90, 120).replace('f120', 'x120'));
    await mirrorPass(store, 'ml1', files, src);
    expect(await fs.readFile(store.changelogPath('ml1', 90), 'latin1')).toBe(
      generatedLines(90, 120).replace('f120', 'x120'),
    );
    // Someone replaces the mirror's source directory with a link: the pass refuses to use it.
    const victim = path.join(dir, 'victim');
    await fs.mkdir(victim);
    await fs.rm(store.sourceDir('ml1'), { recursive: true });
    await fs.symlink(victim, store.sourceDir('ml1'));
    await expect(mirrorPass(store, 'ml1', files, src)).rejects.toThrow(/is not a directory of ours: not using it/);
    expect(await fs.readdir(victim)).toEqual([]);
  });
});
