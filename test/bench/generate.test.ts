import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureChain, ensureImage } from '../../bench/generate.js';
import { readImageHeader } from '../../lib/moosefs/metadata.js';
import { generalInfo, infoNumber } from '../../lib/moosefs/mfscli.js';
import { LabMaster } from '../lab/moosefs.js';

describe('bench metadata generator, checked by a real mfsmaster', () => {
  let workDir: string;
  const started: LabMaster[] = [];

  beforeAll(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-bench-gen-'));
  });
  afterAll(async () => {
    for (const m of started) await m.stop().catch(() => undefined);
    await fs.rm(workDir, { recursive: true, force: true });
  });

  async function serve(
    dir: string,
    files: Record<string, string>,
    autoRestore: boolean,
  ): Promise<{ version: number; files?: number; directories?: number }> {
    const master = await LabMaster.create(dir, { bootstrap: false });
    for (const [name, from] of Object.entries(files)) await fs.copyFile(from, path.join(master.dataPath, name));
    started.push(master);
    const info = await master.start({ autoRestore });
    const general = await generalInfo({ host: master.cliHost, port: master.ports.cl });
    await master.stop();
    return {
      version: info.metadataVersion,
      files: infoNumber(general, 'files'),
      directories: infoNumber(general, 'directories'),
    };
  }

  test('a 1000-file image: a plain mfsmaster start serves 1000 files at the image version', async () => {
    const image = await ensureImage(1000, workDir);
    expect(image).toMatchObject({ files: 1000, directories: 2 });
    const header = await readImageHeader(image.image);
    expect(header).toMatchObject({ magic: 'MFSM 2.0', version: image.version });
    // SETMETAID + top0 + dir0 + 1000 files = versions 1..1003: the image's next version is 1004.
    expect(image.version).toBe(1004);
    const served = await serve(path.join(workDir, 'serve-image'), { 'metadata.mfs': image.image }, false);
    expect(served).toEqual({ version: 1004, files: 1000, directories: 3 }); // the root counts as a directory
  });

  test('a changelog set rolls that image forward: mfsmaster -a reaches its last version, same files', async () => {
    const chain = await ensureChain(1000, 2, 1, workDir);
    expect(chain.changelogs.map((c) => c.name)).toEqual(['changelog_ml.1.mfs', 'changelog_ml.0.mfs']);
    expect(chain.first).toBe(1004);
    expect(chain.changelogs[1]!.first).toBe(chain.changelogs[0]!.last + 1);
    expect(chain.changelogBytes).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    const files = Object.fromEntries((await fs.readdir(chain.dataPath)).map((n) => [n, path.join(chain.dataPath, n)]));
    const served = await serve(path.join(workDir, 'serve-chain'), files, true);
    expect(served).toEqual({ version: chain.last + 1, files: 1000, directories: 3 });
    expect((await readImageHeader(chain.finalImage)).version).toBe(chain.last + 1);
  });

  test('a second call reuses the cache instead of rebuilding', async () => {
    const first = await ensureImage(1000, workDir);
    const before = (await fs.stat(first.image)).mtimeMs;
    const again = await ensureImage(1000, workDir);
    expect(again).toEqual(first);
    expect((await fs.stat(again.image)).mtimeMs).toBe(before);
  });
});
