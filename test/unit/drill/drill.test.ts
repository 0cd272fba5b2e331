import { promises as fs } from 'node:fs';
import net from 'node:net';
import { drillVerdict, type DrillFacts } from '../../../lib/drill/verdict.js';
import { chooseImage } from '../../../lib/restore/restorepoint.js';
import type { ImageCandidate } from '../../../lib/moosefs/inventory.js';
import { restoredImageName, restoreFrom } from '../../../lib/moosefs/metadata.js';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../../lib/core/config.js';
import { pickPorts, productionPorts } from '../../../lib/moosefs/scratchmaster.js';
import { portIsFree } from '../../../lib/core/net.js';
import { isWithin } from '../../../lib/core/paths.js';

const counts = { fsObjects: 15, directories: 4, files: 11 };
const facts = (over: Partial<DrillFacts> = {}): DrillFacts => ({
  expectedVersion: 28,
  restoredVersion: 28,
  restored: counts,
  live: { name: 'm1', version: 28, counts },
  rtoSeconds: 1.5,
  restorePointAgeSeconds: 600,
  ...over,
});
const thresholds = { warnRpoSeconds: 3600 };

describe('drill verdict', () => {
  test("restored at the chain's newest version and equal to the live master: OK, nothing lost", () => {
    expect(drillVerdict(facts(), thresholds)).toEqual({ status: 'OK', problems: [], rpoVersions: 0, rpoSeconds: 0 });
  });

  test('a version other than the chain promised is CRITICAL', () => {
    const v = drillVerdict(facts({ restoredVersion: 27 }), thresholds);
    expect(v.status).toBe('CRITICAL');
    expect(v.problems[0]).toBe("restored metadata version 27, but the chain's newest version is 28");
  });

  test('damaged changelog lines the restore left out are a WARNING, even when the versions agree', () => {
    const v = drillVerdict(facts({ damage: ['changelog_ml.0.mfs:1: unparsable line: "junk"'] }), thresholds);
    expect(v.status).toBe('WARNING');
    expect(v.problems).toEqual([
      'damaged changelog changelog_ml.0.mfs:1: unparsable line: "junk": mfsmaster -a left those lines out',
    ]);
  });

  test('same version but different counts than the live master is CRITICAL', () => {
    const v = drillVerdict(facts({ restored: { ...counts, files: 10 } }), thresholds);
    expect(v.status).toBe('CRITICAL');
    expect(v.problems[0]).toContain('files 10 vs 11');
  });

  test("a live master ahead: RPO in versions, and the restore point's age in seconds", () => {
    const v = drillVerdict(facts({ live: { name: 'm1', version: 40, counts } }), thresholds);
    expect(v).toMatchObject({ status: 'OK', rpoVersions: 12, rpoSeconds: 600 });
    expect(
      drillVerdict(facts({ live: { name: 'm1', version: 40, counts } }), { warnRpoSeconds: 3600, warnRpoVersions: 10 })
        .status,
    ).toBe('WARNING');
    expect(
      drillVerdict(facts({ live: { name: 'm1', version: 40, counts }, restorePointAgeSeconds: 7200 }), thresholds)
        .problems,
    ).toEqual(['RPO 7200 s exceeds 3600 s (jobs.drill.warnRpoSeconds)']);
  });

  test('no live master: RPO in versions unknown, the age is the worst case', () => {
    expect(drillVerdict(facts({ live: undefined, restorePointAgeSeconds: 10 }), thresholds)).toEqual({
      status: 'OK',
      problems: [],
      rpoVersions: undefined,
      rpoSeconds: 10,
    });
  });

  test('a restore point ahead of the live master is a WARNING; a slow RTO too', () => {
    expect(drillVerdict(facts({ live: { name: 'm1', version: 20, counts } }), thresholds).status).toBe('WARNING');
    expect(drillVerdict(facts({ rtoSeconds: 90 }), { ...thresholds, warnRtoSeconds: 60 }).problems).toEqual([
      'RTO 90.0 s exceeds 60 s (jobs.drill.warnRtoSeconds)',
    ]);
  });
});

