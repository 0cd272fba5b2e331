import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseConfig } from '../../lib/core/config.js';
import { openCopy } from '../../lib/store/copy/open.js';
import { LabS3 } from '../lab/s3.js';
import { LabSshd } from '../lab/sshd.js';
import { copyBackendContract } from './copy-backend.contract.js';

// Every copy backend runs the same contract: an SFTP copy on a real OpenSSH sshd on loopback, and an S3 copy
// on a real Ceph RGW (one bucket, a prefix per test). Both servers are started once for the suite.
let root: string;
let sshd: LabSshd | undefined;
let s3: LabS3 | undefined;
let client: S3Client;
let credentials: string;
let n = 0;
const bucket = 'mfs-contract';
// Short: the failed-put case waits for one request's timeout on S3.
const timeoutSeconds = 3;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-copy-contract-'));
  [sshd, s3] = await Promise.all([LabSshd.start(path.join(root, 'sshd')), LabS3.start(path.join(root, 's3'))]);
  credentials = await s3.writeCredentials(path.join(root, 's3.credentials'));
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: LabS3.ACCESS_KEY, secretAccessKey: LabS3.SECRET_KEY },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
}, 120_000);
afterAll(async () => {
  client?.destroy();
  await Promise.all([sshd?.stop(), s3?.stop()]);
  await fs.rm(root, { recursive: true, force: true });
}, 60_000);

const openFrom = async (copy: Record<string, unknown>) => {
  const config = parseConfig({ stateDir: path.join(root, 'state'), snapshotStore: { path: root, copies: [copy] } });
  return openCopy(config, config.snapshotStore!.copies[0]!);
};

copyBackendContract('SFTP', async () => {
  const dir = await fs.mkdtemp(path.join(root, 'sftp-'));
  const repo = await openFrom({
    name: 'contract-sftp',
    type: 'sftp',
    host: sshd!.host,
    port: sshd!.port,
    user: 'root',
    identityFile: sshd!.clientKey,
    knownHosts: sshd!.knownHosts,
    path: dir,
    timeoutSeconds,
  });
  return {
    repo,
    plant: async (relative, bytes) => {
      const at = path.join(dir, 'snapshots', relative);
      await fs.mkdir(path.dirname(at), { recursive: true });
      await fs.writeFile(at, bytes);
    },
    teardown: async () => {
      await repo.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});

copyBackendContract('S3', async () => {
  const prefix = `t${++n}/`;
  const repo = await openFrom({
    name: 'contract-s3',
    type: 's3',
    endpoint: s3!.endpoint,
    bucket,
    prefix,
    forcePathStyle: true,
    credentialsFile: credentials,
    partSizeMiB: 5,
    timeoutSeconds,
  });
  return {
    repo,
    plant: async (relative, bytes) => {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}snapshots/${relative}`, Body: bytes }));
    },
    teardown: () => repo.close(),
  };
});
