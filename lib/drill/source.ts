import { allHosts, type Config, type MasterHost, type MetaloggerHost } from '../core/config.js';
import { ConfigError, UsageError } from '../core/errors.js';
import type { StoredSnapshot } from '../store/manifest.js';
import { ensureFreeSpace } from '../moosefs/scratchmaster.js';
import { openSource } from '../transport/remote.js';
import { storeKeys } from '../store/stored-file.js';
import { pickSnapshot, placeFromDataPath, placeSnapshot, type PlacedRestorePoint } from './restorepoint.js';

/** What a drill restores: a snapshot of the store, or a metalogger's (or master's) DATA_PATH as it is now. */
export type RestoreSource = { kind: 'snapshot'; snapshot: StoredSnapshot } | { kind: 'datapath'; host: MasterHost | MetaloggerHost };

/** `--snapshot ID`, `--from NAME`, `--latest`, or the configured default (`jobs.drill.from`, else latest). */
export async function chooseSource(config: Config, defaultFrom: string | undefined, args: Record<string, unknown>): Promise<RestoreSource> {
  const flags = [args.snapshot !== undefined && '--snapshot', args.from !== undefined && '--from', args.latest === true && '--latest'].filter((f): f is string => Boolean(f));
  if (flags.length > 1) throw new UsageError(flags[1]!, `${flags.join(' and ')} cannot be combined: a drill restores one restore point`);
  const from = typeof args.from === 'string' ? args.from : flags.length === 0 ? defaultFrom : undefined;
  if (from !== undefined) {
    const host = allHosts(config).find((h) => h.name === from);
    const key = typeof args.from === 'string' ? '--from' : 'jobs.drill.from';
    if (!host) throw new UsageError(key, `${key} ${from}: no metalogger or master of that name in ${config.file} (known: ${allHosts(config).map((h) => h.name).join(', ') || 'none'})`);
    return { kind: 'datapath', host };
  }
  if (!config.snapshotStore) throw new ConfigError('snapshotStore.path', `${config.file}: snapshotStore.path is not configured (drill restores a snapshot unless --from METALOGGER is given)`);
  return { kind: 'snapshot', snapshot: await pickSnapshot(config.snapshotStore.path, typeof args.snapshot === 'string' ? args.snapshot : 'latest') };
}

export function describeSource(source: RestoreSource, short = false): string {
  if (source.kind === 'snapshot') return `snapshot ${source.snapshot.id}`;
  return short ? `${source.host.role} ${source.host.name}` : `${source.host.role} ${source.host.name} (${source.host.dataPath})`;
}

export async function place(config: Config, source: RestoreSource, dataPath: string, signal: AbortSignal, o: { maxImageVersion?: number } = {}): Promise<PlacedRestorePoint> {
  const options = { signal, ensureSpace: (bytes: number) => ensureFreeSpace(dataPath, bytes), ...o };
  if (source.kind === 'snapshot') return placeSnapshot(source.snapshot, dataPath, { ...options, keys: await storeKeys(config) });
  const files = await openSource(config, source.host, signal);
  try {
    return await placeFromDataPath(files, source.host.dataPath, dataPath, options);
  } finally {
    await files.close();
  }
}
