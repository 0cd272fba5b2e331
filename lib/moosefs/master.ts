import { ProcessError } from '../core/errors.js';
import { generationOfSoftware, pinnedGeneration, type Generation, type GenerationName } from './generations/index.js';
import { connectedMetaloggers, masterInfo as mfscliMasterInfo, type CliTarget } from './mfscli.js';
import {
  askMaster,
  listChunkservers,
  listMetaloggers,
  type ListedChunkserver,
  type NativeMasterInfo,
} from './protocol.js';
import { versionInDataPath } from './datapath.js';
import type { Config, MasterHost } from '../core/config.js';
import { openSource, type FileSource } from '../transport/remote.js';

/**
 * Asking a running master what it is and what it serves — the one question every job asks (check-master,
 * fencing, verify's lag, promote and drill waiting for a master to serve), answered the same way for
 * every generation: MooseFS's own client protocol (CLTOMA_INFO) spoken from Node, which every master
 * since 1.5 answers. Debian's mfscli (3.0) refuses 1.6 masters and finds no 4.x one; 1.x has no mfscli.
 * A master pinned to a generation whose adapter says so (3.0: `askPinnedThrough`) is asked through mfscli -SIM.
 */
export interface MasterStatus extends Pick<
  NativeMasterInfo,
  'softwareVersion' | 'metaid' | 'fsObjects' | 'directories' | 'files'
> {
  generation: Generation;
  /** The next change it will write. Undefined before 2.0: a 1.x master does not report it. */
  metadataVersion?: number;
}

export interface MasterTarget extends CliTarget {
  /** `moosefs.generation`: 'auto' (or undefined) asks the master itself. */
  generation?: GenerationName | 'auto';
}

export async function masterStatus(target: MasterTarget): Promise<MasterStatus> {
  const where = `${target.host}:${target.port}`;
  const pinned = pinnedGeneration(target.generation);
  if (pinned?.askPinnedThrough === 'mfscli') {
    const info = await mfscliMasterInfo(target);
    return { generation: pinned, softwareVersion: info.softwareVersion, metadataVersion: info.metadataVersion };
  }
  const answer = await askMaster({
    host: target.host,
    port: target.port,
    timeoutMs: target.timeoutMs,
    signal: target.signal,
  }).catch((err: Error) => {
    throw new ProcessError(where, `master ${where} does not answer (${err.message.replace(`master ${where}: `, '')})`);
  });
  const generation = generationOfSoftware(answer.softwareVersion);
  if (!generation)
    throw new ProcessError(where, `master ${where} reports an unknown MooseFS version "${answer.softwareVersion}"`);
  if (pinned && pinned !== generation) {
    throw new ProcessError(
      where,
      `master ${where} is MooseFS ${answer.softwareVersion} (${generation.label}), but moosefs.generation is ${target.generation}`,
    );
  }
  // Right after a 2.0+ master starts it answers with version 0 for a moment (mfscli lists it DEAD): not serving yet.
  if (generation.reportsMetadataVersion && !answer.metadataVersion)
    throw new ProcessError(where, `master ${where} does not serve yet (metadata version 0: still loading)`);
  return {
    generation,
    softwareVersion: answer.softwareVersion,
    metadataVersion: generation.reportsMetadataVersion ? answer.metadataVersion : undefined,
    metaid: answer.metaid,
    fsObjects: answer.fsObjects,
    directories: answer.directories,
    files: answer.files,
  };
}

/** The master's DATA_PATH, for the versions a 1.x master does not report (see versionInDataPath). */
export interface MasterDataPath {
  open(): Promise<FileSource>;
  dir: string;
}

/** A configured master's DATA_PATH when mfs-jobs can read it (SFTP or local), for masterVersion. */
export function dataPathOf(config: Config, m: MasterHost, signal?: AbortSignal): MasterDataPath | undefined {
  return m.local || m.ssh ? { open: () => openSource(config, m, signal), dir: m.dataPath } : undefined;
}

