import { promises as fs } from 'node:fs';
import { restoreFrom } from '../moosefs/metadata.js';
import path from 'node:path';
import { allHosts, type Config, type CopyConfig, type MasterHost, type MetaloggerHost } from '../core/config.js';
import { ChainError, ConfigError, describeError, UsageError } from '../core/errors.js';
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
  type PlaceOptions,
  type PlacedRestorePoint,
} from './restorepoint.js';
import type { ChangelogScan, ChangelogScanner } from '../moosefs/changelog.js';
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
    const store = config.snapshotStore!.path;
    // The archive rolls the image on past the snapshot's own changelogs (issue #26).
    const segments = async () => (await listSegments(store, keys)).segments;
    return placeWithArchive(source.snapshot, dataPath, segments, keys, { ...options, keys });
  }
  if (source.kind === 'copy') {
    const keys = await storeKeys(config);
    // Downloaded and checked into a private directory of the state dir, placed like a local snapshot, removed.
    const fetched = await fetchFromCopy(config, source.copy, source.id, keys, signal);
    try {
      source.fetched = fetched.snapshot;
      const into = path.join(fetched.snapshot.dir, 'archive');
      const segments = async (from: number) => {
        await fs.mkdir(into, { mode: 0o700 });
        return fetchCopySegments(config, source.copy, from, keys, into, signal);
      };
      return await placeWithArchive(fetched.snapshot, dataPath, segments, keys, { ...options, keys });
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

/** Where a snapshot's image restores from, as its manifest says; undefined for a manifest that does not say it. */
function manifestStart(image: StoredSnapshot['manifest']['image']): number | undefined {
  const { version, empty } = image;
  if (typeof empty !== 'boolean' || !Number.isSafeInteger(version) || version < 0) return undefined;
  return restoreFrom(image);
}

/**
 * A snapshot placed with the archive's segments after its image (issue #26). The segments are chosen from the
 * version the snapshot's manifest gives its image and placed beside the image (its `zstd -d` on one core, theirs
 * on the other) instead of after it; the image's own header, once placed, must restore from that same version —
 * else the choice could leave a hole or an overlap, and the restore point is refused naming the snapshot. A
 * manifest without a usable image version is placed the old way: the image first, the segments from its header.
 */
async function placeWithArchive(
  snapshot: StoredSnapshot,
  dataPath: string,
  segmentsFrom: (fromVersion: number) => Promise<StoredSegment[]>,
  keys: StoreKeys,
  options: PlaceOptions & { signal: AbortSignal },
): Promise<PlacedRestorePoint> {
  const planned = manifestStart(snapshot.manifest.image);
  if (planned === undefined) {
    const placed = await placeSnapshot(snapshot, dataPath, options);
    return withArchive(placed, dataPath, segmentsFrom, keys, options.signal, options.passTime);
  }
  // One failing stops the other; both have settled before anything is thrown (no file written behind the cleanup).
  const stop = new AbortController();
  const signal = AbortSignal.any([options.signal, stop.signal]);
  let failure: { err: unknown } | undefined;
  const settle = <T>(p: Promise<T>) =>
    p.catch((err: unknown) => {
      failure ??= { err };
      stop.abort();
      return undefined;
    });
  const [placed, archive] = await Promise.all([
    settle(placeSnapshot(snapshot, dataPath, { ...options, signal })),
    settle(
      segmentsFrom(planned).then((all) =>
        placeArchive(selectSegments(all, planned), dataPath, keys, signal, options.passTime),
      ),
    ),
  ]);
  if (failure) throw failure.err;
  if (!placed!.header) {
    // A bad image goes to mfsmaster -a alone, as before (its verdict is the finding): no segments beside it.
    await Promise.all(archive!.names.map((n) => fs.rm(path.join(dataPath, n), { force: true })));
    return placed!;
  }
  const start = restoreFrom(placed!.header);
  if (start !== planned)
    throw new ChainError(
      snapshot.dir,
      `snapshot ${snapshot.id}: its manifest says the image restores from version ${planned}, the image's own ` +
        `header from ${start}: the archive's segments chosen from the manifest would not fit it; refused`,
    );
  return withPlacedSegments(placed!, dataPath, archive!);
}

interface PlacedArchive {
  names: string[];
  bytes: number;
  scans: ReadonlyMap<string, ChangelogScan>;
}

/** Segments placed as changelogs, each scanned as it is written (no second read of a segment). */
async function placeArchive(
  wanted: readonly StoredSegment[],
  dataPath: string,
  keys: StoreKeys,
  signal: AbortSignal,
  passTime: number | undefined,
): Promise<PlacedArchive> {
  const scans = new Map<string, ChangelogScan>();
  if (!wanted.length) return { names: [], bytes: 0, scans };
  const scanners = new Map<string, ChangelogScanner>();
  const { names, bytes } = await placeSegments(wanted, dataPath, {
    keys,
    signal,
    parallel: PLACE_PARALLEL,
    // Staging or a drill's scratch, as placeSnapshot's files: a crash discards it, so no fsync.
    durable: false,
    tap: (name) => {
      const scanner = placingScanner(path.join(dataPath, name), passTime);
      scanners.set(name, scanner);
      return (chunk) => scanner.push(chunk);
    },
    placed: (name) => Promise.resolve(void scans.set(name, scanners.get(name)!.finish())),
  });
  return { names, bytes, scans };
}

/** The placed image's restore point with the segments after its changelogs, and the chain recomputed over all. */
async function withPlacedSegments(
  placed: PlacedRestorePoint,
  dataPath: string,
  archive: PlacedArchive,
): Promise<PlacedRestorePoint> {
  if (!archive.names.length || !placed.header) return placed;
  const scans = new Map([...(placed.scans ?? []), ...archive.scans]);
  const changelogs = [...placed.changelogs, ...archive.names];
  return {
    ...placed,
    changelogs,
    bytes: placed.bytes + archive.bytes,
    scans,
    ...(await chainInDataPath(dataPath, placed.header, changelogs, scans)),
  };
}

/**
 * The archive's segments after a placed image, chosen from its header, placed beside its changelogs and the
 * chain recomputed: the restore point reaches the archive's end (or its first gap), not only the snapshot's own
 * changelogs.
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
  const archive = await placeArchive(
    selectSegments(await segmentsFrom(start), start),
    dataPath,
    keys,
    signal,
    passTime,
  );
  return withPlacedSegments(placed, dataPath, archive);
}
