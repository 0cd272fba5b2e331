import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { Daemon, freePort, waitFor } from './proc.js';

/**
 * A real S3 server: Ceph RADOS Gateway from Debian, one mon, one memstore OSD and one RGW on loopback
 * (config and start order as /work/shared/s3-lab.md measured them, ~1.6 s). Start one per suite and use
 * a bucket per test; `stop()` ends rgw → osd → mon by PID and removes the directory.
 */
export class LabS3 {
  static readonly ACCESS_KEY = 'LABACCESSKEY0000';
  static readonly SECRET_KEY = 'lab-secret-key-not-a-real-one-000000';

  private constructor(
    readonly dir: string,
    readonly conf: string,
    readonly port: number,
    private readonly daemons: Daemon[],
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The RGW's daemon alone: stop it to make the endpoint unreachable (its port then refuses). */
  get rgw(): Daemon {
    return this.daemons[2]!;
  }

  static async start(dir: string): Promise<LabS3> {
    for (const bin of ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'monmaptool', 'ceph-authtool']) {
      const found = await execCapture('sh', ['-c', `command -v ${bin}`], { timeoutMs: 5000 });
      // Fail loudly: a missing Ceph is a broken test machine (scripts/setup-debian.sh installs it), never a skip.
      if (found.code !== 0)
        throw new Error(`${bin} is not installed: apt-get install radosgw ceph-mon ceph-osd (scripts/setup-debian.sh)`);
    }
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    for (const d of ['run', 'log', 'mon/a', 'osd/0', 'rgw']) await fs.mkdir(path.join(dir, d), { recursive: true });
    const [monV2, monV1, rgwPort] = [await freePort(), await freePort(), await freePort()];
    const fsid = randomUUID();
    const conf = path.join(dir, 'ceph.conf');
    const mon = `[v2:127.0.0.1:${monV2},v1:127.0.0.1:${monV1}]`;
    await fs.writeFile(conf, cephConf(dir, fsid, monV2, monV1, rgwPort), { mode: 0o600 });
    const run = async (cmd: string, args: string[]) => {
      const res = await execCapture(cmd, args, { timeoutMs: 30_000 });
      if (res.code !== 0)
        throw new Error(`${cmd} ${args.join(' ')}: exit ${res.code}: ${res.stderr.trim() || res.stdout.trim()}`);
      return res.stdout;
    };
    const daemons: Daemon[] = [];
    const lab = new LabS3(dir, conf, rgwPort, daemons);
    try {
      await run('ceph-authtool', [
        '--create-keyring',
        path.join(dir, 'keyring'),
        '--gen-key',
        '-n',
        'mon.',
        '--cap',
        'mon',
        'allow *',
      ]);
      await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', mon, path.join(dir, 'monmap')]);
      await run('ceph-mon', ['-c', conf, '-i', 'a', '--mkfs', '--monmap', path.join(dir, 'monmap')]);
      daemons.push(new Daemon('ceph-mon', 'ceph-mon', ['-c', conf, '-i', 'a', '-f'], path.join(dir, 'log', 'mon.out')));
      await waitFor(
        'ceph-mon',
        async () =>
          (await execCapture('ceph', ['-c', conf, '--connect-timeout', '2', 'mon', 'stat'], { timeoutMs: 10_000 }))
            .code === 0,
        30_000,
        100,
      );
      const osdUuid = randomUUID();
      await run('ceph', ['-c', conf, 'osd', 'new', osdUuid]);
      await run('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
      daemons.push(new Daemon('ceph-osd', 'ceph-osd', ['-c', conf, '-i', '0', '-f'], path.join(dir, 'log', 'osd.out')));
      await waitFor(
        'ceph-osd up',
        async () => /1 up/.test((await execCapture('ceph', ['-c', conf, 'osd', 'stat'], { timeoutMs: 10_000 })).stdout),
        30_000,
        100,
      );
      daemons.push(
        new Daemon('radosgw', 'radosgw', ['-c', conf, '-n', 'client.rgw.a', '-f'], path.join(dir, 'log', 'rgw.out')),
      );
      await waitFor(
        'radosgw',
        async () => {
          if (!daemons[2]!.running) throw new Error(`radosgw exited: ${await daemons[2]!.log()}`);
          return fetch(`http://127.0.0.1:${rgwPort}/`).then(
            () => true,
            () => false,
          );
        },
        60_000,
        100,
      );
      await run('radosgw-admin', [
        '-c',
        conf,
        'user',
        'create',
        '--uid=test',
        '--display-name=test',
        `--access-key=${LabS3.ACCESS_KEY}`,
        `--secret=${LabS3.SECRET_KEY}`,
      ]);
      return lab;
    } catch (err) {
      await lab.stop({ keepDir: true });
      throw err;
    }
  }

  /** A credentials file as an operator writes it: the two keys, mode 0600. */
  async writeCredentials(file: string, mode = 0o600): Promise<string> {
    await fs.writeFile(
      file,
      JSON.stringify({ accessKeyId: LabS3.ACCESS_KEY, secretAccessKey: LabS3.SECRET_KEY }) + '\n',
      { mode },
    );
    await fs.chmod(file, mode);
    return file;
  }

  /** rgw → osd → mon, each by PID; then the directory goes. */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    for (const d of [...this.daemons].reverse()) await d.stop(15_000).catch(() => undefined);
    if (!options.keepDir) await fs.rm(this.dir, { recursive: true, force: true });
  }
}

function cephConf(d: string, fsid: string, monV2: number, monV1: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monV2},v1:127.0.0.1:${monV1}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = ${d}/run
admin socket = ${d}/run/$name.asok
log file = ${d}/log/$name.log
pid file = ${d}/run/$name.pid
keyring = ${d}/keyring
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 1
[mon]
paxos propose interval = 0.05
paxos min wait = 0.01
[mon.a]
mon data = ${d}/mon/a
[osd.0]
osd data = ${d}/osd/0
osd objectstore = memstore
memstore device bytes = 2147483648
osd crush update on start = true
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${d}/rgw
ms mon client mode = crc
`;
}
