import {
  chainSteps,
  checkCut,
  checkTrash,
  Cutter,
  parseTarget,
  type CutFacts,
  type CutLine,
  type RestoreTarget,
} from '../../../lib/restore/target.js';

/** Lines `from..to`, one second apart from `t0`, op CREATE unless `ops` says otherwise. */
function lines(from: number, to: number, t0 = 1_000, ops: Record<number, string> = {}): CutLine[] {
  const out: CutLine[] = [];
  for (let v = from; v <= to; v++) out.push({ version: v, timestamp: t0 + (v - from), op: ops[v] ?? 'CREATE' });
  return out;
}

function cut(target: RestoreTarget, imageVersion: number, feed: CutLine[], before: CutLine[] = []) {
  const c = new Cutter(target, imageVersion);
  for (const l of before) c.before(l);
  const applied = feed.filter((l) => c.accept(l)).map((l) => l.version);
  return { applied, outcome: c.result() };
}

const facts = (over: Partial<CutFacts>): CutFacts => ({
  where: 'snapshot S',
  imageName: 'metadata.mfs.back',
  imageVersion: 10,
  target: { kind: 'version', version: 15 },
  outcome: cut({ kind: 'version', version: 15 }, 10, lines(10, 20)).outcome,
  reached: 21,
  newest: 21,
  holes: [],
  damage: [],
  ...over,
});

