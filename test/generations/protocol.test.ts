import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fs, constants as fsc, openSync, closeSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { askMaster, type NativeMasterInfo } from '../../lib/moosefs/protocol.js';
import { ProcessError, describeError } from '../../lib/core/errors.js';

/**
 * askMaster against a real master of every generation mfs-jobs serves, each started here on
 * 127.0.0.1 in the foreground on its own ports and DATA_PATH, and killed by PID afterwards.
 * Where an mfscli can read the master (3.0.117's own, 4.59.2's own), both must agree.
 */
const PREFIX = '/opt/mfs-jobs/moosefs';
const EMPTY_IMAGE = '/var/lib/mfs/metadata.mfs.empty';
const HOST = '127.0.0.1';

interface Ports {
  ml: number;
  cs: number;
  cl: number;
}

interface Generation {
  version: string;
  mfsmaster: string;
  /** What askMaster says: 1.5 masters do not send their version, only their answer size tells. */
  softwareVersion: string;
  /** MATOCL_INFO size measured from this generation. */
  answerBytes: number;
  config(dir: string, ports: Ports): Record<string, string | number>;
  /** Foreground; before 2.0 that is -d (-f there means "do not kill an old instance"). */
  args(configFile: string): string[];
  /** An mfscli that can read this master, and how to take the same facts from it. */
  mfscli?: { bin: string; read(port: number): Promise<CliView> };
}

interface CliView {
  softwareVersion: string;
  metadataVersion: number;
  metaid?: string;
}

function common(dir: string): Record<string, string> {
  return { WORKING_USER: 'root', WORKING_GROUP: 'root', DATA_PATH: path.join(dir, 'data') };
}

/** Before 1.6.5: clients on MATOCU_*, no metaloggers; the lock file must be ours, or it kills whoever holds it. */
function matocuConfig(dir: string, p: Ports): Record<string, string | number> {
  return {
    ...common(dir),
    LOCK_FILE: path.join(dir, 'mfsmaster.lock'),
    EXPORTS_FILENAME: path.join(dir, 'mfsexports.cfg'),
    MATOCS_LISTEN_HOST: HOST,
    MATOCS_LISTEN_PORT: p.cs,
    MATOCU_LISTEN_HOST: HOST,
    MATOCU_LISTEN_PORT: p.cl,
  };
}

function matoclConfig(dir: string, p: Ports): Record<string, string | number> {
  return {
    ...common(dir),
    EXPORTS_FILENAME: path.join(dir, 'mfsexports.cfg'),
    TOPOLOGY_FILENAME: path.join(dir, 'mfstopology.cfg'),
    MATOML_LISTEN_HOST: HOST,
    MATOML_LISTEN_PORT: p.ml,
    MATOCS_LISTEN_HOST: HOST,
    MATOCS_LISTEN_PORT: p.cs,
    MATOCL_LISTEN_HOST: HOST,
    MATOCL_LISTEN_PORT: p.cl,
  };
}

const MFSCLI_30 = '/usr/bin/mfscli';
const MFSCLI_4 = `${PREFIX}/4.59.2/bin/mfscli`;

const GENERATIONS: Generation[] = [
  {
    version: '1.5.12',
    mfsmaster: `${PREFIX}/1.5.12/sbin/mfsmaster`,
    softwareVersion: '1.5',
    answerBytes: 60,
    config: matocuConfig,
    args: (cfg) => ['-d', '-f', '-c', cfg],
  },
  {
    version: '1.6.4',
    mfsmaster: `${PREFIX}/1.6.4/sbin/mfsmaster`,
    softwareVersion: '1.6.4',
    answerBytes: 68,
    config: matocuConfig,
    args: (cfg) => ['-d', '-f', '-c', cfg],
  },
  {
    version: '1.6.27',
    mfsmaster: `${PREFIX}/1.6.27/sbin/mfsmaster`,
    softwareVersion: '1.6.27',
    answerBytes: 76,
    config: (dir, p) => ({ ...matoclConfig(dir, p), LOCK_FILE: path.join(dir, 'mfsmaster.lock') }),
    args: (cfg) => ['-d', '-c', cfg, 'start'],
  },
  {
    version: '3.0.117',
    mfsmaster: '/usr/sbin/mfsmaster',
    softwareVersion: '3.0.117',
    answerBytes: 149,
    config: matoclConfig,
    args: (cfg) => ['-f', '-c', cfg, 'start'],
    mfscli: { bin: MFSCLI_30, read: readMfscli30 },
  },
  {
    version: '4.59.2',
    mfsmaster: `${PREFIX}/4.59.2/sbin/mfsmaster`,
    softwareVersion: '4.59.2',
    answerBytes: 205,
    config: matoclConfig,
    args: (cfg) => ['-f', '-c', cfg, 'start'],
    mfscli: { bin: MFSCLI_4, read: readMfscli4 },
  },
];

// ---- mfscli, the reference where one can read the master ----

function run(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')}: ${err.message} ${stderr}`.trim()));
      else resolve(stdout);
    });
  });
}

