import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../lib/core/config.js';
import { localSource, openSource } from '../../lib/transport/remote.js';
import { LabSshd } from '../lab/sshd.js';
import { fileSourceContract } from './file-source.contract.js';

// Every FileSource runs the same contract: a metalogger's DATA_PATH on this machine, and one over SFTP
// (a real sshd on loopback, started once for the suite).
let root: string;
let sshd: LabSshd | undefined;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-contract-'));
  sshd = await LabSshd.start(path.join(root, 'sshd'));
});
afterAll(async () => {
  await sshd?.stop();
  await fs.rm(root, { recursive: true, force: true });
});

const freshDir = () => fs.mkdtemp(path.join(root, 'src-'));

fileSourceContract('local', { linkDownload: 'refused' }, async () => {
  const dir = await freshDir();
  return {
    dir,
    source: localSource('ml1', () => undefined),
    teardown: () => fs.rm(dir, { recursive: true, force: true }),
  };
});

fileSourceContract('SFTP', { linkDownload: 'followed by the server' }, async () => {
  const dir = await freshDir();
  const config = parseConfig({
    stateDir: path.join(root, 'state'),
    ssh: {
      port: sshd!.port,
      user: 'root',
      privateKey: sshd!.clientKey,
      knownHosts: sshd!.knownHosts,
      connectTimeoutSeconds: 5,
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
