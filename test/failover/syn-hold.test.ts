import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { createLogger } from '../../lib/core/logger.js';
import { holdElementScript, holdTableScript, SynHold } from '../../lib/failover/syn-hold.js';
import { sleep, waitFor } from '../lab/proc.js';

/**
 * The SYN hold (lib/failover/syn-hold.ts) with the real nftables, in a network namespace this test makes:
 * a client connecting to the VIP while nothing listens is neither refused nor lost — its kernel sends the
 * SYN again and it connects once the master listens; without the hold it is refused at once. The hold
 * ends when the master serves, when the VIP has been here too long without one, and by itself when the
 * process that keeps it dies (kill -9).
 */

const NS = `mfsjh-${process.pid}`;
const NETNS = `/run/netns/${NS}`;
const VIP = '10.93.0.100';
const PORT = 9421;
const nft = ['nsenter', `--net=${NETNS}`, 'nft'];
const log = createLogger({ level: 'error', json: true });
const children: ChildProcess[] = [];

async function run(cmd: string, args: string[]): Promise<string> {
  const res = await execCapture(cmd, args, { timeoutMs: 15_000 });
  if (res.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(res.stderr || res.stdout).trim()}`);
  return res.stdout;
}

/** A node program inside the namespace; its stdout lines come back. */
function inNs(code: string): { child: ChildProcess; lines: string[] } {
  const child = spawn('nsenter', [`--net=${NETNS}`, process.execPath, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
  return { child, lines };
}

/** Connect to VIP:PORT from inside the namespace: `connected <ms>`, `refused <ms>` or (after 4 s) `pending`. */
async function connectAttempt(): Promise<{ outcome: string; ms: number }> {
  const { child, lines } =
    inNs(`import net from 'node:net'; const t = Date.now(); const s = net.connect(${PORT}, '${VIP}');
s.on('connect', () => { console.log('connected ' + (Date.now() - t)); process.exit(0); });
s.on('error', (e) => { console.log((e.code === 'ECONNREFUSED' ? 'refused ' : e.code + ' ') + (Date.now() - t)); process.exit(0); });
setTimeout(() => { console.log('pending 4000'); process.exit(0); }, 4000);`);
  await new Promise((resolve) => child.once('exit', resolve));
  const [outcome, ms] = (lines[0] ?? 'none 0').split(' ');
  return { outcome: outcome!, ms: Number(ms) };
}

function listenAfter(ms: number): { child: ChildProcess; lines: string[] } {
  return inNs(
    `import net from 'node:net'; setTimeout(() => net.createServer((c) => c.end()).listen(${PORT}, '0.0.0.0', () => console.log('listening')), ${ms});`,
  );
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  await exited;
}

async function held(): Promise<string> {
  return run('nsenter', [`--net=${NETNS}`, 'nft', 'list', 'set', 'inet', 'mfs_jobs', 'held4']).catch(
    (e: Error) => e.message,
  );
}

beforeAll(async () => {
  await run('ip', ['netns', 'add', NS]);
  await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', NS, 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
});

afterAll(async () => {
  for (const c of children) await stop(c);
  await run('ip', ['netns', 'del', NS]).catch(() => undefined);
});

test('the nft script: a set per family, SYNs only, the master ports; an element with its own timeout', () => {
  expect(holdTableScript([9421, 9419, 9420, 9421])).toContain(
    'tcp dport { 9419, 9420, 9421 } tcp flags & (syn | ack) == syn drop;',
  );
  expect(holdElementScript('10.0.0.1', 2500)).toBe(
    'flush set inet mfs_jobs held4; add element inet mfs_jobs held4 { 10.0.0.1 timeout 3s };',
  );
  expect(holdElementScript('fd00::1', undefined)).toBe('flush set inet mfs_jobs held6;');
});

test('held: a client reaching the VIP before the master listens connects on its retransmitted SYN; released: refused at once', async () => {
  let serving = false;
  const hold = new SynHold({
    vip: VIP,
    ports: [9419, 9420, PORT],
    nft,
    serving: async () => serving,
    vipHere: () => true,
    refreshMs: 200,
    log,
  });
  expect(await hold.start()).toBe(true);
  try {
    await waitFor('the VIP to be held', async () => hold.holding);
    expect(await held()).toContain(VIP);
    // Nothing listens yet: without the hold this is ECONNREFUSED within a millisecond. The "master"
    // listens 300 ms later, and — as promote does once its mfsmaster has started — the hold is released.
    const listener = listenAfter(300);
    const attempting = connectAttempt();
    try {
      await waitFor('the listener', async () => listener.lines.includes('listening'), 5_000, 20);
      await hold.release();
      const attempt = await attempting;
      expect(attempt.outcome).toBe('connected');
      // Its first SYN was dropped (not refused); a retransmission found the listener.
      expect(attempt.ms).toBeGreaterThanOrEqual(900);
    } finally {
      await stop(listener.child);
    }
    // The master serves: the hold is released, and a closed port refuses again at once.
    serving = true;
    await waitFor('the hold to be released', async () => !hold.holding);
    expect(await held()).not.toContain(VIP);
    const refused = await connectAttempt();
    expect(refused.outcome).toBe('refused');
    expect(refused.ms).toBeLessThan(500);
  } finally {
    await hold.close();
  }
  // close() removes the table.
  expect(await held()).toMatch(/No such file or directory|does not exist/);
}, 30_000);

test('a VIP held here too long without a master: the hold gives up (not while a promotion runs), clients are refused rather than left hanging', async () => {
  const hold = new SynHold({
    vip: VIP,
    ports: [PORT],
    nft,
    serving: async () => false,
    vipHere: () => true,
    refreshMs: 100,
    giveUpMs: 800,
    log,
  });
  expect(await hold.start()).toBe(true);
  try {
    await waitFor('the VIP to be held', async () => hold.holding);
    // A long restore: past the give-up time, still held while promote claims it.
    hold.claim();
    await sleep(1_500);
    expect(hold.holding).toBe(true);
    hold.unclaim();
    await waitFor('the hold to give up', async () => !hold.holding, 5_000);
    expect((await connectAttempt()).outcome).toBe('refused');
  } finally {
    await hold.close();
  }
}, 30_000);

test('the process keeping the hold is killed (kill -9): the element expires by itself', async () => {
  const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
  try {
    // A daemon stand-in in the namespace: it holds with a 2 s element timeout and refreshes every 500 ms.
    const keeper =
      inNs(`import { SynHold } from '${path.join(dist, 'lib/failover/syn-hold.js')}'; import { silentLogger } from '${path.join(dist, 'lib/core/logger.js')}';
const h = new SynHold({ vip: '${VIP}', ports: [${PORT}], serving: async () => false, vipHere: () => true, refreshMs: 500, timeoutMs: 2000, log: silentLogger() });
await h.start(); setInterval(() => h.holding && console.log('holding'), 100);`);
    await waitFor('the keeper to hold', async () => keeper.lines.includes('holding'), 10_000);
    expect((await connectAttempt()).outcome).toBe('pending');
    await stop(keeper.child);
    const killedAt = Date.now();
    await waitFor('the element to expire', async () => !(await held()).includes(VIP), 5_000, 100);
    expect(Date.now() - killedAt).toBeLessThanOrEqual(2_500);
    await sleep(50);
    expect((await connectAttempt()).outcome).toBe('refused');
  } finally {
    await run('nsenter', [`--net=${NETNS}`, 'nft', 'delete', 'table', 'inet', 'mfs_jobs']).catch(() => undefined);
  }
}, 30_000);
