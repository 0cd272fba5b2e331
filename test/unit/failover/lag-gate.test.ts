import { lagGate } from '../../../lib/failover/lag-gate.js';

/** The lag gate's verdicts (pure): versions and seconds, from the sources or the leader key's last report. */
describe('lag gate (issue #25)', () => {
  const report = (metadataVersion: number, atSeconds: number) => ({
    holder: 'master-a',
    metadataVersion,
    at: atSeconds * 1000,
  });

  test('no limits: always ok, the lag still said', () => {
    const v = lagGate({ reached: 100, newest: 150 }, {});
    expect(v).toMatchObject({ ok: true, lagVersions: 50 });
  });

  test('versions: within the limit passes, over it refuses and says why', () => {
    expect(lagGate({ reached: 100, newest: 110 }, { maximumLagVersions: 10 }).ok).toBe(true);
    const v = lagGate({ reached: 100, newest: 111 }, { maximumLagVersions: 10 });
    expect(v.ok).toBe(false);
    expect(v.why).toBe('11 versions behind (maximumLagVersions 10): restore point 100, newest 111 by the sources');
  });

  test("the leader key's report counts when it saw more than any source (moosefs #151: the sources themselves are behind)", () => {
    const v = lagGate({ reached: 100, newest: 100, report: report(5000, 2000) }, { maximumLagVersions: 1000 });
    expect(v.ok).toBe(false);
    expect(v.newest).toEqual({ version: 5000, by: "the leader key's last report (master-a)" });
  });

  test('seconds: from the restore point to the newest line or report; unknown age with a seconds limit refuses', () => {
    const limits = { maximumLagSeconds: 60 };
    expect(lagGate({ reached: 100, reachedTimestamp: 1000, newest: 120, newestTimestamp: 1050 }, limits).ok).toBe(true);
    const late = lagGate({ reached: 100, reachedTimestamp: 1000, newest: 120, report: report(130, 1100) }, limits);
    expect(late).toMatchObject({ ok: false, lagSeconds: 100 });
    expect(lagGate({ reached: 100, newest: 120 }, limits).why).toMatch(
      /^20 versions behind and its age cannot be told/,
    );
    // Not behind at all: no age needed.
    expect(lagGate({ reached: 120, newest: 120 }, limits).ok).toBe(true);
  });
});