describe('restore target', () => {
  test('--to-version and --to-time parse; bad values and both at once are usage errors naming the flag', () => {
    expect(parseTarget({ toVersion: '1 000 103' })).toEqual({ kind: 'version', version: 1_000_103 });
    expect(parseTarget({ toTime: '2026-12-01T14:01:00Z' })).toEqual({
      kind: 'time',
      time: Date.UTC(2026, 11, 1, 14, 1) / 1000,
      iso: '2026-12-01T14:01:00Z',
    });
    expect(parseTarget({ toTime: '2026-12-01T15:01:00' }, 'Europe/Warsaw')).toMatchObject({
      iso: '2026-12-01T14:01:00Z',
    });
    expect(parseTarget({})).toEqual({ kind: 'newest' });
    expect(() => parseTarget({ toVersion: '12a' })).toThrow(/^--to-version "12a": expected a metadata version/);
    expect(() => parseTarget({ toVersion: '0' })).toThrow(/--to-version "0"/);
    expect(() => parseTarget({ toTime: 'yesterday' })).toThrow(/^--to-time "yesterday": expected an ISO-8601 time/);
    expect(() => parseTarget({ toVersion: '5', toTime: '2026-12-01T14:01:00Z' })).toThrow(
      '--to-version and --to-time cannot be combined',
    );
  });

  test('--to-version N applies every line below N and leaves out N and later (the master reports L+1 after line L)', () => {
    const { applied, outcome } = cut(
      { kind: 'version', version: 15 },
      10,
      lines(10, 20, 1_000, { 15: 'UNLINK', 16: 'PURGE', 18: 'UNLINK', 19: 'WRITE' }),
    );
    expect(applied).toEqual([10, 11, 12, 13, 14]);
    expect(outcome.targetVersion).toBe(15);
    expect(outcome.lastApplied).toEqual({ version: 14, timestamp: 1_004, op: 'CREATE' });
    expect(outcome.leftOut).toEqual({
      count: 6,
      first: { version: 15, timestamp: 1_005, op: 'UNLINK' },
      last: { version: 20, timestamp: 1_010, op: 'CREATE' },
      firstDeletion: { version: 15, timestamp: 1_005, op: 'UNLINK' },
      deletions: 3,
      deletionsByOp: { UNLINK: 2, PURGE: 1 },
    });
  });

  test("--to-version at the image's own version restores the image alone", () => {
    const { applied, outcome } = cut({ kind: 'version', version: 10 }, 10, lines(10, 12));
    expect(applied).toEqual([]);
    expect(outcome).toMatchObject({ targetVersion: 10, applied: 0, leftOut: { count: 3 } });
    expect(checkCut(facts({ target: { kind: 'version', version: 10 }, outcome }))).toBeUndefined();
  });

  test('--to-time T applies up to the first line later than T, even when the clock goes back after it', () => {
    const feed = lines(10, 20);
    feed[7]!.timestamp = 900; // version 17: the clock went back
    const { applied, outcome } = cut({ kind: 'time', time: 1_003.5, iso: 'x' }, 10, feed);
    expect(applied).toEqual([10, 11, 12, 13]);
    expect(outcome).toMatchObject({
      targetVersion: 14,
      passedTarget: true,
      leftOut: { count: 7, first: { version: 14 } },
    });
  });

  test('the smallest SETTRASHTIME among the lines left out is kept, with its version; lines applied do not count', () => {
    const feed = lines(10, 16);
    feed[1]!.trashTime = 0;
    feed[3]!.trashTime = 3_600;
    feed[5]!.trashTime = 60;
    expect(cut({ kind: 'version', version: 13 }, 10, feed).outcome.smallestTrashTime).toEqual({
      value: 60,
      version: 15,
    });
    expect(cut({ kind: 'newest' }, 10, feed).outcome.smallestTrashTime).toBeUndefined();
  });

  test('chain steps: the piece reaching furthest at each version; the first missing version is reached', () => {
    const pieces = [
      { file: 'changelog_ml.1.mfs', first: 1, last: 40 },
      { file: 'changelog_ml_back.0.mfs', first: 30, last: 45 },
      { file: 'changelog_ml.0.mfs', first: 41, last: 60 },
      { file: 'changelog_ml.0.mfs', first: 63, last: 70 },
    ];
    expect(chainSteps(20, pieces)).toEqual({
      steps: [
        { file: 'changelog_ml.1.mfs', first: 20, last: 40 },
        { file: 'changelog_ml.0.mfs', first: 41, last: 60 },
      ],
      reached: 61,
    });
    expect(chainSteps(80, pieces)).toEqual({ steps: [], reached: 80 });
  });

  test('refusals name the version and the file: before the image, beyond the newest, in a hole, behind damage', () => {
    const v = (version: number) => ({ kind: 'version', version }) as const;
    expect(checkCut(facts({ target: v(9) }))).toEqual({
      subject: 'metadata.mfs.back',
      beforeImage: true,
      message:
        '--to-version 9 is older than snapshot S: its image metadata.mfs.back is at version 10 (use an older restore point): nothing written',
    });
    expect(checkCut(facts({ target: v(22) }))?.message).toBe(
      '--to-version 22 is beyond what snapshot S holds: its newest version is 21 (image metadata.mfs.back at 10): nothing written',
    );
    expect(checkCut(facts({ target: v(21) }))).toBeUndefined();
    const holed = { reached: 16, newest: 31, holes: [{ from: 16, to: 19 }] };
    expect(checkCut(facts({ ...holed, target: v(16) }))).toBeUndefined();
    expect(checkCut(facts({ ...holed, target: v(25) }))?.message).toBe(
      "--to-version 25 lies beyond a hole in snapshot S's changelogs: versions 16..19 are missing (the chain from image metadata.mfs.back at version 10 reaches 16): nothing written",
    );
    const damage = [{ file: 'changelog.3.mfs', line: 7, afterVersion: 12 }];
    expect(checkCut(facts({ damage, target: v(15) }))).toEqual({
      subject: 'changelog.3.mfs',
      beforeImage: false,
      message:
        '--to-version 15: snapshot S: changelog.3.mfs:7: damaged changelog line after version 12, before the target version 15: nothing written',
    });
    expect(checkCut(facts({ damage, target: v(13) }))).toBeUndefined();
    // Damage older than the image is never applied.
    expect(
      checkCut(facts({ damage: [{ file: 'changelog.9.mfs', line: 2, afterVersion: 4 }], target: v(15) })),
    ).toBeUndefined();
  });

  test('a time target: before the image, after the newest change, damage before the cut', () => {
    const t = (time: number): RestoreTarget => ({ kind: 'time', time, iso: `T${time}` });
    const early = cut(t(500), 10, lines(10, 20), [{ version: 9, timestamp: 990, op: 'CREATE' }]).outcome;
    expect(checkCut(facts({ target: t(500), outcome: early }))).toMatchObject({
      beforeImage: true,
      message:
        '--to-time T500 is older than snapshot S: its image metadata.mfs.back is at version 10 and its first change after the image (version 10) is from 1970-01-01T00:16:40Z (use an older restore point): nothing written',
    });
    // The image's own line (version 9) is at or before T: the image alone is the answer.
    const imageOnly = cut(t(995), 10, lines(10, 20), [{ version: 9, timestamp: 990, op: 'CREATE' }]).outcome;
    expect(imageOnly).toMatchObject({ targetVersion: 10, applied: 0, imageTimestamp: 990 });
    expect(checkCut(facts({ target: t(995), outcome: imageOnly }))).toBeUndefined();
    const late = cut(t(5_000), 10, lines(10, 20)).outcome;
    expect(checkCut(facts({ target: t(5_000), outcome: late, newestTimestamp: 1_010 }))?.message).toBe(
      '--to-time T5000 is after the newest change snapshot S holds (version 20 at 1970-01-01T00:16:50Z): it cannot show the metadata at that time (use --to-version 21 or a newer restore point): nothing written',
    );
    const mid = cut(t(1_004), 10, lines(10, 20)).outcome;
    expect(checkCut(facts({ target: t(1_004), outcome: mid }))).toBeUndefined();
    expect(
      checkCut(facts({ target: t(1_004), outcome: mid, damage: [{ file: 'c', line: 3, afterVersion: 12 }] }))?.message,
    ).toMatch(
      /^--to-time T1004: snapshot S: c:3: damaged changelog line after version 12, before the target version 15/,
    );
    // A chain that stops at a hole before the time was passed cannot prove the time.
    const stopped = cut(t(1_008), 10, lines(10, 15)).outcome;
    expect(
      checkCut(facts({ target: t(1_008), outcome: stopped, reached: 16, newest: 21, holes: [{ from: 16, to: 17 }] }))
        ?.message,
    ).toMatch(/^--to-time T1008 lies beyond a hole in snapshot S's changelogs: versions 16\.\.17 are missing/);
  });

  test('trash: WARN when the oldest deletion left out is older than the trash time; 4.x applies seconds in whole hours', () => {
    const leftOut = (deletionAt?: number) => ({
      count: 3,
      deletions: deletionAt === undefined ? 0 : 2,
      deletionsByOp: {},
      ...(deletionAt === undefined ? {} : { firstDeletion: { version: 40, timestamp: deletionAt, op: 'UNLINK' } }),
    });
    const base = { nowSeconds: 100_000, stepSeconds: 1, defaultSeconds: 86_400, generation: 'MooseFS 3.0' };
    expect(checkTrash({ ...base, leftOut: leftOut(50_000) })).toEqual({
      seconds: 86_400,
      basis: 'the MooseFS 3.0 default trash time (86400 s; no smaller SETTRASHTIME among the changes left out)',
    });
    const old = checkTrash({ ...base, leftOut: leftOut(10_000) });
    expect(old.warning).toBe(
      'the oldest deletion left out, version 40 at 1970-01-01T02:46:40Z (UNLINK), is 90000 s old, more than the trash time 86400 s (the MooseFS 3.0 default trash time (86400 s; no smaller SETTRASHTIME among the changes left out)): 2 deletion(s) are undone, and their files may come back without their data',
    );
    // 4.59.2 logs `mfssettrashtime 600` as 600 and keeps ceil(600 / 3600) = 1 hour.
    const hours = checkTrash({
      ...base,
      stepSeconds: 3_600,
      smallest: { value: 600, version: 77 },
      leftOut: leftOut(90_000),
    });
    expect(hours).toMatchObject({
      seconds: 3_600,
      basis: 'the smallest SETTRASHTIME among the changes left out (version 77: 600 s, applied as 3600 s)',
    });
    expect(hours.warning).toMatch(
      /^the oldest deletion left out, version 40 at \S+ \(UNLINK\), is 10000 s old, more than the trash time 3600 s/,
    );
    expect(
      checkTrash({ ...base, stepSeconds: 3_600, smallest: { value: 7_200, version: 78 }, leftOut: leftOut(99_000) }),
    ).toEqual({ seconds: 7_200, basis: 'the smallest SETTRASHTIME among the changes left out (version 78: 7200 s)' });
  });

  test('trash_verdict_same_state_same_verdict: nothing left out is OK whatever the history; a trash time of 0 applied long ago does not count', () => {
    // Two restore points of the same final state: one whose changelogs hold SETTRASHTIME 0 (of a file deleted
    // long ago, before the target), one whose image is newer than that line.
    const history = lines(10, 20, 1_000, { 12: 'SETTRASHTIME', 13: 'UNLINK' });
    history[2]!.trashTime = 0;
    const fromOld = cut({ kind: 'newest' }, 10, history).outcome;
    const fromNew = cut({ kind: 'newest' }, 15, history.slice(5)).outcome;
    const verdict = (o: typeof fromOld) =>
      checkTrash({
        leftOut: o.leftOut,
        nowSeconds: 1e9,
        smallest: o.smallestTrashTime,
        stepSeconds: 1,
        defaultSeconds: 86_400,
        generation: 'MooseFS 3.0',
      });
    expect(verdict(fromOld)).toEqual(verdict(fromNew));
    expect(verdict(fromOld).warning).toBeUndefined();
  });
});
