import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config, MasterHost, MetaloggerHost } from '../core/config.js';
import { listDataPath, readSourceImageHeader, scanSourceChangelog } from '../moosefs/datapath.js';
import { readChangelogEdges } from '../moosefs/changelog-edges.js';
import { ChainError } from '../core/errors.js';
import { changelogIndex, restoreFrom } from '../moosefs/metadata.js';
import { openFilesUnder } from '../core/openfiles.js';
import type { PlanChangelog, PlanEntry, PlanImage } from './plan.js';
import { refuseDamagedChangelog, TargetChanged, type PruneTarget, type Removal, type TargetScan } from './target.js';
import { openSource, type FileSource, type RemoteEntry } from '../transport/remote.js';

/** changelog.0.mfs and changelog_ml.0.mfs: what the running daemon appends to. Never deleted. */
export function isCurrentChangelog(name: string): boolean {
  return name === 'changelog.0.mfs' || name === 'changelog_ml.0.mfs';
}

/** changelog.N.mfs / changelog_ml.N.mfs with N ≥ 1 (changelog_ml_back.N.mfs are copies fetched at connect). */
function isRotatedChangelog(name: string): boolean {
  return /^changelog(_ml)?\.\d+\.mfs$/.test(name) && (changelogIndex(name) ?? 0) >= 1;
}

interface Identity {
  size: number;
  mtimeMs: number;
  first?: number;
}

/**
 * A master's or metalogger's DATA_PATH, local or over SFTP. Images are never deleted here (MooseFS
 * rotates them itself). Running daemons are seen through /proc only when the DATA_PATH is local; for
 * a remote host the `.0` rule and the minimum age stand in for that.
 */
export class DataPathTarget implements PruneTarget {
  readonly name: string;
  readonly where: string;
  private readonly identities = new Map<string, Identity>();

  private constructor(
    private readonly host: MasterHost | MetaloggerHost,
    private readonly source: FileSource,
  ) {
    this.name = host.name;
    this.where = `${source.label}:${host.dataPath}`;
  }

  static async open(config: Config, host: MasterHost | MetaloggerHost, signal: AbortSignal): Promise<DataPathTarget> {
    return new DataPathTarget(host, await openSource(config, host, signal));
  }

  private file(name: string): string {
    return path.posix.join(this.host.dataPath, name);
  }

  private async openFiles(): Promise<Set<string> | undefined> {
    if (!this.host.local) return undefined;
    const dir = await fs.realpath(this.host.dataPath).catch(() => this.host.dataPath);
    return new Set([...(await openFilesUnder(dir)).keys()].map((f) => path.basename(f)));
  }

  async scan(): Promise<TargetScan> {
    const listing = await listDataPath(this.source, this.host.dataPath);
    const open = await this.openFiles();
    const images: PlanImage[] = [];
    const metaids = new Set<string>();
    // metadata_ml.tmp is a download in progress: neither a restore point nor ours to delete.
    for (const e of listing.images.filter((i) => i.name !== 'metadata_ml.tmp')) {
      const header = await readSourceImageHeader(this.source, this.file(e.name), e.size);
      if (header.metaid) metaids.add(header.metaid);
      images.push({
        name: e.name,
        unit: e.name,
        version: restoreFrom(header),
        size: e.size,
        mtimeMs: e.mtimeMs,
        deletable: false,
      });
    }
    if (metaids.size > 1)
      throw new ChainError(
        this.where,
        `${this.where}: images of different filesystems (metaids ${[...metaids].join(', ')}): mfsmaster -a would refuse this DATA_PATH, prune will not guess`,
      );
    const changelogs: PlanChangelog[] = [];
    for (const e of listing.changelogs) changelogs.push(await this.scanChangelog(e, open));
    return { images, changelogs, others: [] };
  }

  private async scanChangelog(e: RemoteEntry, open: Set<string> | undefined): Promise<PlanChangelog> {
    const current = isCurrentChangelog(e.name);
    const scan = await scanSourceChangelog(this.source, this.file(e.name), e.size);
    refuseDamagedChangelog(scan, `${this.where}/${e.name}`, current);
    if (!current) {
      const after = await this.source.stat(this.file(e.name));
      if (after.size !== e.size || after.mtimeMs !== e.mtimeMs)
        throw new TargetChanged(
          `${this.where}/${e.name}`,
          `${this.where}/${e.name} changed while it was read (MooseFS rotating?)`,
        );
      this.identities.set(e.name, { size: e.size, mtimeMs: e.mtimeMs, first: scan.first });
    }
    return {
      name: e.name,
      unit: e.name,
      segments: scan.segments,
      size: e.size,
      mtimeMs: e.mtimeMs,
      current,
      open: open?.has(e.name) ?? false,
      rotated: isRotatedChangelog(e.name),
    };
  }

  /** Delete planned changelogs, each only if it is still the file scanned: names shift on every rotation. */
  async remove(entries: readonly PlanEntry[], signal: AbortSignal, onResult: (r: Removal) => void): Promise<void> {
    const open = await this.openFiles();
    for (const entry of entries) {
      const why = signal.aborted ? 'aborted before it was deleted' : await this.unlessSame(entry, open);
      if (why) {
        onResult({ entry, deleted: false, skipped: why });
        continue;
      }
      await this.source.remove(this.file(entry.name));
      onResult({ entry, deleted: true });
    }
  }

  /** Why the file on disk is no longer the one the plan was made for (undefined when it is). */
  private async unlessSame(entry: PlanEntry, open: Set<string> | undefined): Promise<string | undefined> {
    const id = this.identities.get(entry.name);
    if (entry.kind !== 'changelog' || isCurrentChangelog(entry.name) || !id)
      return 'not a rotated changelog scanned by this run';
    if (open?.has(entry.name)) return 'opened by a process since the scan';
    const now = await this.source.stat(this.file(entry.name)).catch(() => undefined);
    if (!now) return 'gone since the scan';
    if (now.size !== id.size || now.mtimeMs !== id.mtimeMs) return 'changed since the scan (rotated?)';
    if (id.first === undefined) return undefined;
    const { first } = await readChangelogEdges(this.source, this.file(entry.name), now.size, {
      head: true,
      tail: false,
    });
    if (first?.version !== id.first) return 'first version differs from the scan (rotated?)';
    return undefined;
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}
