import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import type { SftpCopyConfig } from '../../core/config.js';
import { TransferError } from '../../core/errors.js';
import { ReadWatchdog, type ReadBound } from '../../transport/bounded.js';
import type { Limit, ListingBudget } from '../../transport/listing-bounds.js';
import { connectSftp, type FileSource } from '../../transport/remote.js';
import { ID_PATTERN, SNAPSHOTS_DIR } from '../manifest.js';
import { copyNameProblem, PART_SUFFIX, type CopyRepository, type RemoteFile } from './repository.js';

/**
 * An off-site copy on an SFTP server: `<path>/snapshots/<id>/<file>`. A file is written to
 * `<file>.mfs-jobs-part`, read back and hashed, and only then renamed to its name (posix-rename):
 * a file at its final name has been verified once, so a resumed push trusts name + size.
 */
class SftpCopy implements CopyRepository {
  readonly label: string;
  readonly window: Limit;
  constructor(
    private readonly copy: SftpCopyConfig,
    key: string,
    private readonly source: FileSource,
    private readonly client: SftpClient,
    private readonly area: string = SNAPSHOTS_DIR,
  ) {
    this.label = `${copy.name} (sftp ${copy.user}@${copy.host}:${copy.port}:${copy.path})`;
    this.window = { seconds: copy.timeoutSeconds, setting: `${key}.timeoutSeconds` };
  }
  get name(): string {
    return this.copy.name;
  }
  private dirOf(id: string): string {
    const problem = copyNameProblem(id);
    if (problem) throw new TransferError(this.copy.name, `copy ${this.label}: ${problem}: refused`);
    return path.posix.join(this.copy.path, this.area, id);
  }
  private pathOf(id: string, name: string): string {
    const problem = copyNameProblem(id, name);
    if (problem) throw new TransferError(this.copy.name, `copy ${this.label}: ${problem}: refused`);
    return path.posix.join(this.dirOf(id), name);
  }
  private fail(op: string, what: string, err: unknown): TransferError {
    if (err instanceof TransferError) return err;
    const msg = err instanceof Error ? err.message.replace(/^\w+: /, '') : String(err);
    // SSH_FX_FAILURE: OpenSSH's sftp-server says no more for ENOSPC, EDQUOT or a rename onto a directory.
    const hint =
      /^Failure\b/.test(msg) || /: Failure\b/.test(msg)
        ? ' (the server gives no reason: its disk full, a quota, or something in the way)'
        : '';
    return new TransferError(this.copy.name, `copy ${this.label}: ${op} ${what}: ${msg}${hint}`, { cause: err });
  }
  /** Is `dir` there? Within the listing's budget: an lstat the server never answers must not hold it. */
  private async present(dir: string, budget: ListingBudget): Promise<boolean> {
    const end = () => void this.client.end().catch(() => undefined);
    return budget
      .answer(dir, () => this.client.exists(dir), end)
      .catch((err: unknown) => {
        throw this.fail('look for', dir, err);
      })
      .then(Boolean);
  }
  async listSnapshotIds(budget: ListingBudget): Promise<{ ids: string[]; skipped: string[] }> {
    const root = path.posix.join(this.copy.path, this.area);
    if (!(await this.present(root, budget))) return { ids: [], skipped: [] };
    const entries = await this.source.list(root, budget);
    const ids = entries
      .filter((e) => !e.isFile && ID_PATTERN.test(e.name))
      .map((e) => e.name)
      .sort();
    const isId = new Set(ids);
    return { ids, skipped: entries.filter((e) => !isId.has(e.name)).map((e) => e.name) };
  }
  async listFiles(id: string, budget: ListingBudget): Promise<RemoteFile[]> {
    const dir = this.dirOf(id);
    if (!(await this.present(dir, budget))) return [];
    return (await this.source.list(dir, budget)).filter((e) => e.isFile).map((e) => ({ name: e.name, size: e.size }));
  }
  async hasFile(id: string, name: string, expect: { size: number }, listed?: RemoteFile): Promise<boolean> {
    const file = this.pathOf(id, name);
    const st = listed ?? (await this.source.stat(file).catch(() => undefined));
    return st !== undefined && st.size === expect.size;
  }
  async put(id: string, name: string, localFile: string, expect: { size: number; sha256: string }): Promise<void> {
    const dir = this.dirOf(id);
    const final = this.pathOf(id, name);
    const part = final + PART_SUFFIX;
    try {
      await this.client.mkdir(dir, true);
      await this.client.delete(part, true);
      await this.upload(localFile, part, expect.size);
      const got = await this.readBack(part, expect.size);
      if (got !== expect.sha256)
        throw new TransferError(
          this.copy.name,
          `copy ${this.label}: ${final}: read back as sha256 ${got.slice(0, 12)}…, sent ${expect.sha256.slice(0, 12)}…: the server did not store what was sent`,
        );
      await this.fsyncRemote(part);
      await this.client.posixRename(part, final);
    } catch (err) {
      await this.client.delete(part, true).catch(() => undefined);
      throw this.fail('upload', final, err);
    }
  }
  /** fastPut, abandoned when a window of timeoutSeconds moves less than 64 KiB (the link ends: the one way to settle ssh2). */
  private async upload(localFile: string, remote: string, size: number): Promise<void> {
    let stalled: TransferError | undefined;
    const watchdog = new ReadWatchdog(
      {
        host: this.copy.name,
        what: `copy ${this.label}: upload ${remote}`,
        bound: { size },
        idleSeconds: this.copy.timeoutSeconds,
      },
      (err) => {
        stalled = err;
        void this.client.end().catch(() => undefined);
      },
    );
    try {
      await this.client.fastPut(localFile, remote, {
        concurrency: 8,
        chunkSize: 65536,
        step: (done: number) => watchdog.progress(done),
      });
    } catch (err) {
      throw stalled ?? err;
    } finally {
      watchdog.stop();
    }
    if (stalled) throw stalled;
  }
  /**
   * Asks the server to fsync the part file (OpenSSH's `fsync@openssh.com`) before it gets its name,
   * so a crash of the copy host cannot leave a complete-looking name over bytes still in its page
   * cache. A server without the extension is trusted as it is; a server that does not answer within
   * timeoutSeconds ends the connection.
   */
  private async fsyncRemote(remote: string): Promise<void> {
    const sftp = (this.client as unknown as { sftp?: SFTPWrapper }).sftp;
    if (
      !sftp ||
      (sftp as unknown as { _extensions?: Record<string, string> })._extensions?.['fsync@openssh.com'] !== '1'
    )
      return;
    const call = <T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void) =>
      new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void this.client.end().catch(() => undefined);
    }, this.copy.timeoutSeconds * 1000);
    try {
      const handle = await call<Buffer>((cb) => sftp.open(remote, 'r', cb));
      try {
        await call<void>((cb) => sftp.ext_openssh_fsync(handle, cb));
      } finally {
        await call<void>((cb) => sftp.close(handle, cb)).catch(() => undefined);
      }
    } catch (err) {
      if (timedOut)
        throw new TransferError(
          this.copy.name,
          `copy ${this.label}: fsync ${remote}: no answer for ${this.copy.timeoutSeconds} s`,
        );
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
  private async readBack(remote: string, size: number): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of await this.source.readStream(remote, { size })) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }
  async read(id: string, name: string, bound: ReadBound): Promise<Readable> {
    return this.source.readStream(this.pathOf(id, name), bound);
  }
  async remove(id: string, name: string): Promise<void> {
    await this.source.remove(this.pathOf(id, name));
  }
  async removeSnapshotDir(id: string): Promise<void> {
    const dir = this.dirOf(id);
    // Leftover part files of an interrupted upload go with it; never recursive beyond them.
    for (const e of await this.source.list(dir)) {
      if (e.name.endsWith(PART_SUFFIX)) await this.source.remove(path.posix.join(dir, e.name));
    }
    try {
      await this.client.rmdir(dir);
    } catch (err) {
      throw this.fail('remove directory', dir, err);
    }
  }
  async close(): Promise<void> {
    await this.source.close();
  }
}

export async function openSftpCopy(
  copy: SftpCopyConfig,
  key: string,
  signal?: AbortSignal,
  area = SNAPSHOTS_DIR,
): Promise<CopyRepository> {
  const { source, client } = await connectSftp(
    {
      name: copy.name,
      host: copy.host,
      port: copy.port,
      user: copy.user,
      privateKey: copy.identityFile,
      knownHosts: copy.knownHosts,
      connectTimeoutSeconds: copy.timeoutSeconds,
      readIdleSeconds: copy.timeoutSeconds,
      acceptUnknownHostKeys: false,
      keys: { privateKey: `${key}.identityFile`, knownHosts: `${key}.knownHosts`, readIdle: `${key}.timeoutSeconds` },
    },
    signal,
  );
  return new SftpCopy(copy, key, source, client, area);
}