/** 3.0: `metadata servers:	IP	VERSION	STATE	LOCALTIME	METAVERSION …` (version may hold spaces as thousands separators). */
async function readMfscli30(port: number): Promise<CliView> {
  const out = await run(MFSCLI_30, ['-H', HOST, '-P', String(port), '-SIM', '-p', '-s', '\t']);
  const f = out
    .split('\n')
    .find((l) => l.startsWith('metadata servers:'))
    ?.split('\t');
  if (!f || f[3] === 'DEAD') throw new Error(`mfscli 3.0 sees no working master: ${JSON.stringify(out)}`);
  return { softwareVersion: f[2]!, metadataVersion: Number(f[5]!.replace(/\s+/g, '')) };
}

/** 4.x: JSON; metadata_id is a 64-bit decimal that JSON.parse would round, so it is read from the text. */
async function readMfscli4(port: number): Promise<CliView> {
  const out = await run(MFSCLI_4, ['-H', HOST, '-P', String(port), '-SIM', '-j']);
  const m = (
    JSON.parse(out) as {
      dataset: { info: { masters: { version: string; state: string; metadata_version: number }[] } };
    }
  ).dataset.info.masters[0];
  const metaid = /"metadata_id":\s*(\d+)/.exec(out)?.[1];
  if (!m || m.state !== 'MASTER' || !metaid) throw new Error(`mfscli 4.x sees no working master: ${out.slice(0, 300)}`);
  return {
    softwareVersion: m.version,
    metadataVersion: m.metadata_version,
    metaid: BigInt(metaid).toString(16).toUpperCase().padStart(16, '0'),
  };
}

// ---- a lab master of one generation ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    if (!handedOut.has(port) && (await canListen(port))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in 20000-29999 on ${HOST}`);
}

/** A missing prefix fails the suite in one line naming the file; it never skips. */
async function requireFile(file: string, what: string, mode = fsc.X_OK): Promise<void> {
  await fs.access(file, mode).catch(() => {
    throw new Error(`missing ${mode === fsc.X_OK ? 'MooseFS binary' : 'file'} ${file} (${what})`);
  });
}

class LabMaster {
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private exited: Promise<void>;

