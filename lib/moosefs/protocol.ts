/**
 * Asking a master what it is, in MooseFS's own client protocol: CLTOMA_INFO → MATOCL_INFO, the
 * question mfscli and mfs.cgi ask first. It works for every generation from one place, where
 * mfscli cannot: 1.x has no mfscli, and Debian's mfscli 3.0 refuses 1.6 masters ("pre 1.6.10") and
 * 4.x masters (it does not know their 205-byte answer, so it says "Working master servers not found").
 * An unregistered connection may ask: no registration or protocol packet goes first, in any generation.
 */
import net from 'node:net';
import { ProcessError } from '../core/errors.js';
import { INFO_LAYOUTS, reportedSoftwareVersion } from './generations/master-info.js';
import type { ChunkserverRecord } from './generations/chunkserver-list.js';

export interface NativeMasterInfo {
  /** "1.6.4", "3.0.117", "4.59.2" ("… PRO" for Pro); only "1.4" / "1.5" for masters that do not send it. */
  softwareVersion: string;
  /** The metadata version (the next change to apply); undefined before 2.0, which does not send it. */
  metadataVersion?: number;
  /** The metadata id as 16 upper-case hex digits (as in the image header); sent since 4.4. */
  metaid?: string;
  /** allnodes: every filesystem object. */
  fsObjects?: number;
  directories?: number;
  files?: number;
  /** Since 2.0: MASTER (Community), LEADER, FOLLOWER, ELECT, USURPER, DEPUTY, DUMMY, else the number. */
  state?: string;
  /** Size of the MATOCL_INFO answer: it names the layout (and, before 1.6, the generation). */
  answerBytes: number;
}

const CLTOMA_INFO = 510;
const MATOCL_INFO = 511;
const CLTOMA_MLOG_LIST = 522;
const MATOCL_MLOG_LIST = 523;
const CLTOMA_CSERV_LIST = 500;
const MATOCL_CSERV_LIST = 501;
const ANTOAN_NOP = 0;
const ANSWER_NAMES: Record<number, string> = {
  [MATOCL_INFO]: 'MATOCL_INFO',
  [MATOCL_MLOG_LIST]: 'MATOCL_MLOG_LIST',
  [MATOCL_CSERV_LIST]: 'MATOCL_CSERV_LIST',
};
const MAX_PACKET = 64 * 1024;

const STATE_NAMES: Record<number, string> = {
  0x00: 'DUMMY',
  0x01: 'LEADER',
  0x02: 'ELECT',
  0x03: 'FOLLOWER',
  0x04: 'USURPER',
  0x05: 'DEPUTY',
  0xff: 'MASTER',
};

/** The MATOCL_INFO answer (its data, without the 8-byte header) as what the master is. */
export function parseMasterInfoAnswer(data: Buffer, where: string): NativeMasterInfo {
  const layout = INFO_LAYOUTS[data.length];
  if (!layout) {
    throw new ProcessError(
      where,
      `master ${where}: MATOCL_INFO answer of ${data.length} bytes is not a layout this tool knows (${Object.keys(INFO_LAYOUTS).join(', ')})`,
    );
  }
  const info: NativeMasterInfo = {
    softwareVersion: layout.generation ?? reportedSoftwareVersion(data),
    fsObjects: data.readUInt32BE(layout.allnodes),
    answerBytes: data.length,
  };
  if (layout.dirnodes !== undefined) info.directories = data.readUInt32BE(layout.dirnodes);
  if (layout.filenodes !== undefined) info.files = data.readUInt32BE(layout.filenodes);
  if (layout.state !== undefined) info.state = STATE_NAMES[data[layout.state]!] ?? String(data[layout.state]);
  if (layout.metaVersion !== undefined) info.metadataVersion = metadataVersion(data, layout.metaVersion, where);
  if (layout.metaid !== undefined)
    info.metaid = data.readBigUInt64BE(layout.metaid).toString(16).toUpperCase().padStart(16, '0');
  return info;
}

function metadataVersion(data: Buffer, at: number, where: string): number {
  const version = data.readBigUInt64BE(at);
  if (version > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ProcessError(where, `master ${where}: metadata version ${version} is too large to handle exactly`);
  }
  return Number(version);
}

