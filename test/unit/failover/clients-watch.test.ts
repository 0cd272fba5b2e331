import {
  clientsResult,
  parseClientsWatchRequest,
  type ClientsWatchRequest,
} from '../../../lib/failover/clients-watch.js';

const request: ClientsWatchRequest = {
  clientPort: 9421,
  chunkserverPort: 9420,
  ignore: ['10.0.0.1'],
  since: 1_800_000_000_000,
  timeoutMs: 10_000,
  stateDir: '/var/lib/mfs-jobs',
  textfileDir: '/var/lib/node_exporter',
  promotedAt: '2027-01-15T08:00:00.000Z',
  metadataVersion: 1234,
};

describe('the clients-back watch after promote: its request and its verdict', () => {
  test('a request round-trips through the command line; anything else is refused', () => {
    expect(parseClientsWatchRequest(JSON.stringify(request))).toEqual(request);
    for (const bad of [
      { ...request, clientPort: 0 },
      { ...request, stateDir: 'relative' },
      { ...request, timeoutMs: 3_600_000 },
      { ...request, ignore: [1] },
      { ...request, textfileDir: 'x' },
    ]) {
      expect(() => parseClientsWatchRequest(JSON.stringify(bad))).toThrow('not a clients-watch request');
    }
    expect(() => parseClientsWatchRequest('')).toThrow();
  });

  test('OK with clients_back_seconds once a mount came back; WARNING when none did; UNKNOWN when nothing could be watched', () => {
    const back = clientsResult({ mounts: 2, chunkservers: 1, firstMountMs: 3210, firstChunkserverMs: 4000 }, request);
    expect(back.status).toBe('OK');
    expect(back.summary).toBe(
      'promotion of 2027-01-15T08:00:00.000Z (metadata version 1234): clients back (after the hook was called): first mount 3.21 s, first chunkserver 4.00 s; 2 mount and 1 chunkserver connection(s)',
    );
    expect(back.metrics).toEqual([{ name: 'clients_back_seconds', value: 3.21, unit: 's' }]);
    const none = clientsResult({ mounts: 0, chunkservers: 1, firstChunkserverMs: 4000 }, request);
    expect(none.status).toBe('WARNING');
    expect(none.summary).toContain('first mount none within 10 s');
    expect(none.metrics).toEqual([]);
    expect(clientsResult({ mounts: 0, chunkservers: 0, unavailable: 'EACCES' }, request).status).toBe('UNKNOWN');
  });
});
