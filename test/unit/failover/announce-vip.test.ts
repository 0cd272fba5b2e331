import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { announceVip, arpingProgram } from '../../../lib/failover/arp.js';

const NOBODY = 65534;

/**
 * Promote's own announcement of the VIP once its master serves (issue 24): it names the interface it sent
 * on, or says why it sent nothing — never throws, never waits for arping to end. Nothing here sends a packet.
 */
describe('announceVip', () => {
  test('an address on no interface here is not announced', async () => {
    expect(await announceVip('192.0.2.77')).toEqual({ why: '192.0.2.77 is not on an interface that is up here' });
  });

  test('an IPv6 address is not announced by arping', async () => {
    expect(await announceVip('2001:db8::7')).toEqual({ why: '2001:db8::7 is IPv6 (arping announces IPv4 addresses)' });
  });

  test('without arping it says so', async () => {
    expect(await announceVip('127.0.0.1', '/nonexistent/arping')).toEqual({
      why: '/nonexistent/arping not installed (Debian: iputils-arping)',
    });
  });

  // Issue 24 review: arping runs as root with a raw socket; found in PATH only where no other user can plant it.
  test('an arping planted in a PATH directory another user owns is not run (nor is the fence answered by it)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-arping-'));
    const saved = process.env.PATH;
    try {
      const planted = path.join(dir, 'bin');
      const ran = path.join(dir, 'ran');
      await fs.mkdir(planted, { mode: 0o755 });
      await fs.writeFile(path.join(planted, 'arping'), `#!/bin/sh\necho "$@" > ${ran}\n`, { mode: 0o755 });
      await fs.chown(path.join(planted, 'arping'), NOBODY, NOBODY);
      await fs.chown(planted, NOBODY, NOBODY);
      process.env.PATH = `${planted}:${saved ?? '/usr/bin:/bin'}`;
      const refused = await announceVip('127.0.0.1');
      expect(refused).toEqual({ why: expect.stringMatching(/^arping not run: .*owned by uid 65534/) as string });
      expect(await arpingProgram()).toEqual(refused);
      // Give it a moment: a spawned script would have written its arguments by now.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await expect(fs.access(ran)).rejects.toThrow(/ENOENT/);
      // Refusals are not remembered: with the planted directory gone from PATH, the system's arping is found.
      process.env.PATH = saved;
      expect(await arpingProgram()).toEqual({ path: expect.stringMatching(/^\/(usr\/)?s?bin\/arping$/) as string });
    } finally {
      process.env.PATH = saved;
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