describe('restore point selection', () => {
  const entry = (name: string, mtimeMs = 0) => ({ name, size: 100, mtimeMs, isFile: true });
  const header = (version: number, empty = false) => ({
    magic: empty ? 'MFSM NEW' : 'MFSM 2.0',
    version,
    metaid: 'AB',
    empty,
  });

  test("mfsmaster -a's choice: the highest valid version; MFSM NEW only when nothing else is valid", () => {
    const c: ImageCandidate[] = [
      { entry: entry('metadata_ml.mfs.back.1'), path: 'p', header: header(10) },
      { entry: entry('metadata_ml.tmp'), path: 'p', error: 'no EOF marker' },
      { entry: entry('metadata_ml.mfs.back'), path: 'p', header: header(20) },
    ];
    expect(chooseImage(c)?.entry.name).toBe('metadata_ml.mfs.back');
    expect(
      chooseImage([
        { entry: entry('metadata_ml.tmp'), path: 'p', header: header(0, true) },
        { entry: entry('x'), path: 'p', error: 'bad' },
      ])?.entry.name,
    ).toBe('metadata_ml.tmp');
    expect(chooseImage([{ entry: entry('x'), path: 'p', error: 'bad' }])).toBeUndefined();
  });

  test("a metalogger's metadata_ml.tmp is restored under an image name; MFSM NEW rolls forward from 1", () => {
    expect(restoredImageName('metadata_ml.tmp')).toBe('metadata_ml.mfs.back');
    expect(restoredImageName('metadata.mfs.back')).toBe('metadata.mfs.back');
    expect(restoreFrom(header(0, true))).toBe(1);
    expect(restoreFrom(header(42))).toBe(42);
  });
});

describe('scratch master safety', () => {
  test('path containment', () => {
    expect(isWithin('/var/lib/mfs/drill', '/var/lib/mfs')).toBe(true);
    expect(isWithin('/var/lib/mfs', '/var/lib/mfs/')).toBe(true);
    expect(isWithin('/var/lib/mfs-jobs/drill', '/var/lib/mfs')).toBe(false);
  });

  test("a 1.x standby's client port (MATOCU_LISTEN_PORT) is a production port a drill never takes", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-ports-'));
    try {
      const masterConfig = path.join(dir, 'mfsmaster.cfg');
      await fs.writeFile(
        masterConfig,
        'DATA_PATH = /var/lib/mfs\nMATOCS_LISTEN_PORT = 9520\nMATOCU_LISTEN_PORT = 9521\n',
      );
      const config = parseConfig({ standby: { dataPath: '/var/lib/mfs', masterConfig } }, 'c.yaml');
      const ports = await productionPorts(config);
      expect([9520, 9521].filter((p) => !ports.has(p))).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  test('auto ports are free, distinct and never reserved; fixed ones are checked on a real socket', async () => {
    const ports = await pickPorts({ matoml: 'auto', matocs: 'auto', matocl: 'auto' }, new Set([9419, 9420, 9421]), 'k');
    expect(new Set(Object.values(ports)).size).toBe(3);
    // Below the kernel's ephemeral range, where no outgoing connection can take them before mfsmaster binds.
    const ephemeralStart = Number(
      (await fs.readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/)[0],
    );
    for (const p of Object.values(ports)) {
      expect([9419, 9420, 9421]).not.toContain(p);
      expect(p).toBeLessThan(ephemeralStart);
      expect(await portIsFree('127.0.0.1', p)).toBe(true);
    }
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const busy = (holder.address() as net.AddressInfo).port;
    try {
      await expect(
        pickPorts({ matoml: 'auto', matocs: busy, matocl: 'auto' }, new Set(), 'jobs.drill.ports'),
      ).rejects.toThrow(`jobs.drill.ports.matocs: port ${busy} on 127.0.0.1 is busy`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
    await expect(pickPorts({ matoml: 9421, matocs: 'auto', matocl: 'auto' }, new Set([9421]), 'p')).rejects.toThrow(
      'p.matoml: port 9421 is a production master port',
    );
    await expect(pickPorts({ matoml: busy, matocs: busy, matocl: 'auto' }, new Set(), 'p')).rejects.toThrow(
      `p.matocs: port ${busy} is used twice`,
    );
  });
});