export interface MasterTarget {
  host: string;
  /** The client port: MATOCL_LISTEN_PORT (MATOCU_LISTEN_PORT before 1.6.5), 9421 by default. */
  port: number;
  /** Bound on connecting and on the whole exchange; 3000 ms by default. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Connect to the master's client port, send CLTOMA_INFO and read what the master says it is. */
export async function askMaster(target: MasterTarget): Promise<NativeMasterInfo> {
  const where = `${target.host}:${target.port}`;
  const answer = await exchange(target, where, CLTOMA_INFO, MATOCL_INFO);
  return parseMasterInfoAnswer(answer, where);
}

/** A metalogger connected to the master, as CLTOMA_MLOG_LIST lists it (1.6.5 and later; what `mfscli -SMB` shows). */
export interface ConnectedMetalogger {
  ip: string;
  softwareVersion: string;
}

/** The metaloggers connected to the master right now: N × [version:32 ip:32]. */
export async function listMetaloggers(target: MasterTarget): Promise<ConnectedMetalogger[]> {
  const where = `${target.host}:${target.port}`;
  const data = await exchange(target, where, CLTOMA_MLOG_LIST, MATOCL_MLOG_LIST);
  if (data.length % 8 !== 0)
    throw new ProcessError(
      where,
      `master ${where}: MATOCL_MLOG_LIST answer of ${data.length} bytes is not a list of 8-byte entries`,
    );
  const out: ConnectedMetalogger[] = [];
  for (let at = 0; at < data.length; at += 8) {
    const ip = data.subarray(at + 4, at + 8).join('.');
    out.push({ ip, softwareVersion: reportedSoftwareVersion(data.subarray(at, at + 4)) });
  }
  return out;
}

/** A chunkserver the master lists (CLTOMA_CSERV_LIST; what `mfscli -SCS` shows). */
export interface ListedChunkserver {
  ip: string;
  port: number;
  /** Undefined where the record has none (1.5.12). */
  softwareVersion?: string;
  /** Known to the master but not connected now (1.6.27 and later list those too). */
  disconnected: boolean;
}

/**
 * The MATOCL_CSERV_LIST answer's data as chunkservers, `record` being the layout the master's generation
 * answers with (its adapter's chunkserverRecord). The answer's size is bounded by the packet reader.
 */
export function parseChunkserverList(data: Buffer, record: ChunkserverRecord, where: string): ListedChunkserver[] {
  if (data.length % record.bytes !== 0)
    throw new ProcessError(
      where,
      `master ${where}: MATOCL_CSERV_LIST answer of ${data.length} bytes is not a list of ${record.bytes}-byte records`,
    );
  const out: ListedChunkserver[] = [];
  for (let at = 0; at < data.length; at += record.bytes) {
    const r = data.subarray(at, at + record.bytes);
    const cs: ListedChunkserver = {
      ip: r.subarray(record.ip, record.ip + 4).join('.'),
      port: r.readUInt16BE(record.port),
      disconnected: record.disconnectedFlag !== undefined && (r[record.disconnectedFlag]! & 1) === 1,
    };
    if (record.version && !cs.disconnected) {
      const v = record.version;
      const bytes =
        v.bytes === 4 ? r.subarray(v.at, v.at + 4) : Buffer.concat([Buffer.alloc(1), r.subarray(v.at, v.at + 3)]);
      cs.softwareVersion = reportedSoftwareVersion(bytes);
    }
    out.push(cs);
  }
  return out;
}

/** The chunkservers the master lists, read with the record layout of its generation. */
export async function listChunkservers(target: MasterTarget, record: ChunkserverRecord): Promise<ListedChunkserver[]> {
  const where = `${target.host}:${target.port}`;
  return parseChunkserverList(await exchange(target, where, CLTOMA_CSERV_LIST, MATOCL_CSERV_LIST), record, where);
}

function request(cmd: number): Buffer {
  const packet = Buffer.alloc(8);
  packet.writeUInt32BE(cmd, 0);
  packet.writeUInt32BE(0, 4);
  return packet;
}

/** One request without data over a fresh connection; resolves with the answer's data. The socket never outlives it. */
function exchange(target: MasterTarget, where: string, ask: number, answerCmd: number): Promise<Buffer> {
  const timeoutMs = target.timeoutMs ?? 3000;
  if (target.signal?.aborted) return Promise.reject(new ProcessError(where, `master ${where}: aborted`));
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port });
    const reader = packetReader(where, answerCmd);
    let connected = false;
    let settled = false;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      target.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      settle();
    };
    const fail = (why: string) => finish(() => reject(new ProcessError(where, `master ${where}: ${why}`)));
    const onAbort = () => fail('aborted');
    const timer = setTimeout(
      () => fail(connected ? `no answer within ${timeoutMs} ms` : `connect timed out after ${timeoutMs} ms`),
      timeoutMs,
    );

    target.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('connect', () => {
      connected = true;
      socket.write(request(ask));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        const answer = reader(chunk);
        if (answer) finish(() => resolve(answer));
      } catch (err) {
        finish(() => reject(err));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(socketProblem(err)));
    socket.on('close', () => fail(connected ? 'closed the connection before answering' : 'connection closed'));
  });
}

function socketProblem(err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNREFUSED') return 'connection refused';
  if (err.code === 'ECONNRESET') return 'connection reset before answering';
  return err.code ? `${err.message} (${err.code})` : err.message;
}

/**
 * Feeds received bytes; returns the answer's data once whole. Skips ANTOAN_NOP keep-alives,
 * refuses any other command and any packet over 64 KiB before buffering it.
 */
function packetReader(where: string, answerCmd: number): (chunk: Buffer) => Buffer | undefined {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const cmd = pending.readUInt32BE(0);
      const length = pending.readUInt32BE(4);
      if (cmd !== ANTOAN_NOP && cmd !== answerCmd)
        throw new ProcessError(
          where,
          `master ${where}: unexpected command ${cmd}${asText(pending)} (expected ${ANSWER_NAMES[answerCmd]} ${answerCmd}; is this a master's client port?)`,
        );
      if (length > MAX_PACKET)
        throw new ProcessError(
          where,
          `master ${where}: packet of ${length} bytes (command ${cmd}) is over the 64 KiB bound`,
        );
      if (pending.length < 8 + length) return undefined;
      const data = pending.subarray(8, 8 + length);
      pending = pending.subarray(8 + length);
      if (cmd === answerCmd) return Buffer.from(data);
    }
    return undefined;
  };
}

/** A peer that is not MooseFS (an HTTP server on the wrong port) is easier to spot by its first bytes. */
function asText(header: Buffer): string {
  const text = header.subarray(0, 8).toString('latin1');
  return /^[\x20-\x7e]{8}$/.test(text) ? ` ("${text}")` : '';
}
