import { parseListeningPorts, parseTcpSockets, parseTcpTable } from '../../../lib/core/tcp-table.js';

/** /proc/net/tcp and tcp6 lines as this kernel writes them (addresses little-endian per 32-bit word). */
describe("the kernel's TCP table: established connections and listeners", () => {
  test('IPv4: local port and remote address of established connections only', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000:24D5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0', // LISTEN 9429
      '   1: 6400500A:24D5 0300500A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1', // 10.80.0.100:9429 <- 10.80.0.3:50000
      '   2: 0100007F:24D4 0100007F:D466 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1', // loopback 9428
      '   3: 6400500A:24D4 0300500A:C351 06 00000000:00000000 03:00000035 00000000     0        0 0 3 0', // TIME_WAIT
    ].join('\n');
    expect(parseTcpTable(text)).toEqual([
      { localPort: 0x24d5, remote: '10.80.0.3' },
      { localPort: 0x24d4, remote: '127.0.0.1' },
    ]);
  });

  test('listening ports: LISTEN (0A) lines only, whatever address they are bound to (the SYN hold ends when the master listens)', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000:24D5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0', // LISTEN *:9429
      '   1: 6400500A:24D3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0', // LISTEN 10.80.0.100:9427
      '   2: 6400500A:24D5 0300500A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1', // established
    ].join('\n');
    expect(parseListeningPorts(text)).toEqual([0x24d5, 0x24d3]);
  });

  test('IPv6: an IPv4-mapped peer reads as its IPv4 address, others in hex groups', () => {
    const text = [
      '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0000000000000000FFFF00006400500A:24D5 0000000000000000FFFF00000300500A:C350 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0',
      '   1: 00000000000000000000000001000000:24D5 00000000000000000000000001000000:D000 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0',
    ].join('\n');
    expect(parseTcpTable(text)).toEqual([
      { localPort: 0x24d5, remote: '10.80.0.3' },
      { localPort: 0x24d5, remote: '0:0:0:0:0:0:0:1' },
    ]);
  });

  test('every socket with its state, remote port and retransmissions (a connect waiting on its SYN)', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0300500A:CE14 6400500A:24D5 02 00000001:00000000 01:00000154 00000003     0        0 7 1 0 100 0 0 10 -1',
      '   1: 0300500A:C350 6400500A:24D4 01 00000000:00000000 00:00000000 00000000     0        0 8 1 0 20 4 30 10 -1',
    ].join('\n');
    expect(parseTcpSockets(text)).toEqual([
      { state: 2, localPort: 0xce14, remote: '10.80.0.100', remotePort: 9429, retransmits: 3 },
      { state: 1, localPort: 0xc350, remote: '10.80.0.100', remotePort: 9428, retransmits: 0 },
    ]);
  });
});
