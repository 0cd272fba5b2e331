import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathTrust, trustedProgram } from '../../../lib/core/trusted-path.js';

const NOBODY = 65534;

/** Real directories, links and sockets with real owners and modes (we run as root; 65534 is nobody). */
describe('trusted paths: what only root can change, walked like sshd walks authorized_keys', () => {
  let dir: string;
  const servers: net.Server[] = [];

  const listen = async (socket: string) => {
    const srv = net.createServer();
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(socket, resolve));
    return socket;
  };

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-trusted-'));
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
    await fs.rm(dir, { recursive: true, force: true });
  });

  test("root's socket in root's 0700 directory under /tmp (sticky) is trusted; a missing one is said to be missing", async () => {
    const socket = await listen(path.join(dir, 'd.sock'));
    expect(await pathTrust(socket, 'socket')).toEqual({ trusted: true, real: socket });
    expect(await pathTrust(path.join(dir, 'none.sock'), 'socket')).toEqual({
      trusted: false,
      missing: true,
      why: `${path.join(dir, 'none.sock')} does not exist`,
    });
  });

  test("another user's socket in a sticky 1777 directory is refused; root's own there is trusted (no one else can replace it)", async () => {
    const shared = path.join(dir, 'shared');
    await fs.mkdir(shared);
    await fs.chmod(shared, 0o1777);
    const theirs = await listen(path.join(shared, 'theirs.sock'));
    await fs.lchown(theirs, NOBODY, NOBODY);
    expect(await pathTrust(theirs, 'socket')).toEqual({
      trusted: false,
      missing: false,
      why: `${theirs} is owned by uid ${NOBODY}`,
    });
    const ours = await listen(path.join(shared, 'ours.sock'));
    expect((await pathTrust(ours, 'socket')).trusted).toBe(true);
  });

  test("a directory on the way that others may write without the sticky bit, or that another user owns, is refused, even for root's socket", async () => {
    const open = path.join(dir, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    await fs.mkdir(path.join(open, 'inner'), { mode: 0o700 });
    const socket = await listen(path.join(open, 'inner', 'd.sock'));
    expect(await pathTrust(socket, 'socket')).toEqual({
      trusted: false,
      missing: false,
      why: `${socket}: ${open} is world-writable (mode 0777)`,
    });
    await fs.chmod(open, 0o770);
    expect(await pathTrust(socket, 'socket')).toMatchObject({
      trusted: false,
      why: `${socket}: ${open} is group-writable (mode 0770)`,
    });
    await fs.chmod(open, 0o755);
    await fs.chown(open, NOBODY, NOBODY);
    expect(await pathTrust(socket, 'socket')).toMatchObject({
      trusted: false,
      why: `${socket}: ${open} is owned by uid ${NOBODY}`,
    });
  });

  test('symbolic links are followed, and one another user owns is refused', async () => {
    await fs.mkdir(path.join(dir, 'real'), { mode: 0o700 });
    const socket = await listen(path.join(dir, 'real', 'd.sock'));
    await fs.symlink(path.join(dir, 'real'), path.join(dir, 'link'));
    expect(await pathTrust(path.join(dir, 'link', 'd.sock'), 'socket')).toEqual({ trusted: true, real: socket });
    await fs.symlink('real/d.sock', path.join(dir, 'relative.sock'));
    expect(await pathTrust(path.join(dir, 'relative.sock'), 'socket')).toEqual({ trusted: true, real: socket });
    await fs.lchown(path.join(dir, 'link'), NOBODY, NOBODY);
    expect(await pathTrust(path.join(dir, 'link', 'd.sock'), 'socket')).toMatchObject({
      trusted: false,
      why: `${path.join(dir, 'link', 'd.sock')}: symbolic link ${path.join(dir, 'link')} is owned by uid ${NOBODY}`,
    });
  });

  test("a file must be a regular file, root's, not writable by others; a directory also not sticky-writable; an ancestor may be sticky", async () => {
    const file = path.join(dir, 'prog');
    await fs.writeFile(file, '#!/bin/sh\n', { mode: 0o755 });
    expect((await pathTrust(file, 'file')).trusted).toBe(true);
    await fs.chmod(file, 0o775);
    expect(await pathTrust(file, 'file')).toMatchObject({
      trusted: false,
      why: `${file} is group-writable (mode 0775)`,
    });
    expect(await pathTrust(dir, 'socket')).toMatchObject({ trusted: false, why: `${dir} is not a socket` });
    const shared = path.join(dir, 'shared');
    await fs.mkdir(shared);
    await fs.chmod(shared, 0o1777);
    expect(await pathTrust(shared, 'dir')).toMatchObject({
      trusted: false,
      why: `${shared} is world-writable (mode 1777)`,
    });
    expect((await pathTrust(shared, 'ancestor')).trusted).toBe(true);
  });

  test('a program is the first of its name in PATH, and refused (not skipped) when that one lies where another user writes', async () => {
    const mine = path.join(dir, 'mine');
    const theirs = path.join(dir, 'theirs');
    for (const d of [mine, theirs]) await fs.mkdir(d, { mode: 0o755 });
    await fs.writeFile(path.join(mine, 'zstd'), '#!/bin/sh\n', { mode: 0o755 });
    await fs.writeFile(path.join(theirs, 'zstd'), '#!/bin/sh\n', { mode: 0o755 });
    await fs.chown(theirs, NOBODY, NOBODY);
    expect(await trustedProgram('zstd', `relative:${mine}:${theirs}`)).toEqual({
      trusted: true,
      real: path.join(mine, 'zstd'),
    });
    expect(await trustedProgram('zstd', `${theirs}:${mine}`)).toEqual({
      trusted: false,
      missing: false,
      why: `${path.join(theirs, 'zstd')}: ${theirs} is owned by uid ${NOBODY}`,
    });
    expect(await trustedProgram('zstd', path.join(dir, 'empty'))).toEqual({
      trusted: false,
      missing: true,
      why: 'zstd: not found in PATH',
    });
    // An override (MFS_JOBS_ZSTD) is checked the same way, and must be absolute.
    expect(await trustedProgram('zstd', `${theirs}`, path.join(mine, 'zstd'))).toEqual({
      trusted: true,
      real: path.join(mine, 'zstd'),
    });
    expect(await trustedProgram('zstd', undefined, 'zstd')).toMatchObject({
      trusted: false,
      why: 'zstd: not an absolute path',
    });
  });
});
