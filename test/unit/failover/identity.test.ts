import { expectedFrom, foreignRestorePoints } from '../../../lib/failover/identity.js';
import type { SourceInventory } from '../../../lib/failover/restore-plan.js';

const image = (source: string, metaid: string, version = 10) => ({ source, name: 'metadata.mfs.back', path: `/d/${source}/metadata.mfs.back`, size: 40, version, metaid, empty: false, local: true });
const inv = (name: string, kind: SourceInventory['source']['kind'], metaid: string | undefined, error?: string): SourceInventory => ({
  source: { name, kind, local: true },
  metaid,
  images: metaid ? [image(name, metaid, kind === 'snapshot' ? 99_999_990 : 10)] : [],
  changelogs: [],
  notes: [],
  ...(error ? { error } : {}),
});
const A = '000000000000000A';
const B = 'DEADBEEFDEADBEEF';

describe('which filesystem promote may restore', () => {
  test('the run\'s pin, then the cluster identity, then the live sources; snapshots alone only when no live source knows', () => {
    const sources = [inv('ml1', 'metalogger', A), inv('snapshot:x', 'snapshot', B)];
    expect(expectedFrom(undefined, 'a', sources)).toEqual({ metaids: [A], from: 'jobs.promote.metaid', known: true });
    expect(expectedFrom({ metaid: A, from: 'cluster.metaid in /c.yaml' }, undefined, sources)).toEqual({ metaids: [A], from: 'cluster.metaid in /c.yaml', known: true });
    expect(expectedFrom(undefined, undefined, sources)).toEqual({ metaids: [A], from: 'held by the live sources ml1', known: false });
    expect(expectedFrom(undefined, undefined, [inv('ml1', 'metalogger', A, 'unreachable'), inv('snapshot:x', 'snapshot', B)])).toBeUndefined();
  });

  test('a foreign restore point is named with both ids, its file and version', () => {
    const sources = [inv('ml1', 'metalogger', A), inv('snapshot:x', 'snapshot', B)];
    expect(foreignRestorePoints(sources, expectedFrom(undefined, undefined, sources))).toEqual([
      `snapshot:x:metadata.mfs.back (/d/snapshot:x/metadata.mfs.back, version 99999990) is of filesystem metaid ${B}, the cluster's is ${A} (held by the live sources ml1): not used`,
    ]);
    expect(foreignRestorePoints(sources, undefined)).toEqual([]);
  });
});
