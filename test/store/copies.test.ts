import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketPolicyCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../../lib/core/config.js';
import { execCapture } from '../../lib/core/exec.js';
import { listSnapshots, onDisk } from '../../lib/store/manifest.js';
import { openCopy } from '../../lib/store/copy/open.js';
import { PART_SUFFIX } from '../../lib/store/copy/repository.js';
import { fetchFromCopy } from '../../lib/store/copy/fetch.js';
import { sha256File } from '../../lib/store/snapshot-store.js';
import { runCli, startCli } from '../helpers/cli.js';
import { FaultProxy } from '../lab/proxy.js';
import YAML from 'yaml';
import { masterInfo } from '../../lib/moosefs/mfscli.js';
import { runningMasterPid } from '../../lib/moosefs/mfsmaster.js';
import { LabMaster } from '../lab/moosefs.js';
import { sleep } from '../lab/proc.js';
import { Lab } from '../lab/cluster.js';
import { freePort } from '../lab/proc.js';
import { processesIn } from '../lab/proc.js';
import { LabS3 } from '../lab/s3.js';
import { LabSshd } from '../lab/sshd.js';
import { withoutStore as losingStore } from '../helpers/store-loss.js';

interface CopyReport {
  copy: string;
  status: string;
  ok: boolean;
  error?: string;
  sentFiles: number;
  skippedFiles: number;
  pushed: string[];
  removed: string[];
  complete: string[];
}

/**
 * Off-site copies against the real things: a lab master + metalogger, a second OpenSSH sshd on
 * loopback as the SFTP copy, and a Ceph RADOS Gateway as the S3 copy. One scenario, in order.
 */
