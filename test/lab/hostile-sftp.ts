import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { Attributes, Connection, SFTPWrapper } from 'ssh2';
import { keygen } from './sshd.js';

const { Server, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

/**
 * How one file of the hostile server misbehaves. By default it is honest: the listing, stat and the
 * reads all agree on `content`.
 */
export interface HostileFile {
  /** The bytes reads deliver first. */
  content?: Buffer;
  /** Bytes the reads deliver in all (filler after `content`); Infinity: the file never ends. */
  readSize?: number;
  /** What stat/lstat/fstat announce (default: readSize, or listedSize for an endless file). */
  statSize?: number;
  /** What readdir announces (default: statSize). */
  listedSize?: number;
  /** Each READ is answered with a single byte after this many ms: the slow drip. */
  dripMs?: number;
  /** Opening the file makes it this many bytes longer, for reads and every later stat. */
  growsOnOpen?: number;
}

/** A directory listing that never ends: every READDIR answered with new names, never EOF. */
export interface EndlessReaddir {
  namesPerAnswer: number;
  nameBytes: number;
}

interface Live {
  spec: HostileFile;
  readSize: number;
  statSize: number;
  listedSize: number;
  /** Bytes handed to clients in READ answers. */
  served: number;
}

const FILLER = 0x78; // 'x'
const MTIME = 1795600000;

function live(spec: HostileFile): Live {
  const contentSize = spec.content?.length ?? 0;
  const readSize = spec.readSize ?? contentSize;
  const statSize = spec.statSize ?? (Number.isFinite(readSize) ? readSize : (spec.listedSize ?? contentSize));
  return { spec, readSize, statSize, listedSize: spec.listedSize ?? statSize, served: 0 };
}

const fileAttrs = (size: number): Attributes => ({ mode: 0o100644, uid: 0, gid: 0, size, atime: MTIME, mtime: MTIME });
const dirAttrs: Attributes = { mode: 0o040755, uid: 0, gid: 0, size: 4096, atime: MTIME, mtime: MTIME };

/**
 * An SFTP server (ssh2's Server API) that lies: listings smaller than the content, files that never
 * end, a byte a second, names with '/', '..' or control characters, files that grow between stat
 * and read. Real SSH: its host key is generated here and written to a known_hosts file, the client
 * authenticates with a generated key, so mfs-jobs talks to it with host key checking on.
 * It serves one directory, `dataPath`, whose entries are the keys of `files` (verbatim, hostile or not).
 */
export class HostileSftp {
  /** Every path a client opened (files and directories), in order. */
  readonly opened: string[] = [];
  /** Every STAT and LSTAT request (`STAT /path`), in order: round trips a client spent on metadata. */
  readonly stats: string[] = [];
  /** READDIR requests answered. */
  readdirs = 0;
  private readonly files = new Map<string, Live>();
  private readonly clients = new Set<Connection>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    readonly dir: string,
    readonly dataPath: string,
    readonly host: string,
    readonly port: number,
    readonly clientKey: string,
    readonly knownHosts: string,
    private readonly server: InstanceType<typeof Server>,
    files: Record<string, HostileFile>,
    private readonly endless?: EndlessReaddir,
  ) {
    for (const [name, spec] of Object.entries(files)) this.files.set(name, live(spec));
  }

  static async start(
    dir: string,
    files: Record<string, HostileFile>,
    dataPath = '/hostile/data',
    o: { endlessReaddir?: EndlessReaddir } = {},
  ): Promise<HostileSftp> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // OpenSSH's ssh-keygen, not ssh2's generateKeyPairSync: that one strips a leading zero byte of
    // an ed25519 public key, so about one key in 256 does not parse (mscdex/ssh2#1513).
    const hostKey = path.join(dir, 'host_ed25519');
    const clientKey = path.join(dir, 'id_ed25519');
    await keygen(hostKey, 'hostile-sftp-host');
    await keygen(clientKey, 'hostile-sftp-client');
    const hostKeys = {
      private: await fs.readFile(hostKey, 'utf8'),
      public: await fs.readFile(`${hostKey}.pub`, 'utf8'),
    };
    const allowed = utils.parseKey(await fs.readFile(`${clientKey}.pub`, 'utf8'));
    if (allowed instanceof Error) throw allowed;
    const allowedKey = Array.isArray(allowed) ? allowed[0]! : allowed;
    let self: HostileSftp | undefined;
    const server = new Server({ hostKeys: [hostKeys.private] }, (client) => self!.accept(client, allowedKey));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const knownHosts = path.join(dir, 'known_hosts');
    const hostPub = hostKeys.public.trim().split(' ').slice(0, 2).join(' ');
    await fs.writeFile(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`, { mode: 0o600 });
    self = new HostileSftp(dir, dataPath, '127.0.0.1', port, clientKey, knownHosts, server, files, o.endlessReaddir);
    return self;
  }

  /** Bytes served so far from one file's reads. */
  served(name: string): number {
    return this.files.get(name)?.served ?? 0;
  }

  /** An mfs-jobs `ssh:` block that reaches this server. */
  sshConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      port: this.port,
      user: 'root',
      privateKey: this.clientKey,
      knownHosts: this.knownHosts,
      connectTimeoutSeconds: 5,
      ...extra,
    };
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.clients) c.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Connection, allowedKey: ReturnType<typeof utils.parseKey> & object): void {
    this.clients.add(client);
    client.on('close', () => this.clients.delete(client));
    client.on('error', () => undefined);
    const key = allowedKey as {
      type: string;
      getPublicSSH(): Buffer;
      verify(data: Buffer, sig: Buffer, hash?: string): boolean | Error;
    };
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      if (ctx.key.algo !== key.type || !ctx.key.data.equals(key.getPublicSSH())) return ctx.reject(['publickey']);
      if (ctx.signature && key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true)
        return ctx.reject(['publickey']);
      ctx.accept();
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('sftp', (acceptSftp) => this.serve(acceptSftp()));
      });
    });
  }

  /** The file a path names: `dataPath/<key>`, where the key may itself hold '/' (a hostile name). */
  private lookup(p: string): Live | undefined {
    const prefix = `${this.dataPath}/`;
    return p.startsWith(prefix) ? this.files.get(p.slice(prefix.length)) : undefined;
  }

  private serve(sftp: SFTPWrapper): void {
    const handles = new Map<number, { file?: Live; dir?: boolean; listed?: boolean }>();
    let next = 0;
    const handleOf = (h: Buffer) => (h.length === 4 ? handles.get(h.readUInt32BE(0)) : undefined);
    const stat = (reqid: number, p: string) => {
      if (p === this.dataPath || this.dataPath.startsWith(`${p}/`) || p === '/') return sftp.attrs(reqid, dirAttrs);
      const f = this.lookup(p);
      if (!f) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      sftp.attrs(reqid, fileAttrs(f.statSize));
    };
    sftp.on('REALPATH', (reqid, p) => {
      const abs = path.posix.resolve('/', p === '.' ? '/' : p);
      sftp.name(reqid, [{ filename: abs, longname: abs, attrs: dirAttrs }]);
    });
    sftp.on('STAT', (reqid, p) => (this.stats.push(`STAT ${p}`), stat(reqid, p)));
    sftp.on('LSTAT', (reqid, p) => (this.stats.push(`LSTAT ${p}`), stat(reqid, p)));
    sftp.on('OPENDIR', (reqid, p) => {
      this.opened.push(p);
      if (p !== this.dataPath) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(next);
      handles.set(next++, { dir: true });
      sftp.handle(reqid, h);
    });
    sftp.on('READDIR', (reqid, h) => {
      const d = handleOf(h);
      if (!d?.dir) return sftp.status(reqid, STATUS_CODE.FAILURE);
      this.readdirs++;
      if (this.endless) {
        const { namesPerAnswer, nameBytes } = this.endless;
        const pad = 'n'.repeat(Math.max(1, nameBytes - 16));
        const names = Array.from({ length: namesPerAnswer }, (_, i) => `${pad}-${this.readdirs}-${i}`);
        return sftp.name(
          reqid,
          names.map((name) => ({
            filename: name,
            longname: `-rw-r--r--    1 root     root     1 Nov 30 12:00 ${name}`,
            attrs: fileAttrs(1),
          })),
        );
      }
      if (d.listed) return sftp.status(reqid, STATUS_CODE.EOF);
      d.listed = true;
      sftp.name(
        reqid,
        [...this.files].map(([name, f]) => ({
          filename: name,
          longname: `-rw-r--r--    1 root     root     ${f.listedSize} Nov 30 12:00 ${name}`,
          attrs: fileAttrs(f.listedSize),
        })),
      );
    });
    sftp.on('OPEN', (reqid, p) => {
      this.opened.push(p);
      const f = this.lookup(p);
      if (!f) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      if (f.spec.growsOnOpen) {
        f.readSize += f.spec.growsOnOpen;
        f.statSize += f.spec.growsOnOpen;
      }
      const h = Buffer.alloc(4);
      h.writeUInt32BE(next);
      handles.set(next++, { file: f });
      sftp.handle(reqid, h);
    });
    sftp.on('FSTAT', (reqid, h) => {
      const f = handleOf(h)?.file;
      if (!f) return sftp.status(reqid, STATUS_CODE.FAILURE);
      sftp.attrs(reqid, fileAttrs(f.statSize));
    });
    sftp.on('READ', (reqid, h, offset, length) => {
      const f = handleOf(h)?.file;
      if (!f) return sftp.status(reqid, STATUS_CODE.FAILURE);
      const answer = () => {
        if (offset >= f.readSize) return sftp.status(reqid, STATUS_CODE.EOF);
        const n = Math.min(f.spec.dripMs ? 1 : length, f.readSize - offset, 1 << 18);
        const data = Buffer.alloc(n, FILLER);
        const content = f.spec.content;
        if (content && offset < content.length) content.copy(data, 0, offset, Math.min(content.length, offset + n));
        f.served += n;
        sftp.data(reqid, data);
      };
      if (!f.spec.dripMs) return answer();
      const t = setTimeout(() => {
        this.timers.delete(t);
        answer();
      }, f.spec.dripMs);
      this.timers.add(t);
    });
    sftp.on('CLOSE', (reqid, h) => {
      if (h.length === 4) handles.delete(h.readUInt32BE(0));
      sftp.status(reqid, STATUS_CODE.OK);
    });
    sftp.on('REMOVE', (reqid) => sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED));
    sftp.on('error', () => undefined);
  }
}
