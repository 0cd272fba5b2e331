import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig, type Config } from '../../../lib/core/config.js';
import type { FenceAnswer } from '../../../lib/failover/fence.js';
import {
  checkFault,
  faultRecordFile,
  holdFault,
  parseFaultWatchRequest,
  readFaultRecord,
  trackFileValue,
} from '../../../lib/failover/keepalived-fault.js';

/**
 * keepalived's FAULT on a refusal (issue #24): the record in state, the track file as its projection, and
 * what releases it — the old master no longer accepting connections (a real listener on loopback here,
 * closed; the real detached watcher), the operator's rm, check-standby. keepalived itself: vip-keepalived.
 */

let dir: string;
let server: net.Server;
let port: number;
const watchers: number[] = [];

const configFor = (trackFile: string, p = port): Config =>
  parseConfig({
    stateDir: path.join(dir, 'state'),
    masters: [{ name: 'master-a', host: '127.0.0.1', cliPort: p }],
    standby: { dataPath: path.join(dir, 'data'), keepalivedTrackFile: trackFile },
  });

const alive = (p = port): FenceAnswer[] => [
  {
    name: 'master-a',
    address: `127.0.0.1:${p}`,
    reachability: 'listening',
    detail: 'answers at metadata version 7',
    ms: 1,
  },
];

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-kfault-'));
  await fs.mkdir(path.join(dir, 'state'), { mode: 0o700 });
  server = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterEach(async () => {
  for (const pid of watchers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await fs.rm(dir, { recursive: true, force: true });
});

describe("keepalived's FAULT on a refused promotion", () => {
  test('a refusal records why and writes 1; the watcher releases it (0, record gone) once the old master stops accepting', async () => {
    const trackFile = path.join(dir, 'state', 'keepalived-fault');
    const config = configFor(trackFile);
    const held = await holdFault(config, config.standby!, alive(), { timeoutMs: 1000 });
    if (held.watcher) watchers.push(held.watcher);
    expect(held.note).toBe(`; keepalived held in FAULT (${trackFile}) until master-a stop(s) answering`);
    expect(held.watcher).toBeGreaterThan(0);
    expect(await trackFileValue(trackFile)).toBe(1);
    expect(await fs.readFile(trackFile, 'utf8')).toMatch(/^1\n# \S+ promote refused: master-a \(127\.0\.0\.1:\d+\)/);
    expect((await fs.stat(trackFile)).mode & 0o777).toBe(0o600);
    const record = await readFaultRecord(config.stateDir);
    expect(record?.masters).toEqual([{ name: 'master-a', host: '127.0.0.1', port }]);

    // While master-a accepts: check-standby says so, a WARNING naming the reason and how to release it.
    const check = await checkFault(config, config.standby!, { timeoutMs: 1000 });
    expect(check.held).toBe(1);
    expect(check.findings).toEqual([
      {
        status: 'WARNING',
        setting: 'standby.keepalivedTrackFile',
        text: expect.stringMatching(
          /^keepalived held in FAULT since \S+ by .*keepalived-fault \(promote refused: master-a .*\): this standby takes the VIP again once master-a stop\(s\) answering, or now with rm /,
        ),
      },
    ]);

    // master-a gone (nothing listens on its port): the watcher releases keepalived within a second or two.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    server = net.createServer();
    await until('the watcher to release the FAULT', async () => (await trackFileValue(trackFile)) === 0);
    expect(await fs.readFile(trackFile, 'utf8')).toMatch(/^0\n# \S+ released: master-a no longer answer\(s\)\n$/);
    await until('the record to go', async () => (await readFaultRecord(config.stateDir)) === undefined);
    const log = await fs.readFile(path.join(config.stateDir, 'keepalived-fault.log'), 'utf8');
    expect(log).toContain('keepalived FAULT released: master-a no longer answer(s)');
  }, 30_000);

  test('the operator releases it with rm; a newer refusal retires the older watcher', async () => {
    const trackFile = path.join(dir, 'state', 'keepalived-fault');
    const config = configFor(trackFile);
    const first = await holdFault(config, config.standby!, alive(), { timeoutMs: 1000 });
    watchers.push(first.watcher!);
    await new Promise((r) => setTimeout(r, 5));
    const second = await holdFault(config, config.standby!, alive(), { timeoutMs: 1000 });
    watchers.push(second.watcher!);
    const gone = (pid: number) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    await until('the first watcher to stop (its refusal replaced)', async () => gone(first.watcher!));
    expect(gone(second.watcher!)).toBe(false);
    await fs.rm(trackFile);
    await until('the second watcher to drop the record', async () => !(await readFaultRecord(config.stateDir)));
    await until('the second watcher to stop', async () => gone(second.watcher!));
    expect(await fs.stat(trackFile).catch(() => undefined)).toBeUndefined();
  }, 30_000);

  test('check-standby: a FAULT no refusal explains is released; one whose master is gone is released; rm drops the record', async () => {
    const trackFile = path.join(dir, 'state', 'keepalived-fault');
    await fs.writeFile(trackFile, '1\n');
    const config = configFor(trackFile);
    const stray = await checkFault(config, config.standby!, { timeoutMs: 1000 });
    expect(stray.findings).toEqual([
      {
        status: 'WARNING',
        setting: 'standby.keepalivedTrackFile',
        text: `${trackFile} held keepalived in FAULT (value 1) with no refusal recorded: released`,
      },
    ]);
    expect(await trackFileValue(trackFile)).toBe(0);

    // A record whose master is gone (its watcher died with a reboot): released by check-standby.
    const closed = port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    server = net.createServer();
    const record = {
      since: new Date().toISOString(),
      trackFile,
      reason: 'promote refused: master-a answers',
      masters: [{ name: 'master-a', host: '127.0.0.1', port: closed }],
    };
    await fs.writeFile(faultRecordFile(config.stateDir), JSON.stringify(record));
    await fs.writeFile(trackFile, '1\n');
    const released = await checkFault(config, config.standby!, { timeoutMs: 1000 });
    expect(released.findings).toEqual([]);
    expect(released.notes).toEqual([expect.stringMatching(/^keepalived FAULT released: master-a no longer answer/)]);
    expect(await trackFileValue(trackFile)).toBe(0);
    expect(await readFaultRecord(config.stateDir)).toBeUndefined();

    // The operator's rm: the record goes too, nothing written back.
    await fs.writeFile(faultRecordFile(config.stateDir), JSON.stringify(record));
    await fs.rm(trackFile);
    const cleared = await checkFault(config, config.standby!, { timeoutMs: 1000 });
    expect(cleared.notes).toEqual([expect.stringContaining('cleared by the operator')]);
    expect(await readFaultRecord(config.stateDir)).toBeUndefined();
    expect(await fs.stat(trackFile).catch(() => undefined)).toBeUndefined();
  }, 30_000);

  test('a directory another user can change: nothing written, CRITICAL; a missing one: WARNING (keepalived would ignore it)', async () => {
    const open = path.join(dir, 'open');
    await fs.mkdir(open, { mode: 0o775 });
    await fs.chmod(open, 0o775);
    const trackFile = path.join(open, 'keepalived-fault');
    const config = configFor(trackFile);
    const held = await holdFault(config, config.standby!, alive(), { timeoutMs: 1000 });
    expect(held.note).toBe(
      `; keepalived not held in FAULT: standby.keepalivedTrackFile: track file ${open} is group-writable (mode 0775): another user could hold keepalived in FAULT`,
    );
    expect(held.watcher).toBeUndefined();
    expect(await fs.readdir(open)).toEqual([]);
    expect(await readFaultRecord(config.stateDir)).toBeUndefined();
    const check = await checkFault(config, config.standby!, { timeoutMs: 1000 });
    expect(check.findings.map((f) => f.status)).toEqual(['CRITICAL']);

    const missing = configFor(path.join(dir, 'nowhere', 'keepalived-fault'));
    const found = await checkFault(missing, missing.standby!, { timeoutMs: 1000 });
    expect(found.findings).toEqual([
      {
        status: 'WARNING',
        setting: 'standby.keepalivedTrackFile',
        text: expect.stringContaining(`track file directory ${path.join(dir, 'nowhere')} does not exist`),
      },
    ]);
  });

  test("the track file read as keepalived reads it; the watcher's request and the setting validated", async () => {
    const f = path.join(dir, 'v');
    for (const [text, value] of [
      ['1\n# why\n', 1],
      ['  -3\n', -3],
      ['abc\n', 0],
      ['', 0],
    ] as const) {
      await fs.writeFile(f, text);
      expect(await trackFileValue(f)).toBe(value);
    }
    expect(await trackFileValue(path.join(dir, 'none'))).toBe(0);

    const req = { stateDir: '/var/lib/mfs-jobs', since: '2027-01-01T00:00:00.000Z', intervalMs: 1000, timeoutMs: 2000 };
    expect(parseFaultWatchRequest(JSON.stringify(req))).toEqual(req);
    for (const bad of [
      { ...req, stateDir: 'rel' },
      { ...req, intervalMs: 0 },
      { ...req, since: 1 },
    ]) {
      expect(() => parseFaultWatchRequest(JSON.stringify(bad))).toThrow('not a keepalived fault watch request');
    }
    expect(() =>
      parseConfig({ standby: { dataPath: '/var/lib/mfs', keepalivedTrackFile: 'keepalived-fault' } }, 'c.yaml'),
    ).toThrow('c.yaml: standby.keepalivedTrackFile: expected an absolute path');
  });
});