describe('off-site copies: backup pushes to a real sshd and a real Ceph RGW; verify, list and drill use them', () => {
  let lab: Lab;
  let copySshd: LabSshd;
  let s3: LabS3;
  let client: S3Client;
  let store: string;
  let remoteDir: string;
  let scratchRoot: string;
  let credentials: string;
  const bucket = 'mfs-offsite';
  let config: string;
  let ids: string[] = [];

  const copies = (over: { s3Endpoint?: string } = {}) => [
    {
      name: 'offsite-sftp',
      type: 'sftp',
      host: '127.0.0.1',
      port: copySshd.port,
      user: 'root',
      identityFile: copySshd.clientKey,
      knownHosts: copySshd.knownHosts,
      path: remoteDir,
      timeoutSeconds: 5,
      retention: { keepLast: 2, keepHourly: 0, keepDaily: 0, keepWeekly: 0 },
    },
    {
      name: 'offsite-s3',
      type: 's3',
      endpoint: over.s3Endpoint ?? s3.endpoint,
      bucket,
      prefix: 'mfs/',
      forcePathStyle: true,
      credentialsFile: credentials,
      timeoutSeconds: 5,
      retention: { keepLast: 2, keepHourly: 0, keepDaily: 0, keepWeekly: 0 },
    },
  ];
  const writeConfig = (name: string, over: { s3Endpoint?: string } = {}) =>
    lab.writeConfig(
      {
        snapshotStore: { path: store, copies: copies(over) },
        jobs: { backup: { snapshotOnNewChangelogs: true }, drill: { scratchDir: scratchRoot } },
      },
      name,
    );
  const backup = async (cfg = config) => {
    const res = await runCli(['run', 'backup', '--config', cfg, '--json']);
    const report = JSON.parse(res.stdout) as {
      status: string;
      summary: string;
      lines: string[];
      details: { copies: CopyReport[] };
    };
    const byName = Object.fromEntries(report.details.copies.map((c) => [c.copy, c]));
    return { res, report, sftp: byName['offsite-sftp']!, s3: byName['offsite-s3']! };
  };
  const localIds = async () => (await listSnapshots(store, {})).snapshots.map((s) => s.id);
  const sftpIds = async () => (await fs.readdir(path.join(remoteDir, 'snapshots')).catch(() => [] as string[])).sort();
  const listCopy = async (name: string) =>
    JSON.parse((await runCli(['snapshot', 'list', '--config', config, '--copy', name, '--json'])).stdout) as {
      snapshots: { id: string; bytes: number }[];
      incomplete: string[];
    };
  const s3Key = (id: string, file: string) => `mfs/snapshots/${id}/${file}`;

  /** `fn` with a 4 KiB tmpfs mounted on `dir` (a full disk), unmounted afterwards. */
  async function onTinyTmpfs(dir: string, fn: () => Promise<void>): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
    const mounted = await execCapture('mount', ['-t', 'tmpfs', '-o', 'size=4k,mode=0700', 'tmpfs', dir], {
      timeoutMs: 10_000,
    });
    expect(mounted.stderr).toBe('');
    try {
      await fn();
    } finally {
      await execCapture('umount', [dir], { timeoutMs: 10_000 });
    }
  }

  /** `fn` with the local store's disk lost (moved aside), put back afterwards. */
  const withoutStore = (fn: () => Promise<void>) => losingStore(store, fn);

  beforeAll(async () => {
    // The SDK's notice about its own future Node requirement, as the CLI silences it (lib/store/copy/s3.ts).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    lab = await Lab.start();
    [copySshd, s3] = await Promise.all([
      LabSshd.start(path.join(lab.dir, 'copy-ssh'), { sftpLog: true }),
      LabS3.start(path.join(lab.dir, 's3')),
    ]);
    store = path.join(lab.dir, 'snapshots');
    remoteDir = path.join(lab.dir, 'offsite');
    scratchRoot = path.join(lab.dir, 'scratch');
    credentials = await s3.writeCredentials(path.join(lab.dir, 's3-credentials.json'));
    client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: LabS3.ACCESS_KEY, secretAccessKey: LabS3.SECRET_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await lab.makeChanges('before-image', 10);
    await lab.saveImage();
    await lab.makeChanges('after-image', 5);
    config = await writeConfig('config.yaml');
  }, 120_000);
  afterAll(async () => {
    for (const pid of await processesIn(scratchRoot).catch(() => [] as number[])) process.kill(pid, 'SIGKILL');
    client?.destroy();
    await s3?.stop();
    await copySshd?.stop();
    await lab?.stop();
  }, 60_000);

  test('backup pushes the verified snapshot to both copies; each copy lists what the store has, byte for byte', async () => {
    const { res, report, sftp, s3: s3run } = await backup();
    expect(report.status).toBe('OK');
    expect(res.code).toBe(0);
    ids = await localIds();
    expect(ids).toHaveLength(1);
    const local = (await listSnapshots(store, {})).snapshots[0]!;
    for (const c of [sftp, s3run])
      expect(c).toMatchObject({
        status: 'OK',
        pushed: ids,
        complete: ids,
        sentFiles: local.manifest.files.length + 1,
        skippedFiles: 0,
      });
    expect(await sftpIds()).toEqual(ids);
    // The copies hold the stored bytes (zstd here, the store's default), as the store has them.
    expect(local.manifest.files.every((f) => f.stored?.compression === 'zstd')).toBe(true);
    for (const f of [...local.manifest.files.map((f) => onDisk(f).name), 'manifest.json']) {
      const want = await fs.readFile(path.join(local.dir, f));
      expect(
        createHash('sha256')
          .update(await fs.readFile(path.join(remoteDir, 'snapshots', ids[0]!, f)))
          .digest('hex'),
      ).toBe(createHash('sha256').update(want).digest('hex'));
      const obj = await client.send(new GetObjectCommand({ Bucket: bucket, Key: s3Key(ids[0]!, f) }));
      expect(Buffer.from(await obj.Body!.transformToByteArray()).equals(want)).toBe(true);
    }
    // Each file reached its name on the SFTP copy only after the server fsynced it (fsync@openssh.com).
    const sftpLog = await copySshd.sftpLog();
    for (const f of [...local.manifest.files.map((f) => onDisk(f).name), 'manifest.json']) {
      const final = path.join(remoteDir, 'snapshots', ids[0]!, f);
      const synced = sftpLog.indexOf(`fsync "${final}${PART_SUFFIX}"`);
      const renamed = sftpLog.indexOf(`rename old "${final}${PART_SUFFIX}" new "${final}"`);
      expect({ f, synced: synced >= 0, renamed: renamed >= 0 }).toEqual({ f, synced: true, renamed: true });
      expect(synced).toBeLessThan(renamed);
    }
    for (const name of ['offsite-sftp', 'offsite-s3']) {
      const listed = await listCopy(name);
      expect(listed.snapshots.map((s) => s.id)).toEqual(ids);
      expect(listed.incomplete).toEqual([]);
    }
    const table = await runCli(['snapshot', 'list', '--config', config, '--copy', 'offsite-s3']);
    expect(table.stdout).toContain(ids[0]!);
    expect(table.stdout).toContain('copy offsite-s3 (s3 http://127.0.0.1:');
    expect(table.stdout).not.toContain(LabS3.SECRET_KEY);
  });

  test('a second backup sends nothing already there', async () => {
    const { report, sftp, s3: s3run } = await backup();
    expect(report.status).toBe('OK');
    for (const c of [sftp, s3run]) expect(c).toMatchObject({ status: 'OK', sentFiles: 0, pushed: [], complete: ids });
  });

  test('unreachable copies (sshd stopped, S3 port closed): WARNING naming both, the local snapshot is complete', async () => {
    await copySshd.stop();
    const closed = await writeConfig('config-down.yaml', { s3Endpoint: `http://127.0.0.1:${await freePort()}` });
    await lab.makeChanges('while-down', 3);
    const { res, report, sftp, s3: s3run } = await backup(closed);
    expect(res.code).toBe(1);
    expect(report.status).toBe('WARNING');
    expect(report.summary).toMatch(/copy offsite-sftp failed: .*connection refused/);
    expect(report.summary).toMatch(/copy offsite-s3 failed: .*connection refused/);
    expect(res.stdout).not.toContain(LabS3.SECRET_KEY);
    expect(sftp).toMatchObject({ status: 'WARNING', ok: false, sentFiles: 0 });
    expect(s3run).toMatchObject({ status: 'WARNING', ok: false, sentFiles: 0 });
    const now = await localIds();
    expect(now).toHaveLength(2);
    expect((await listSnapshots(store, {})).broken).toEqual([]);
    ids = now;
    copySshd = await LabSshd.start(copySshd.dir, { port: copySshd.port, sftpLog: true });
  }, 60_000);

  test('--dry-run lists each copy and says what it would send and remove, sending nothing', async () => {
    const res = await runCli(['run', 'backup', '--config', config, '--dry-run']);
    expect(res.code).toBe(0);
    for (const name of ['offsite-sftp', 'offsite-s3'])
      expect(res.stdout).toContain(
        `copy ${name}: would push ${ids[1]}; would remove nothing; 1 complete snapshot there`,
      );
    expect(await sftpIds()).toEqual([ids[0]]);
  });

  test('a copy that refuses the manifest write keeps the data files but no manifest; the next run sends only the manifest', async () => {
    const id = ids[1]!;
    // The SFTP copy: a directory where the manifest must go (the rename onto it fails); S3: a bucket policy denying that one key.
    await fs.mkdir(path.join(remoteDir, 'snapshots', id, 'manifest.json'), { recursive: true });
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Deny',
          Principal: '*',
          Action: 's3:PutObject',
          Resource: `arn:aws:s3:::${bucket}/${s3Key(id, 'manifest.json')}`,
        },
      ],
    };
    await client.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
    const local = (await listSnapshots(store, {})).snapshots.find((s) => s.id === id)!;
    const dataFiles = local.manifest.files.length;

    const first = await backup();
    expect(first.report.status).toBe('WARNING');
    expect(first.report.summary).toMatch(/copy offsite-sftp failed: .*manifest\.json/);
    expect(first.report.summary).toMatch(/copy offsite-s3 failed: .*manifest\.json.*AccessDenied/);
    for (const c of [first.sftp, first.s3])
      expect(c).toMatchObject({ ok: false, sentFiles: dataFiles, pushed: [], complete: [ids[0]] });
    for (const name of ['offsite-sftp', 'offsite-s3']) {
      const listed = await listCopy(name);
      expect(listed.snapshots.map((s) => s.id)).toEqual([ids[0]]);
      expect(listed.incomplete).toEqual([id]);
    }
    await expect(
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: s3Key(id, 'manifest.json') })),
    ).rejects.toThrow();

    await fs.rmdir(path.join(remoteDir, 'snapshots', id, 'manifest.json'));
    await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    const second = await backup();
    expect(second.report.status).toBe('OK');
    for (const c of [second.sftp, second.s3])
      expect(c).toMatchObject({ ok: true, sentFiles: 1, skippedFiles: dataFiles, pushed: [id], complete: ids });
  }, 60_000);

  test('each copy keeps what its own retention says: the oldest snapshot goes from the copies, the store keeps it', async () => {
    await lab.makeChanges('third', 3);
    const { report, sftp, s3: s3run } = await backup();
    expect(report.status).toBe('OK');
    const all = await localIds();
    expect(all).toHaveLength(3);
    for (const c of [sftp, s3run])
      expect(c).toMatchObject({ ok: true, pushed: [all[2]], removed: [all[0]], complete: all.slice(1) });
    expect(await sftpIds()).toEqual(all.slice(1));
    expect((await listCopy('offsite-s3')).snapshots.map((s) => s.id)).toEqual(all.slice(1));
    await expect(
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: s3Key(all[0]!, 'manifest.json') })),
    ).rejects.toThrow();
    ids = all;
  });

  test('drill from a copy with the local store gone: downloaded, checked, restored into a real scratch master', async () => {
    await withoutStore(async () => {
      const res = await runCli(['run', 'drill', '--config', config, '--from', 'copy:offsite-s3', '--json']);
      const report = JSON.parse(res.stdout) as { status: string; summary: string };
      expect(report.summary).toMatch(
        new RegExp(`^snapshot ${ids[2]} of copy offsite-s3 restored to metadata version \\d+ and served`),
      );
      expect(report.status).toBe('OK');
      expect(await fs.readdir(path.join(lab.dir, 'state', 'copy-fetch'))).toEqual([]);
    });
  }, 90_000);

  test('verify checks each copy; a corrupted file on each is found and named, and a drill refuses it', async () => {
    const ok = await runCli(['run', 'verify', '--config', config, '--json']);
    const before = JSON.parse(ok.stdout) as {
      details: {
        copies: Record<
          string,
          {
            status: string;
            complete: string[];
            newest: string;
            checksummed: string;
            problems: string[];
            newestAgeSeconds: number;
          }
        >;
      };
    };
    for (const name of ['offsite-sftp', 'offsite-s3']) {
      expect(before.details.copies[name]).toMatchObject({
        status: 'OK',
        complete: ids.slice(1),
        newest: ids[2],
        checksummed: ids[2],
        problems: [],
      });
      expect(before.details.copies[name]!.newestAgeSeconds).toBeLessThan(600);
    }
    const newest = ids[2]!;
    const image = onDisk((await listSnapshots(store, {})).snapshots.find((s) => s.id === newest)!.manifest.files[0]!);
    // SFTP: one byte flipped in place (same size). S3: the object replaced by another of the same length that keeps the sha256 metadata.
    const remoteFile = path.join(remoteDir, 'snapshots', newest, image.name);
    const bytes = await fs.readFile(remoteFile);
    bytes[bytes.length >> 1]! ^= 0xff;
    await fs.writeFile(remoteFile, bytes);
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: s3Key(newest, image.name),
        Body: bytes,
        Metadata: { sha256: image.sha256 },
      }),
    );

    const bad = await runCli(['run', 'verify', '--config', config, '--json']);
    const after = JSON.parse(bad.stdout) as {
      status: string;
      lines: string[];
      details: { copies: Record<string, { status: string; problems: string[] }> };
    };
    for (const name of ['offsite-sftp', 'offsite-s3']) {
      expect(after.details.copies[name]!.status).toBe('WARNING');
      expect(after.details.copies[name]!.problems).toEqual([
        expect.stringMatching(
          new RegExp(`^snapshot ${newest}: ${image.name.replace(/\./g, '\\.')}: sha256 .* does not match the manifest`),
        ),
      ]);
      expect(after.lines.join('\n')).toContain(`copy:${name}: WARNING`);
    }
    // Without re-reading (jobs.verify.copyChecksums: false) the same-size damage is out of sight: the cost of that choice.
    const quick = await lab.writeConfig(
      { snapshotStore: { path: store, copies: copies() }, jobs: { verify: { copyChecksums: false } } },
      'config-quick.yaml',
    );
    const cheap = JSON.parse((await runCli(['run', 'verify', '--config', quick, '--json'])).stdout) as {
      details: { copies: Record<string, { status: string; checksummed?: string; newest: string }> };
    };
    for (const name of ['offsite-sftp', 'offsite-s3'])
      expect(cheap.details.copies[name]).toMatchObject({ status: 'OK', newest: newest });
    expect(cheap.details.copies['offsite-s3']!.checksummed).toBeUndefined();
    const drill = await runCli(['run', 'drill', '--config', config, '--from', 'copy:offsite-sftp']);
    expect(drill.code).toBe(2);
    expect(drill.stdout).toMatch(
      new RegExp(
        `copy offsite-sftp: snapshot ${newest}: ${image.name.replace(/\./g, '\\.')} does not match its manifest`,
      ),
    );
  }, 90_000);

  test('backup killed while it uploads to a slow SFTP copy leaves no manifest there; the next run finishes it without resending', async () => {
    // The copy behind a link that adds 150 ms to every packet: slow enough to kill the run between two files.
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: copySshd.port }, { delayMs: 150 });
    const hostPub = (await fs.readFile(`${copySshd.hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    const proxyKnownHosts = path.join(lab.dir, 'known_hosts-proxy');
    await fs.writeFile(proxyKnownHosts, `[127.0.0.1]:${proxy.port} ${hostPub}\n`, { mode: 0o600 });
    const slow = await lab.writeConfig(
      {
        snapshotStore: {
          path: store,
          copies: [{ ...copies()[0], port: proxy.port, knownHosts: proxyKnownHosts, timeoutSeconds: 20 }],
        },
        jobs: { backup: { snapshotOnNewChangelogs: true } },
      },
      'config-slow.yaml',
    );
    try {
      await lab.makeChanges('killed', 3);
      const run = startCli(['run', 'backup', '--config', slow, '--json']);
      let id: string | undefined;
      const deadline = Date.now() + 60_000;
      // The moment the first data file of the new snapshot has its final name on the copy: kill -9.
      while (!id && Date.now() < deadline) {
        const newest = (await listSnapshots(store, {})).snapshots.at(-1);
        const first = newest && !ids.includes(newest.id) ? onDisk(newest.manifest.files[0]!).name : undefined;
        if (
          newest &&
          first &&
          (await fs.stat(path.join(remoteDir, 'snapshots', newest.id, first)).catch(() => undefined))
        )
          id = newest.id;
        else await sleep(10);
      }
      run.child.kill('SIGKILL');
      await run.done;
      expect(id).toBeDefined();
      expect(
        await fs.stat(path.join(remoteDir, 'snapshots', id!, 'manifest.json')).catch(() => undefined),
      ).toBeUndefined();
      expect((await listCopy('offsite-sftp')).incomplete).toEqual([id]);
      const { report, sftp } = await backup();
      expect(report.status).toBe('OK');
      expect(sftp.pushed).toEqual([id]);
      expect(sftp.skippedFiles).toBeGreaterThanOrEqual(1);
      expect((await listCopy('offsite-sftp')).snapshots.map((s) => s.id)).toContain(id);
      ids = await localIds();
    } finally {
      await proxy.stop();
    }
  }, 120_000);

  test('an S3 copy whose link goes silent is given up after its timeout: WARNING naming it, the SFTP copy still served', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: s3.port }, { stallAfterBytes: 0 });
    const silent = await lab.writeConfig(
      {
        snapshotStore: {
          path: store,
          copies: copies({ s3Endpoint: `http://127.0.0.1:${proxy.port}` }).map((c) =>
            c.type === 's3' ? { ...c, timeoutSeconds: 2 } : c,
          ),
        },
      },
      'config-silent.yaml',
    );
    try {
      const started = Date.now();
      const { res, report, sftp, s3: s3run } = await backup(silent);
      expect(res.code).toBe(1);
      expect(report.summary).toMatch(
        /copy offsite-s3 failed: copy offsite-s3 \(s3 http:\/\/127\.0\.0\.1:\d+ mfs-offsite\/mfs\/\): listing mfs\/snapshots\/: no answer within 2 s \(snapshotStore\.copies\.1\.timeoutSeconds\): abandoned$/,
      );
      expect(s3run.ok).toBe(false);
      expect(sftp.ok).toBe(true);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await proxy.stop();
    }
  }, 60_000);

  test('a full SFTP copy (a 4 KiB tmpfs) is a WARNING naming it, leaves no manifest there, and the local store is untouched', async () => {
    const full = path.join(lab.dir, 'offsite-full');
    await onTinyTmpfs(full, async () => {
      const before = await localIds();
      const cfg = await lab.writeConfig(
        { snapshotStore: { path: store, copies: [{ ...copies()[0], name: 'offsite-full', path: full }] } },
        'config-full.yaml',
      );
      const res = await runCli(['run', 'backup', '--config', cfg, '--json']);
      const report = JSON.parse(res.stdout) as { status: string; summary: string; details: { copies: CopyReport[] } };
      expect(res.code).toBe(1);
      expect(report.summary).toMatch(
        /copy offsite-full failed: copy offsite-full \(sftp root@127\.0\.0\.1:\d+:[^)]*offsite-full\): upload .*\(the server gives no reason: its disk full, a quota, or something in the way\)/,
      );
      expect(report.details.copies[0]).toMatchObject({ copy: 'offsite-full', ok: false, pushed: [] });
      const there = await fs.readdir(path.join(full, 'snapshots')).catch(() => [] as string[]);
      for (const id of there) expect(await fs.readdir(path.join(full, 'snapshots', id))).not.toContain('manifest.json');
      expect(await localIds()).toEqual(before);
      expect((await listSnapshots(store, {})).broken).toEqual([]);
    });
  }, 60_000);

  test("fetching a copy's snapshot into a state dir without room for it is refused before a byte is read", async () => {
    const small = path.join(lab.dir, 'state-small');
    await onTinyTmpfs(small, async () => {
      const cfg = parseConfig({ stateDir: small, snapshotStore: { path: store, copies: copies() } }, 'inline.yaml');
      const err = await fetchFromCopy(
        cfg,
        cfg.snapshotStore!.copies[1]!,
        'latest',
        {},
        new AbortController().signal,
      ).then(
        () => undefined,
        (e: Error) => e.message,
      );
      expect(err).toMatch(
        new RegExp(
          `^${small.replace(/[.]/g, '\\.')}/copy-fetch: not enough free space to fetch snapshot ${ids.at(-1)} of copy offsite-s3: it needs `,
        ),
      );
      expect(await fs.readdir(path.join(small, 'copy-fetch'))).toEqual([]);
    });
  });

  test('S3 repository: a big file goes up in parts, each Content-MD5 checked; HEAD knows its sha256; a credentials file others can read is refused', async () => {
    const partBucket = 'mfs-multipart';
    await client.send(new CreateBucketCommand({ Bucket: partBucket }));
    const doc = (credentialsFile: string) => ({
      snapshotStore: {
        path: store,
        copies: [
          {
            name: 'parts',
            type: 's3',
            endpoint: s3.endpoint,
            bucket: partBucket,
            forcePathStyle: true,
            credentialsFile,
            partSizeMiB: 5,
          },
        ],
      },
    });
    const cfg = parseConfig(doc(credentials), 'inline.yaml');
    const big = path.join(lab.dir, 'big.bin');
    await fs.writeFile(big, randomBytes(12 * 2 ** 20 + 123));
    const expect_ = { size: (await fs.stat(big)).size, sha256: await sha256File(big) };
    const repo = await openCopy(cfg, cfg.snapshotStore!.copies[0]!);
    try {
      const id = '20260301T100000Z-v1';
      expect(await repo.hasFile(id, 'big.bin', expect_)).toBe(false);
      await repo.put(id, 'big.bin', big, expect_);
      expect(await repo.hasFile(id, 'big.bin', expect_)).toBe(true);
      expect(await repo.hasFile(id, 'big.bin', { ...expect_, sha256: '0'.repeat(64) })).toBe(false);
      const head = await client.send(new HeadObjectCommand({ Bucket: partBucket, Key: `snapshots/${id}/big.bin` }));
      // A multipart ETag ends in -<parts>: 12 MiB in 5 MiB parts is three.
      expect(head.ETag).toMatch(/-3"$/);
      const hash = createHash('sha256');
      for await (const chunk of await repo.read(id, 'big.bin', { size: expect_.size })) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(expect_.sha256);
      await expect(
        repo.read(id, 'big.bin', { size: 1000 }).then(async (r) => {
          for await (const _ of r) void _;
        }),
      ).rejects.toThrow(/more than 1000 bytes announced/);
    } finally {
      await repo.close();
    }
    const open = await s3.writeCredentials(path.join(lab.dir, 's3-credentials-open.json'), 0o644);
    const loose = parseConfig(doc(open), 'inline.yaml');
    const refused = await openCopy(loose, loose.snapshotStore!.copies[0]!).then(
      () => 'opened',
      (err: Error) => err.message,
    );
    expect(refused).toBe(
      `S3 credentials file ${open} (snapshotStore.copies.0.credentialsFile) is readable by others (mode 644): refused; chmod 600 it`,
    );
  }, 60_000);

  test("restore --from copy:NAME with the local store gone rebuilds a DATA_PATH from the copy's newest snapshot", async () => {
    await withoutStore(async () => {
      const dataPath = path.join(lab.dir, 'restored');
      const res = await runCli([
        'run',
        'restore',
        '--config',
        config,
        '--from',
        'copy:offsite-sftp',
        '--data-path',
        dataPath,
        '--json',
      ]);
      const report = JSON.parse(res.stdout) as { status: string; summary: string; details: { placed: string[] } };
      expect(report.summary).toContain(`snapshot ${ids.at(-1)} of copy offsite-sftp`);
      expect(report.status).toBe('OK');
      expect(report.details.placed).toContain('metadata.mfs.back');
      expect(await fs.readdir(dataPath)).toEqual(expect.arrayContaining(['metadata.mfs.back']));
      expect(await fs.readdir(path.join(lab.dir, 'state', 'copy-fetch'))).toEqual([]);
    });
  }, 60_000);

  test('verify re-reads every retained snapshot of a copy on a schedule: all the first time, then the newest only; a damaged older one is found at its recheck', async () => {
    type Checked = { status: string; complete: string[]; rechecked: number; cached: number; problems: string[] };
    const verifyCopies = async (cfg: string) =>
      (
        JSON.parse((await runCli(['run', 'verify', '--config', cfg, '--json'])).stdout) as {
          details: { copies: Record<string, Checked> };
        }
      ).details.copies;
    // A state dir of its own: no cache yet.
    const stateDir = path.join(lab.dir, 'state-copies');
    const cfg = await lab.writeConfig(
      {
        stateDir,
        snapshotStore: { path: store, copies: copies() },
        jobs: { backup: { snapshotOnNewChangelogs: true } },
      },
      'config-copy-verify.yaml',
    );
    // Two new snapshots: the copies' retention (keepLast 2) leaves only these there — not the one an
    // earlier test damaged on purpose.
    for (const tag of ['copy-verify-1', 'copy-verify-2']) {
      await lab.makeChanges(tag, 2);
      expect((await runCli(['run', 'backup', '--config', cfg])).code).toBe(0);
    }
    const local = new Map((await listSnapshots(store, {})).snapshots.map((s) => [s.id, s]));
    const first = await verifyCopies(cfg);
    const sftp = first['offsite-sftp']!;
    expect(sftp.problems).toEqual([]);
    expect(sftp.complete.length).toBeGreaterThanOrEqual(2);
    const files = (id: string) => local.get(id)!.manifest.files.length;
    expect(sftp).toMatchObject({
      status: 'OK',
      cached: 0,
      rechecked: sftp.complete.reduce((n, id) => n + files(id), 0),
    });
    const newest = sftp.complete.at(-1)!;
    const older = sftp.complete[0]!;
    const again = (await verifyCopies(cfg))['offsite-sftp']!;
    expect(again).toMatchObject({
      status: 'OK',
      rechecked: files(newest),
      cached: again.complete.slice(0, -1).reduce((n, id) => n + files(id), 0),
    });
    // The same size, one byte flipped, in the older snapshot: out of sight until its recheck is due.
    const victim = onDisk(local.get(older)!.manifest.files[0]!);
    const file = path.join(remoteDir, 'snapshots', older, victim.name);
    const bytes = await fs.readFile(file);
    bytes[bytes.length >> 1]! ^= 0xff;
    await fs.writeFile(file, bytes);
    expect((await verifyCopies(cfg))['offsite-sftp']!.status).toBe('OK');
    const due = await lab.writeConfig(
      {
        stateDir,
        snapshotStore: { path: store, copies: copies() },
        jobs: { backup: { snapshotOnNewChangelogs: true }, verify: { snapshotRecheckDays: 1e-9 } },
      },
      'config-copy-verify-due.yaml',
    );
    const found = (await verifyCopies(due))['offsite-sftp']!;
    expect(found.status).toBe('WARNING');
    expect(found.problems).toEqual([
      expect.stringMatching(
        new RegExp(`^snapshot ${older}: ${victim.name.replace(/\./g, '\\.')}: sha256 .* does not match the manifest`),
      ),
    ]);
    // Never cached while damaged: the next run, with the default schedule, names it again.
    expect((await verifyCopies(cfg))['offsite-sftp']!.problems).toHaveLength(1);
    bytes[bytes.length >> 1]! ^= 0xff;
    await fs.writeFile(file, bytes);
  }, 120_000);

  test('a sealed store: the copies hold only ciphertext (no key needed to push), a drill from a copy decrypts with the key and names a wrong one', async () => {
    const sealedStore = path.join(lab.dir, 'snapshots-sealed');
    const keyFile = path.join(lab.dir, 'store.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const sealedCopies = copies().map((c) =>
      c.type === 'sftp'
        ? { ...c, name: 'sealed-sftp', path: `${remoteDir}-sealed` }
        : { ...c, name: 'sealed-s3', prefix: 'sealed/' },
    );
    const sealed = await lab.writeConfig(
      {
        snapshotStore: { path: sealedStore, encryption: { keyFile }, copies: sealedCopies },
        jobs: { drill: { scratchDir: scratchRoot } },
      },
      'config-sealed.yaml',
    );
    await lab.makeChanges('sealed', 3);
    const res = await runCli(['run', 'backup', '--config', sealed, '--json']);
    const report = JSON.parse(res.stdout) as { status: string; details: { copies: CopyReport[] } };
    expect(report.status).toBe('OK');
    expect(report.details.copies.map((c) => c.status)).toEqual(['OK', 'OK']);
    const snap = (await listSnapshots(sealedStore, {})).snapshots.at(-1)!;
    const image = snap.manifest.files.find((f) => f.role === 'image')!;
    expect(onDisk(image).name).toBe(`${image.name}.zst.enc`);
    // On the copy: the sealed bytes, byte for byte — neither the image's "MFSM" header nor zstd's magic.
    const remote = await fs.readFile(path.join(`${remoteDir}-sealed`, 'snapshots', snap.id, onDisk(image).name));
    expect(remote.equals(await fs.readFile(path.join(snap.dir, onDisk(image).name)))).toBe(true);
    expect(remote.subarray(0, 4).toString('latin1')).not.toBe('MFSM');
    expect(remote.readUInt32LE(0)).not.toBe(0xfd2fb528);
    const drill = await runCli(['run', 'drill', '--config', sealed, '--from', 'copy:sealed-s3', '--json']);
    const drilled = JSON.parse(drill.stdout) as { status: string; summary: string };
    expect(drilled.summary).toMatch(
      new RegExp(`^snapshot ${snap.id} of copy sealed-s3 restored to metadata version \\d+ and served`),
    );
    expect(drilled.status).toBe('OK');
    // Another key in the config: one line that says so, non-zero, nothing restored.
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const wrong = await runCli(['run', 'drill', '--config', sealed, '--from', 'copy:sealed-sftp']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout.split('\n')[0]).toMatch(/^MFS DRILL CRITICAL - .*key/);
  }, 120_000);

  test('promote with the master dead, its machine gone and the store gone takes the newest snapshot of the first copy that answers', async () => {
    const newest = (await listSnapshots(store, {})).snapshots.at(-1)!;
    await lab.mount?.unmount();
    await lab.metalogger?.stop();
    await lab.master.kill9();
    const standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    await fs.rm(store, { recursive: true, force: true });
    // A copy is the last resort: the old master's DATA_PATH must not answer either (its SSH is refused).
    const refused = await freePort();
    const masters = (lab.configDocument().masters as Record<string, unknown>[]).map((m) => ({
      ...m,
      ssh: { port: refused },
    }));
    const doc = lab.configDocument({
      masters,
      metaloggers: [],
      snapshotStore: { path: store, copies: copies({ s3Endpoint: `http://127.0.0.1:${await freePort()}` }).reverse() },
      standby: {
        dataPath: standby.dataPath,
        masterConfig: standby.configFile,
        cliHost: '127.0.0.1',
        cliPort: standby.ports.cl,
      },
      jobs: { promote: { fenceTimeoutSeconds: 1, clientsWaitSeconds: 0 } },
    });
    const file = path.join(lab.dir, 'config-promote.yaml');
    await fs.writeFile(file, YAML.stringify(doc), { mode: 0o600 });
    try {
      const res = await runCli(['run', 'promote', '--config', file, '--json']);
      const report = JSON.parse(res.stdout) as {
        status: string;
        summary: string;
        details: { plan: { image: { source: string }; reached: number } };
      };
      expect(report.details.plan.image.source).toBe(`copy:offsite-sftp:${newest.id}`);
      expect(report.details.plan.reached).toBeGreaterThanOrEqual(newest.manifest.reachesVersion);
      expect((await masterInfo({ host: '127.0.0.1', port: standby.ports.cl })).metadataVersion).toBeGreaterThanOrEqual(
        newest.manifest.reachesVersion,
      );
      // The snapshot fetched from the copy is gone once the promoted master serves.
      expect(report.summary).not.toMatch(/CRITICAL/);
      expect(await fs.readdir(path.join(doc.stateDir as string, 'copy-fetch'))).toEqual([]);
    } finally {
      const pid = await runningMasterPid(standby.dataPath);
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    }
  }, 90_000);
});
