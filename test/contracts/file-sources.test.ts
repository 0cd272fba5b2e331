import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../lib/core/config.js';
import { snapshotSource } from '../../lib/store/snapshot-source.js';
import { localSource, openSource } from '../../lib/transport/remote.js';
import { NOBODY } from '../lab/attacker.js';
import { LabSshd } from '../lab/sshd.js';
import { syntheticSnapshot } from '../helpers/synthetic-snapshot.js';
import { fileSourceContract, type FileSourceSetup } from './file-source.contract.js';

// Every FileSource runs the same contract: a metalogger's DATA_PATH on this machine, one over SFTP (a real
// sshd on loopback, started once for the suite), and a stored snapshot read as a DATA_PATH (promote).
let root: string;
let sshd: LabSshd | undefined;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-contract-'));
  // The DATA_PATHs' owner (nobody) must reach its directories below.
  await fs.chmod(root, 0o711);
  sshd = await LabSshd.start(path.join(root, 'sshd'));
});
afterAll(async () => {
  await sshd?.stop();
  await fs.rm(root, { recursive: true, force: true });
});

/** A DATA_PATH as MooseFS keeps one: the directory and its files belong to the MooseFS user. */
async function dataPath(content: FileSourceSetup): Promise<string> {
  const dir = await fs.mkdtemp(path.join(root, 'src-'));
  for (const [name, bytes] of Object.entries(content.files)) {
    await fs.writeFile(path.join(dir, name), bytes, { mode: 0o600 });
    await fs.chown(path.join(dir, name), NOBODY, NOBODY);
  }
  for (const [name, target] of Object.entries(content.links)) await fs.symlink(target, path.join(dir, name));
  await fs.chown(dir, NOBODY, NOBODY);
  return dir;
}

fileSourceContract('local', { removes: true, ownerRaces: true }, async (content) => {
  const dir = await dataPath(content);
  return {
    dir,
    source: localSource('ml1', () => undefined),
    teardown: () => fs.rm(dir, { recursive: true, force: true }),
  };
});

fileSourceContract('SFTP', { removes: true, ownerRaces: true }, async (content) => {
  const dir = await dataPath(content);
  const config = parseConfig({
    stateDir: path.join(root, 'state'),
    ssh: {
      port: sshd!.port,
      user: 'root',
      privateKey: sshd!.clientKey,
      knownHosts: sshd!.knownHosts,
      connectTimeoutSeconds: 5,
      readIdleSeconds: 5,
    },
    masters: [{ name: 'm1', host: sshd!.host, dataPath: dir }],
  });
  const source = await openSource(config, config.masters[0]!, undefined, () => undefined);
  return {
    dir,
    source,
    teardown: async () => {
      await source.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});

// A snapshot of root's own store: its files are named by the manifest, stored as they are (no zstd, no key);
// a link stands where the manifest names a file.
fileSourceContract('snapshot', { removes: false, ownerRaces: false }, async (content) => {
  const store = await fs.mkdtemp(path.join(root, 'store-'));
  const entry = (name: string, body: Buffer) => ({
    name,
    role: 'changelog' as const,
    size: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    sourcePath: `/src/${name}`,
    sourceSize: body.length,
    sourceMtimeMs: 0,
  });
  const files = Object.entries(content.files);
  const links = Object.entries(content.links);
  const snapshot = await syntheticSnapshot(store, {
    edit: (m) => m.files.push(...files.map(([n, b]) => entry(n, b)), ...links.map(([n]) => entry(n, Buffer.alloc(64)))),
  });
  for (const [name, bytes] of files) await fs.writeFile(path.join(snapshot.dir, name), bytes, { flag: 'wx' });
  for (const [name, target] of links) await fs.symlink(target, path.join(snapshot.dir, name));
  return {
    dir: snapshot.dir,
    source: snapshotSource('store', snapshot),
    teardown: () => fs.rm(store, { recursive: true, force: true }),
  };
});
