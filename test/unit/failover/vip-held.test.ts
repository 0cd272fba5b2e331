import os from 'node:os';
import { localAddresses, vipHeld } from '../../../lib/failover/vip.js';

/**
 * vipHeld answers from Node's interface list when the address is there (no `ip` child process: issue 24), and
 * asks `ip addr` otherwise. Node's list must never hold an address `ip` does not: a VIP held by one is held by both.
 */
describe('vipHeld on this machine', () => {
  test("every address in Node's list is one `ip addr` shows, and is held", async () => {
    const fromIp = await localAddresses();
    const fromNode = Object.values(os.networkInterfaces())
      .flatMap((list) => list ?? [])
      .map((a) => a.address.toLowerCase());
    expect(fromNode.length).toBeGreaterThan(0);
    for (const address of fromNode) {
      expect(fromIp).toContain(address);
      expect(await vipHeld(address)).toBe(true);
    }
  });

  test('an address on no interface is not held', async () => {
    expect(await vipHeld('192.0.2.77')).toBe(false);
  });
});
