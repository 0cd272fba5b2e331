import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { Daemon, freePort, portOpen, waitFor } from './proc.js';

/** An ed25519 key pair from OpenSSH's ssh-keygen (`file`, `file.pub`), no passphrase. */
export async function keygen(file: string, comment: string): Promise<void> {
  const res = await execCapture('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    timeoutMs: 10_000,
  });
  if (res.code !== 0) throw new Error(`ssh-keygen ${file}: ${res.stderr}`);
}

const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

/**
 * A real OpenSSH sshd on a loopback port, with a host key and a client key generated for this run
 * and a known_hosts file that names the host key — what an operator sets up for mfs-jobs.
 */
export class LabSshd {
  private constructor(
    readonly dir: string,
    readonly host: string,
    readonly port: number,
    readonly clientKey: string,
    readonly knownHosts: string,
    readonly hostKey: string,
    readonly daemon: Daemon,
  ) {}

  /** An SFTP off-site copy on this sshd, as a config's `snapshotStore.copies` entry names it. */
  copyConfig(name: string, remotePath: string, extra: Record<string, unknown> = {}) {
    const { host, port, clientKey: identityFile, knownHosts } = this;
    return { name, type: 'sftp', host, port, user: 'root', identityFile, knownHosts, path: remotePath, ...extra };
  }

  /** `wrap` runs sshd inside another network namespace (`nsenter --net=…`); it is then ready when it logs so. */
  /**
   * `sftpLog`: serve SFTP with OpenSSH's sftp-server logging every request (DEBUG3, fsync included)
   * to `sftp.log` in `dir` (internal-sftp's log goes to syslog, which a lab has not got).
   */
  static async start(
    dir: string,
    options: { host?: string; port?: number; wrap?: string[]; sftpLog?: boolean } = {},
  ): Promise<LabSshd> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? (await freePort(host));
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const hostKey = path.join(dir, 'ssh_host_ed25519_key');
    const clientKey = path.join(dir, 'id_ed25519');
    if (!(await fs.stat(hostKey).catch(() => undefined))) await keygen(hostKey, 'mfs-jobs-lab-host');
    if (!(await fs.stat(clientKey).catch(() => undefined))) await keygen(clientKey, 'mfs-jobs-lab-client');
    await fs.copyFile(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
    const hostPub = (await fs.readFile(`${hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = path.join(dir, 'known_hosts');
    // OpenSSH writes port 22 without brackets, any other port as [host]:port.
    await fs.writeFile(knownHosts, `${port === 22 ? host : `[${host}]:${port}`} ${hostPub}\n`, { mode: 0o600 });
    const config = path.join(dir, 'sshd_config');
    await fs.writeFile(
      config,
      [
        `Port ${port}`,
        `ListenAddress ${host}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'MaxStartups 100',
        'MaxSessions 100',
        options.sftpLog
          ? `Subsystem sftp ${SFTP_SERVER} -e -l DEBUG3 2>>${path.join(dir, 'sftp.log')}`
          : 'Subsystem sftp internal-sftp',
        'LogLevel INFO',
        '',
      ].join('\n'),
    );
    const daemon = new Daemon('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', config], path.join(dir, 'sshd.log'), {
      wrap: options.wrap,
    });
    await waitFor(`sshd on ${host}:${port}`, async () => {
      if (!daemon.running) throw new Error(`sshd exited: ${await daemon.log()}`);
      return options.wrap ? /Server listening on/.test(await daemon.log()) : portOpen(host, port);
    });
    return new LabSshd(dir, host, port, clientKey, knownHosts, hostKey, daemon);
  }

  /** What sftp-server logged (with `sftpLog`). */
  async sftpLog(): Promise<string> {
    return fs.readFile(path.join(this.dir, 'sftp.log'), 'utf8').catch(() => '');
  }

  async stop(): Promise<void> {
    await this.daemon.stop(10_000);
  }
}
