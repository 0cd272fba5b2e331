import { ChainError } from '../../../lib/core/errors.js';
import { expectedFilesystem, expectedFrom, foreignRestorePoints } from '../../../lib/failover/identity.js';
import { admitRestorePoint, restorePointProblem } from '../../../lib/store/identity.js';
import type { PromoteInventory } from '../../../lib/failover/restore-plan.js';

const image = (source: string, metaid: string, version = 10) => ({
  source,
  name: 'metadata.mfs.back',
  path: `/d/${source}/metadata.mfs.back`,
  size: 40,
  version,
  metaid,
  empty: false,
  local: true,
});
const inv = (
  name: string,
  kind: PromoteInventory['source']['kind'],
  metaid: string | undefined,
  error?: string,
): PromoteInventory => ({
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
  test("the run's pin, then the cluster identity, then the live sources; snapshots alone only when no live source knows", () => {
    const sources = [inv('ml1', 'metalogger', A), inv('snapshot:x', 'snapshot', B)];
    expect(expectedFrom(undefined, 'a', sources)).toEqual({ metaids: [A], from: 'jobs.promote.metaid', known: true });
    expect(expectedFrom({ metaid: A, from: 'cluster.metaid in /c.yaml' }, undefined, sources)).toEqual({
      metaids: [A],
      from: 'cluster.metaid in /c.yaml',
      known: true,
    });
    expect(expectedFrom(undefined, undefined, sources)).toEqual({
      metaids: [A],
      from: 'held by the live sources ml1',
      known: false,
    });
    expect(
      expectedFrom(undefined, undefined, [
        inv('ml1', 'metalogger', A, 'unreachable'),
        inv('snapshot:x', 'snapshot', B),
      ]),
    ).toBeUndefined();
  });

  test('a foreign restore point is named with both ids, its file and version', () => {
    const sources = [inv('ml1', 'metalogger', A), inv('snapshot:x', 'snapshot', B)];
    expect(foreignRestorePoints(sources, expectedFrom(undefined, undefined, sources))).toEqual([
      `snapshot:x:metadata.mfs.back (/d/snapshot:x/metadata.mfs.back, version 99999990) is of filesystem metaid ${B}, the cluster's is ${A} (held by the live sources ml1): not used`,
    ]);
    expect(foreignRestorePoints(sources, undefined)).toEqual([]);
  });
});

describe("the one rule for a restore point's image (drill, restore, promote)", () => {
  const ours = { metaid: A, from: '/state/cluster-identity.json (learnt from ml1)' };
  test("the cluster's metaid passes; another is named with both ids; an image without one (1.x, MFSM NEW) has nothing to compare", () => {
    expect(restorePointProblem('copy x', A, 'copy', ours)).toBeUndefined();
    expect(restorePointProblem('copy x', B, 'local', ours)).toBe(
      `copy x is of filesystem metaid ${B}, the cluster's is ${A} (/state/cluster-identity.json (learnt from ml1))`,
    );
    expect(restorePointProblem('copy x', '', 'copy', ours)).toBeUndefined();
    expect(restorePointProblem('copy x', '', 'copy', undefined)).toBeUndefined();
  });

  test("with the cluster's metaid unknown a copy is refused (others may write it), a local restore point is used", () => {
    expect(restorePointProblem('copy x', B, 'copy', undefined, 'nothing recorded')).toBe(
      `copy x is of filesystem metaid ${B} and the cluster's metaid is not known (nothing recorded): a copy is writable by others`,
    );
    expect(restorePointProblem('ml9', B, 'local', undefined)).toBeUndefined();
  });

  test('refused: a ChainError in one line naming the flag; --other-filesystem lets it in with a line for the report', () => {
    expect(() =>
      admitRestorePoint({ identity: ours, otherFilesystem: false }, 'snapshot s of copy c', B, 'copy'),
    ).toThrow(ChainError);
    expect(() =>
      admitRestorePoint({ identity: ours, otherFilesystem: false }, 'snapshot s of copy c', B, 'copy'),
    ).toThrow(/: not used \(--other-filesystem to use it anyway\)$/);
    expect(admitRestorePoint({ identity: ours, otherFilesystem: true }, 'snapshot s of copy c', B, 'copy')).toMatch(
      /: used anyway \(--other-filesystem\)$/,
    );
    expect(
      admitRestorePoint({ identity: ours, otherFilesystem: false }, 'snapshot s of copy c', A, 'copy'),
    ).toBeUndefined();
  });

  test('--other-filesystem in promote: only jobs.promote.metaid pins, nothing else filters', async () => {
    const config = { file: '/c.yaml', stateDir: '/nonexistent', cluster: { metaid: 'a' } } as never;
    expect(await expectedFilesystem(config, undefined, [inv('ml1', 'metalogger', B)], true)).toBeUndefined();
    expect(await expectedFilesystem(config, 'b', [inv('ml1', 'metalogger', B)], true)).toEqual({
      metaids: ['000000000000000B'],
      from: 'jobs.promote.metaid',
      known: true,
    });
    expect(await expectedFilesystem(config, undefined, [inv('ml1', 'metalogger', B)])).toMatchObject({ metaids: [A] });
  });
});