  private constructor(
    readonly gen: Generation,
    readonly dir: string,
    readonly ports: Ports,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
      child.once('error', () => {
        this.exit = { code: null, signal: null };
        resolve();
      });
    });
  }

  get log(): string {
    return path.join(this.dir, 'mfsmaster.log');
  }

  /** A fresh DATA_PATH bootstrapped from metadata.mfs.empty, and the master started on free ports. */
  static async start(gen: Generation, dir: string): Promise<LabMaster> {
    const ports = { ml: await freePort(), cs: await freePort(), cl: await freePort() };
    await fs.mkdir(path.join(dir, 'data'), { recursive: true, mode: 0o700 });
    await fs.copyFile(EMPTY_IMAGE, path.join(dir, 'data', 'metadata.mfs'));
    await fs.writeFile(path.join(dir, 'mfsexports.cfg'), '*\t/\trw,alldirs,maproot=0\n');
    await fs.writeFile(path.join(dir, 'mfstopology.cfg'), '');
    const configFile = path.join(dir, 'mfsmaster.cfg');
    const config = Object.entries(gen.config(dir, ports)).map(([k, v]) => `${k} = ${v}`);
    await fs.writeFile(configFile, config.join('\n') + '\n');
    const log = openSync(path.join(dir, 'mfsmaster.log'), 'a');
    try {
      const child = spawn(gen.mfsmaster, gen.args(configFile), { stdio: ['ignore', log, log] });
      return new LabMaster(gen, dir, ports, child);
    } finally {
      closeSync(log);
    }
  }

  /** Ask until it answers; a master that exits first fails with the end of its log. */
  async serving(timeoutMs = 30_000): Promise<NativeMasterInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exit)
        throw new Error(
          `${this.gen.mfsmaster} exited (${this.exit.code ?? this.exit.signal}) before serving: ${await this.logTail()}`,
        );
      try {
        return await askMaster({ host: HOST, port: this.ports.cl, timeoutMs: 1000 });
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`${this.gen.mfsmaster} did not answer within ${timeoutMs} ms: ${describeError(err)}`, {
            cause: err,
          });
      }
      await sleep(100);
    }
  }

  async logTail(): Promise<string> {
    const text = await fs.readFile(this.log, 'utf8').catch(() => '');
    return text.trim().split('\n').slice(-4).join(' | ');
  }

  /** SIGTERM by PID (a clean stop writes metadata), SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (!this.exit && this.child.pid) {
      process.kill(this.child.pid, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const lingering = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 15_000)));
      const stillRunning = await Promise.race([this.exited.then(() => false), lingering]);
      clearTimeout(timer);
      if (stillRunning && !this.exit) {
        process.kill(this.child.pid, 'SIGKILL');
        await this.exited;
      }
    }
  }
}

// ---- scenarios ----

describe.each(GENERATIONS)('a MooseFS $version master asked over its client port', (gen) => {
  let dir: string | undefined;
  let master: LabMaster | undefined;
  let first: NativeMasterInfo;

  beforeAll(async () => {
    await requireFile(gen.mfsmaster, `mfsmaster ${gen.version}`);
    await requireFile(EMPTY_IMAGE, "the bootstrap image from Debian's moosefs-master", fsc.R_OK);
    if (gen.mfscli) await requireFile(gen.mfscli.bin, `mfscli that reads ${gen.version}`);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), `mfs-jobs-protocol-${gen.version}-`));
    master = await LabMaster.start(gen, dir);
    first = await master.serving();
  }, 60_000);

  afterAll(async () => {
    await master?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }, 30_000);

  test(`says it is ${gen.softwareVersion}, in a ${gen.answerBytes}-byte answer`, () => {
    expect(first.softwareVersion).toBe(gen.softwareVersion);
    expect(first.answerBytes).toBe(gen.answerBytes);
  });

  test('counts the fresh filesystem: the root directory and nothing else', () => {
    expect(first).toMatchObject({ fsObjects: 1, directories: 1, files: 0 });
  });

  if (gen.mfscli) {
    test('agrees with mfscli on version, metadata version and metaid', async () => {
      const cli = await untilReady(() => gen.mfscli!.read(master!.ports.cl));
      const info = await askMaster({ host: HOST, port: master!.ports.cl });
      expect(info.softwareVersion).toBe(cli.softwareVersion);
      expect(info.metadataVersion).toBe(cli.metadataVersion);
      expect(info.metaid).toBe(cli.metaid);
      expect(info.state).toBe('MASTER');
    });
  } else {
    test('exposes no metadata version and no metaid: this generation does not send them', () => {
      expect(first.metadataVersion).toBeUndefined();
      expect(first.metaid).toBeUndefined();
    });
  }
});

/** Right after start mfscli may list the master as DEAD for a moment. */
async function untilReady<T>(read: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

describe('askMaster where no master answers properly', () => {
  test('a refused port fails fast with one line naming host:port', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await askMaster({ host: HOST, port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect((err as Error).message).toBe(`master ${HOST}:${port}: connection refused`);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  /** A one-connection peer on a free port that does `behave` with each accepted socket. */
  async function peer(behave: (socket: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      behave(s);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
    return {
      port,
      close: () => {
        for (const s of sockets) s.destroy();
        return new Promise((resolve) => server.close(() => resolve()));
      },
    };
  }

  function packet(cmd: number, data: Buffer): Buffer {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(cmd, 0);
    header.writeUInt32BE(data.length, 4);
    return Buffer.concat([header, data]);
  }

  test('a peer that never answers times out at the bound', async () => {
    const p = await peer(() => undefined);
    try {
      const started = Date.now();
      await expect(askMaster({ host: HOST, port: p.port, timeoutMs: 300 })).rejects.toThrow(
        `master ${HOST}:${p.port}: no answer within 300 ms`,
      );
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await p.close();
    }
  });

  test('a peer that hangs up is "closed before answering"', async () => {
    const p = await peer((s) => s.once('data', () => s.end()));
    try {
      await expect(askMaster({ host: HOST, port: p.port })).rejects.toThrow(
        `master ${HOST}:${p.port}: closed the connection before answering`,
      );
    } finally {
      await p.close();
    }
  });

  test('keep-alives (ANTOAN_NOP) are skipped, another command is refused', async () => {
    const answer = Buffer.alloc(68);
    answer.writeUInt32BE((1 << 16) | (6 << 8) | 4, 0);
    const good = await peer((s) =>
      s.once('data', () =>
        s.write(Buffer.concat([packet(0, Buffer.alloc(0)), packet(0, Buffer.alloc(4)), packet(511, answer)])),
      ),
    );
    const wrong = await peer((s) => s.once('data', () => s.write(packet(401, Buffer.alloc(4)))));
    try {
      expect((await askMaster({ host: HOST, port: good.port })).softwareVersion).toBe('1.6.4');
      await expect(askMaster({ host: HOST, port: wrong.port })).rejects.toThrow(
        `master ${HOST}:${wrong.port}: unexpected command 401`,
      );
    } finally {
      await good.close();
      await wrong.close();
    }
  });

  test('an answer announced over 64 KiB is refused before it is read', async () => {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(511, 0);
    header.writeUInt32BE(64 * 1024 + 1, 4);
    const p = await peer((s) => s.once('data', () => s.write(header)));
    try {
      await expect(askMaster({ host: HOST, port: p.port })).rejects.toThrow(
        /packet of 65537 bytes \(command 511\) is over the 64 KiB bound/,
      );
    } finally {
      await p.close();
    }
  });

  test('an abort ends the exchange at once', async () => {
    const p = await peer(() => undefined);
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      const started = Date.now();
      await expect(askMaster({ host: HOST, port: p.port, signal: ac.signal })).rejects.toThrow(
        `master ${HOST}:${p.port}: aborted`,
      );
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await p.close();
    }
  });
});
