import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../lib/core/config.js';
import { TransferError } from '../../lib/core/errors.js';
import { execCapture } from '../../lib/core/exec.js';
import { openSource } from '../../lib/transport/remote.js';
import { LabSshd } from '../lab/sshd.js';

/**
 * ssh.acceptUnknownHostKeys against a real OpenSSH sshd: like StrictHostKeyChecking=accept-new, the
 * first key seen is pinned in knownHosts, and a host that comes back with another key is refused.
 */
describe('acceptUnknownHostKeys: accept-new, then pinned', () => {
  let dir: string;
  let sshd: LabSshd | undefined;
  let knownHosts: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-accept-new-'));
    sshd = await LabSshd.start(path.join(dir, 'sshd'));
    knownHosts = path.join(dir, 'known_hosts');
  });
  afterEach(async () => {
    await sshd?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const config = (accept: boolean) =>
    parseConfig({
      stateDir: path.join(dir, 'state'),
      ssh: {
        port: sshd!.port,
        user: 'root',
        privateKey: sshd!.clientKey,
        knownHosts,
        connectTimeoutSeconds: 5,
        acceptUnknownHostKeys: accept,
      },
      masters: [{ name: 'm1', host: sshd!.host, dataPath: sshd!.dir }],
    });

  async function listOver(accept: boolean): Promise<string[]> {
    const c = config(accept);
    const source = await openSource(c, c.masters[0]!);
    try {
      return (await source.list(sshd!.dir)).map((e) => e.name);
    } finally {
      await source.close();
    }
  }

  /** A new host key on the same host and port: the host was reinstalled, or someone is in between. */
  async function restartWithNewHostKey(): Promise<void> {
    const port = sshd!.port;
    await sshd!.stop();
    await fs.rm(sshd!.hostKey);
    await fs.rm(`${sshd!.hostKey}.pub`);
    sshd = await LabSshd.start(sshd!.dir, { port });
  }

  test('an empty known_hosts: the key is accepted and pinned (0600, readable by OpenSSH); a new key later is refused', async () => {
    await fs.writeFile(knownHosts, '', { mode: 0o600 });
    expect(await listOver(true)).toContain('sshd_config');

    const name = `[${sshd!.host}]:${sshd!.port}`;
    const hostPub = (await fs.readFile(`${sshd!.hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    expect(await fs.readFile(knownHosts, 'utf8')).toBe(`${name} ${hostPub}\n`);
    expect((await fs.stat(knownHosts)).mode & 0o777).toBe(0o600);
    const found = await execCapture('ssh-keygen', ['-F', name, '-f', knownHosts], { timeoutMs: 10_000 });
    expect(found.code).toBe(0);

    // Pinned: the same key again is fine and adds no second line.
    await listOver(true);
    expect((await fs.readFile(knownHosts, 'utf8')).split('\n').filter(Boolean)).toHaveLength(1);

    await restartWithNewHostKey();
    const err = await listOver(true).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransferError);
    expect((err as Error).message).toBe(
      `m1 (${sshd!.host}:${sshd!.port}): cannot connect over SSH: host key of ${name} does not match ${knownHosts} (possible man-in-the-middle, or the host was reinstalled)`,
    );
    expect((await fs.readFile(knownHosts, 'utf8')).split('\n').filter(Boolean)).toEqual([`${name} ${hostPub}`]);
  });

  test('a known_hosts not there yet is created 0600 by the first pin; without the option an unknown host is refused and nothing is written', async () => {
    const refused = await listOver(false).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(/cannot read known_hosts file .* ENOENT/);
    await fs.writeFile(knownHosts, '# managed by hand\n', { mode: 0o600 });
    const unknown = await listOver(false).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((unknown as Error).message).toMatch(new RegExp(`is not in ${knownHosts}`));
    expect(await fs.readFile(knownHosts, 'utf8')).toBe('# managed by hand\n');

    await fs.rm(knownHosts);
    await listOver(true);
    expect((await fs.stat(knownHosts)).mode & 0o777).toBe(0o600);
    expect((await fs.readFile(knownHosts, 'utf8')).split('\n').filter(Boolean)).toHaveLength(1);
  });
});
