import { promises as fs } from 'node:fs';
import { restoreFrom } from '../moosefs/metadata.js';
import path from 'node:path';
import { allHosts, type Config, type CopyConfig, type MasterHost, type MetaloggerHost } from '../core/config.js';
import { ConfigError, describeError, UsageError } from '../core/errors.js';
import type { StoredSnapshot } from '../store/manifest.js';
import { ensureFreeSpace } from '../core/disk.js';
import { openSource } from '../transport/remote.js';
import { fetchFromCopy, findCopy } from '../store/copy/fetch.js';
import { storeKeys } from '../store/stored-file.js';
import { admitRestorePoint, clusterIdentity, identityFile, type IdentityGate } from '../store/identity.js';
import { masterStatus, targetOf } from '../moosefs/master.js';
import {
  chainInDataPath,
  pickSnapshot,
  placeFromDataPath,
  placeSnapshot,
  placingScanner,
  PLACE_PARALLEL,
  type PlacedRestorePoint,
} from './restorepoint.js';
import type { ChangelogScanner } from '../moosefs/changelog.js';
import { listSegments, placeSegments, segmentsFrom as selectSegments, type StoredSegment } from '../store/segments.js';
import { fetchCopySegments } from '../store/copy/archive.js';
import type { StoreKeys } from '../store/sealed.js';

/**
 * A restore point, as drill and restore choose it: a snapshot of the store, a metalogger's (or master's) DATA_PATH as it is now,
 * or a snapshot of an off-site copy (`--from copy:NAME`), fetched when placed (`fetched` is then set).
 */
export type RestoreSource =
  | { kind: 'snapshot'; snapshot: StoredSnapshot }
  | { kind: 'datapath'; host: MasterHost | MetaloggerHost }
  | { kind: 'copy'; copy: CopyConfig; id: string | 'latest'; fetched?: StoredSnapshot };

/** The prefix that makes `--from` name an off-site copy (snapshotStore.copies) instead of a host. */
export const COPY_PREFIX = 'copy:';

/** The caller's configured default for `--from` and the setting that names it (`jobs.drill.from`), for messages. */
export interface DefaultFrom {
  key: string;
  from?: string;
}

/** The command-line arguments that pick a restore point (drill's and restore's). */
export interface RestorePointArgs {
  snapshot?: string;
  from?: string;
  latest?: boolean;
}

/**
 * `--snapshot ID`, `--from NAME`, `--latest`, or the caller's configured default (`fallback`, else latest).
 * `--from copy:NAME` takes the newest complete snapshot of that off-site copy, or `--snapshot ID` of it:
 * never a silent fall-back (a drill that quietly used the copy would hide a lost store).
 */
export async function chooseSource(
  config: Config,
  fallback: DefaultFrom,
  args: RestorePointArgs,
): Promise<RestoreSource> {
  const defaultFrom = fallback.from;
  const fromCopy = typeof args.from === 'string' && args.from.startsWith(COPY_PREFIX);
  const flags = [
    args.snapshot !== undefined && !fromCopy && '--snapshot',
    args.from !== undefined && '--from',
    args.latest === true && '--latest',
  ].filter((f): f is string => Boolean(f));
  if (flags.length > 1)
    throw new UsageError(flags[1]!, `${flags.join(' and ')} cannot be combined: they name different restore points`);
  const from = typeof args.from === 'string' ? args.from : flags.length === 0 ? defaultFrom : undefined;
  if (from?.startsWith(COPY_PREFIX)) {
    const key = typeof args.from === 'string' ? '--from' : fallback.key;
    return {
      kind: 'copy',
      copy: findCopy(config, from.slice(COPY_PREFIX.length), key),
      id: typeof args.snapshot === 'string' ? args.snapshot : 'latest',
    };
  }
  if (from !== undefined) {
    const host = allHosts(config).find((h) => h.name === from);
    const key = typeof args.from === 'string' ? '--from' : fallback.key;
    if (!host)
      throw new UsageError(
        key,
        `${key} ${from}: no metalogger or master of that name in ${config.file} (known: ${
          allHosts(config)
            .map((h) => h.name)
            .join(', ') || 'none'
        })`,
      );
    return { kind: 'datapath', host };
  }
  if (!config.snapshotStore)
    throw new ConfigError(
      'snapshotStore.path',
      `${config.file}: snapshotStore.path is not configured (the restore point is a snapshot unless --from METALOGGER is given)`,
    );
  const id = typeof args.snapshot === 'string' ? args.snapshot : 'latest';
  return { kind: 'snapshot', snapshot: await pickSnapshot(config.snapshotStore.path, id, await storeKeys(config)) };
}

export function describeSource(source: RestoreSource, short = false): string {
  if (source.kind === 'snapshot') return `snapshot ${source.snapshot.id}`;
  if (source.kind === 'copy') return `snapshot ${source.fetched?.id ?? source.id} of copy ${source.copy.name}`;
  return short
    ? `${source.host.role} ${source.host.name}`
    : `${source.host.role} ${source.host.name} (${source.host.dataPath})`;
}

/**
 * The cluster's identity for a drill or restore (lib/store/identity.ts): `cluster.metaid`, else what
 * backup recorded, else the first configured master that answers with its metaid (4.x reports it).
 */