/** How mfs-jobs asks a configured master. */
export function targetOf(
  config: Config,
  m: MasterHost,
  o: { timeoutMs?: number; signal?: AbortSignal } = {},
): MasterTarget {
  return { host: m.cliHost, port: m.cliPort, bin: config.mfscliBin, generation: config.moosefs.generation, ...o };
}

/**
 * Like masterStatus, for callers that need the metadata version. A 1.x master does not report it: it is
 * read from the master's DATA_PATH when the caller can reach it, else its silence is an error naming it.
 */
export async function masterVersion(
  target: MasterTarget,
  dataPath?: MasterDataPath,
): Promise<MasterStatus & { metadataVersion: number }> {
  const status = await masterStatus(target);
  if (status.metadataVersion !== undefined) return status as MasterStatus & { metadataVersion: number };
  const where = `${target.host}:${target.port}`;
  const silent = `master ${where} (MooseFS ${status.softwareVersion}) serves but does not report its metadata version (MooseFS before 2.0 does not)`;
  if (!dataPath)
    throw new ProcessError(where, `${silent}, and its DATA_PATH is not reachable (masters.N.ssh or local)`);
  const source = await dataPath.open();
  try {
    const version = await versionInDataPath(source, dataPath.dir);
    if (version === undefined)
      throw new ProcessError(
        where,
        `${silent}, and ${source.label}:${dataPath.dir} holds neither changelog.0.mfs nor metadata.mfs.back`,
      );
    return { ...status, metadataVersion: version };
  } finally {
    await source.close();
  }
}

/**
 * Addresses (or, through mfscli, names) of the metaloggers the master lists as connected: CLTOMA_MLOG_LIST,
 * or mfscli -SMB where the pinned generation is asked through mfscli.
 */
export async function connectedMetaloggerHosts(target: MasterTarget): Promise<string[]> {
  if (pinnedGeneration(target.generation)?.askPinnedThrough === 'mfscli')
    return (await connectedMetaloggers(target)).map((m) => m.host);
  return (
    await listMetaloggers({ host: target.host, port: target.port, timeoutMs: target.timeoutMs, signal: target.signal })
  ).map((m) => m.ip);
}

/**
 * The chunkservers the master lists as connected (CLTOMA_CSERV_LIST), read with the record layout of the
 * generation and version it reported; undefined where the adapter does not know that layout.
 */
export async function connectedChunkservers(
  target: Pick<MasterTarget, 'host' | 'port' | 'timeoutMs' | 'signal'>,
  status: Pick<MasterStatus, 'generation' | 'softwareVersion'>,
): Promise<ListedChunkserver[] | undefined> {
  const record = status.generation.chunkserverRecord(status.softwareVersion);
  if (!record) return undefined;
  const listed = await listChunkservers(
    { host: target.host, port: target.port, timeoutMs: target.timeoutMs, signal: target.signal },
    record,
  );
  return listed.filter((c) => !c.disconnected);
}

/**
 * Poll until the master serves, at `minVersion` or later when given and reported. A 1.x master serves
 * once it answers at all (it does not report versions; the caller knows what it restored).
 */
export async function waitServing(o: MasterTarget & { minVersion?: number }): Promise<MasterStatus> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const where = `${o.host}:${o.port}`;
  let last = 'no answer yet';
  // A master just started by `mfsmaster -a` serves within milliseconds of its first answer ("version 0: still
  // loading" is brief): ask again soon, then back off to 100 ms (a failover's clients wait on this, issue #24).
  let pauseMs = 10;
  while (Date.now() < deadline) {
    if (o.signal?.aborted) throw new ProcessError(where, 'aborted while waiting for the master to serve');
    try {
      const status = await masterStatus({ ...o, timeoutMs: 3_000 });
      if (o.minVersion === undefined || status.metadataVersion === undefined || status.metadataVersion >= o.minVersion)
        return status;
      last = `serving at version ${status.metadataVersion}, expected ${o.minVersion}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, pauseMs));
    pauseMs = Math.min(100, pauseMs * 2);
  }
  throw new ProcessError(where, `master ${where} not serving after ${timeoutMs} ms: ${last}`);
}
