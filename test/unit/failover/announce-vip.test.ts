import { announceVip } from '../../../lib/failover/arp.js';

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
});