export async function identityGate(
  config: Config,
  otherFilesystem: boolean,
  o: { timeoutMs: number; signal?: AbortSignal },
): Promise<IdentityGate> {
  const identity = await clusterIdentity(config);
  if (identity) return { identity, otherFilesystem };
  const silent: string[] = [];
  for (const m of config.masters) {
    try {
      const { metaid } = await masterStatus(targetOf(config, m, o));
      const from = `reported by the live master ${m.name} (${m.cliHost}:${m.cliPort})`;
      if (metaid) return { identity: { metaid, from }, otherFilesystem };
      silent.push(`${m.name} does not report one`);
    } catch (err) {
      silent.push(`${m.name}: ${describeError(err)}`);
    }
  }
  const masters = silent.length ? `; masters: ${silent.join('; ')}` : '; no masters configured';
  const recorded = identityFile(config.stateDir);
  const unknownBecause = `no cluster.metaid in ${config.file}, none recorded in ${recorded}${masters}`;
  return { otherFilesystem, unknownBecause };
}

/**
 * Place a restore point into `dataPath` (`who` names the run in a refusal for space: "the drill"), then hold its image to the cluster's identity (`gate`): a
 * refused one is a ChainError naming it; the placed files are still only in the scratch or staging
 * directory, which the caller removes.
 */
export async function place(
  config: Config,
  source: RestoreSource,
  dataPath: string,
  signal: AbortSignal,
  o: { maxImageVersion?: number; gate: IdentityGate; who: string; passTime?: number },
): Promise<PlacedRestorePoint> {
  const { gate, ...rest } = o;
  const placed = await placeUnchecked(config, source, dataPath, signal, rest);
  const what = `${describeSource(source)}: image ${placed.image}`;
  const note = admitRestorePoint(gate, what, placed.header?.metaid ?? '', source.kind === 'copy' ? 'copy' : 'local');
  return note ? { ...placed, identityNote: note } : placed;
}

async function placeUnchecked(
  config: Config,
  source: RestoreSource,
  dataPath: string,
  signal: AbortSignal,
  o: { maxImageVersion?: number; who: string; passTime?: number },
): Promise<PlacedRestorePoint> {
  const { who, ...rest } = o;
  const options = { signal, ensureSpace: (bytes: number) => ensureFreeSpace(dataPath, bytes, who), ...rest };
  if (source.kind === 'snapshot') {
    const keys = await storeKeys(config);
    const placed = await placeSnapshot(source.snapshot, dataPath, { ...options, keys });
    // The archive rolls the image on past the snapshot's own changelogs (issue #26).
    const { segments } = await listSegments(config.snapshotStore!.path, keys);
    return withArchive(placed, dataPath, () => Promise.resolve(segments), keys, signal, o.passTime);
  }
  if (source.kind === 'copy') {
    const keys = await storeKeys(config);
    // Downloaded and checked into a private directory of the state dir, placed like a local snapshot, removed.
    const fetched = await fetchFromCopy(config, source.copy, source.id, keys, signal);
    try {
      source.fetched = fetched.snapshot;
      const placed = await placeSnapshot(fetched.snapshot, dataPath, { ...options, keys });
      const into = path.join(fetched.snapshot.dir, 'archive');
      const segments = async (from: number) => {
        await fs.mkdir(into, { mode: 0o700 });
        return fetchCopySegments(config, source.copy, from, keys, into, signal);
      };
      return await withArchive(placed, dataPath, segments, keys, signal, o.passTime);
    } finally {
      await fetched.cleanup();
    }
  }
  const files = await openSource(config, source.host, signal);
  try {
    return await placeFromDataPath(files, source.host.dataPath, dataPath, options);
  } finally {
    await files.close();
  }
}

/**
 * The archive's segments after a placed image, placed beside its changelogs and the chain recomputed:
 * the restore point reaches the archive's end (or its first gap), not only the snapshot's own changelogs.
 */
async function withArchive(
  placed: PlacedRestorePoint,
  dataPath: string,
  segmentsFrom: (fromVersion: number) => Promise<StoredSegment[]>,
  keys: StoreKeys,
  signal: AbortSignal,
  passTime: number | undefined,
): Promise<PlacedRestorePoint> {
  if (!placed.header) return placed;
  const start = restoreFrom(placed.header);
  const wanted = selectSegments(await segmentsFrom(start), start);
  if (!wanted.length) return placed;
  const scans = new Map(placed.scans);
  const scanners = new Map<string, ChangelogScanner>();
  const { names, bytes } = await placeSegments(wanted, dataPath, {
    keys,
    signal,
    parallel: PLACE_PARALLEL,
    // Staging or a drill's scratch, as placeSnapshot's files: a crash discards it, so no fsync.
    durable: false,
    // Scanned as it is written: no second read of the segment.
    tap: (name) => {
      const scanner = placingScanner(path.join(dataPath, name), passTime);
      scanners.set(name, scanner);
      return (chunk) => scanner.push(chunk);
    },
    placed: (name) => Promise.resolve(void scans.set(name, scanners.get(name)!.finish())),
  });
  const changelogs = [...placed.changelogs, ...names];
  return {
    ...placed,
    changelogs,
    bytes: placed.bytes + bytes,
    scans,
    ...(await chainInDataPath(dataPath, placed.header, changelogs, scans)),
  };
}
