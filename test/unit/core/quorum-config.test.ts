import { parseConfig } from '../../../lib/core/config.js';

/** quorum:, fence: (issue #25): optional, and each mistake named by its key. */
describe('quorum and fence config', () => {
  const etcd = { endpoints: ['http://10.0.0.1:2379'], prefix: '/mfs-jobs/c1' };
  const error = (doc: unknown) => {
    try {
      parseConfig(doc, 'c.yaml');
    } catch (err) {
      return (err as Error).message;
    }
    return undefined;
  };

  test('absent: no quorum (behaviour as before); present: the defaults keep the timing rule (2 + 2 x 4 <= 10)', () => {
    expect(parseConfig({}).quorum).toBeUndefined();
    expect(parseConfig({ quorum: { etcd } }).quorum?.etcd).toMatchObject({
      ttlSeconds: 10,
      loopWaitSeconds: 2,
      retryTimeoutSeconds: 4,
    });
  });

  test('the timing rule loop_wait + 2 x retry_timeout <= ttl is enforced, naming the key', () => {
    expect(error({ quorum: { etcd: { ...etcd, ttlSeconds: 5, loopWaitSeconds: 1, retryTimeoutSeconds: 2.5 } } })).toBe(
      'c.yaml: quorum.etcd.ttlSeconds: loopWaitSeconds + 2 x retryTimeoutSeconds (1 + 2 x 2.5) must be <= ttlSeconds (5)',
    );
    expect(
      error({ quorum: { etcd: { ...etcd, ttlSeconds: 5, loopWaitSeconds: 1, retryTimeoutSeconds: 2 } } }),
    ).toBeUndefined();
  });

  test('bad endpoints, prefix, TLS halves, fence command: one line naming the key', () => {
    expect(error({ quorum: { etcd: { ...etcd, endpoints: ['10.0.0.1:2379'] } } })).toBe(
      'c.yaml: quorum.etcd.endpoints.0: expected http(s)://host:port',
    );
    expect(error({ quorum: { etcd: { ...etcd, prefix: 'mfs' } } })).toMatch(/^c\.yaml: quorum\.etcd\.prefix: /);
    expect(error({ quorum: { etcd: { ...etcd, certFile: '/etc/c.pem' } } })).toBe(
      'c.yaml: quorum.etcd.certFile: certFile and keyFile go together',
    );
    expect(error({ fence: { command: ['fence_ipmilan', '--ip=1'] } })).toBe(
      'c.yaml: fence.command: expected [absolute path of the program, its arguments...]',
    );
    expect(error({ quorum: { etcd, failsafe: { port: 9482 } } })).toMatch(/^c\.yaml: quorum\.failsafe\.keyFile: /);
  });
});
