import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DIR_MODE, renameDurable } from '../core/atomic.js';
import { ChainError } from '../core/errors.js';
import { restoreFrom } from '../moosefs/metadata.js';
import { LATEST, listSnapshots, MANIFEST, snapshotsDir, TMP_DIR, type StoredSnapshot } from '../store/manifest.js';
import { readSnapshotContent, storedPathOf, storedSizeOf, type StoreKeys } from '../store/stored-file.js';
import { openFilesUnder } from '../core/openfiles.js';
import { printable } from '../core/names.js';
import { foreignMetaidMessage, type ClusterIdentity } from '../store/identity.js';
import { readPins } from '../store/pins.js';
import type { PlanChangelog, PlanEntry, PlanImage, PlanOtherFile } from './plan.js';
import { refuseDamagedChangelog, type PruneTarget, type Removal, type TargetScan } from './target.js';

/** Prune's own leftovers in `<store>/.tmp/`: snapshots it had already taken out of the store when it was killed. */
const TRASH_PREFIX = 'prune-';

/**
 * The snapshot store. A snapshot directory is one unit: it goes whole (renamed out of `snapshots/`
 * in one step, then removed) or not at all, so every listed snapshot stays complete. Every file is
 * checked against its manifest and every changelog scanned before anything is planned.
 */
export class SnapshotStoreTarget implements PruneTarget {
  readonly name = 'store';
  readonly where: string;
  private latest: string | undefined;
  /** Snapshots pinned by `snapshot pin`: kept like the target of `latest`. */
  private pins = new Set<string>();

  /** `dryRun`: change nothing at all, not even prune's own leftovers from a killed run. */
  constructor(
    private readonly store: string,
    private readonly dryRun: boolean,
    private readonly identity: ClusterIdentity | undefined,
    private readonly keys: StoreKeys,
  ) {
    this.where = `store (${store})`;
  }

  async scan(): Promise<TargetScan> {
    if (!this.dryRun) await this.emptyTrash();
    const { snapshots, broken } = await listSnapshots(this.store, this.keys);
    if (broken[0])
      throw new ChainError(
        path.join(snapshotsDir(this.store), broken[0].id),
        `snapshot ${broken[0].id}: ${broken[0].error}`,
      );
    const { ours, warnings } = this.ofTheCluster(snapshots);
    this.latest = await this.latestId();
    this.pins = new Set(Object.keys(await readPins(this.store)));
    const open = await this.openFiles();
    const out: TargetScan = { images: [], changelogs: [], others: [], warnings };
    for (const s of ours) await this.scanSnapshot(s, open, out);
    return out;
  }

  /**
   * Only the cluster's filesystem is pruned: another metaid's snapshots (an import with
   * --other-filesystem) are left alone, named in a warning, and never outvote the cluster's chain.
   * Without a known identity and with several metaids, prune cannot tell which is ours and refuses.
   */
  private ofTheCluster(snapshots: StoredSnapshot[]): { ours: StoredSnapshot[]; warnings: string[] } {
    const metaidOf = (s: StoredSnapshot) => (s.manifest.image.empty ? '' : s.manifest.image.metaid);
    const byMetaid = new Map<string, string[]>();
    for (const s of snapshots) if (metaidOf(s)) byMetaid.set(metaidOf(s), [...(byMetaid.get(metaidOf(s)) ?? []), s.id]);
    const listed = (ids: string[]) =>
      `${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ` and ${ids.length - 3} more` : ''}`;
    if (!this.identity) {
      if (byMetaid.size > 1) {
        const seen = [...byMetaid].map(([m, ids]) => `metaid ${printable(m).slice(0, 40)}: ${listed(ids)}`).join('; ');
        throw new ChainError(
          this.store,
          `${this.where}: snapshots of different filesystems (${seen}) and no cluster identity known: set cluster.metaid in the config to say which filesystem this store backs up (prune then leaves the others alone)`,
        );
      }
      return { ours: snapshots, warnings: [] };
    }
    const identity = this.identity;
    const ours = snapshots.filter((s) => !metaidOf(s) || metaidOf(s) === identity.metaid);
    const warnings = [...byMetaid]
      .filter(([m]) => m !== identity.metaid)
      .map(
        ([m, ids]) =>
          `${foreignMetaidMessage(`snapshot${ids.length > 1 ? 's' : ''} ${listed(ids)}`, m, identity)}: left alone, not pruned (remove ${ids.length > 1 ? 'them' : 'it'} by hand if unwanted)`,
      );
    return { ours, warnings };
  }

  /** Files under snapshots/ some process holds open, as `<id>/<name>`. */
  private async openFiles(): Promise<Set<string>> {
    const root = await fs.realpath(snapshotsDir(this.store)).catch(() => snapshotsDir(this.store));
    return new Set([...(await openFilesUnder(root)).keys()].map((f) => path.relative(root, f)));
  }

  private async latestId(): Promise<string | undefined> {
    const target = await fs.readlink(path.join(this.store, LATEST)).catch(() => undefined);
    return target ? path.basename(target) : undefined;
  }

  /** Check one snapshot against its manifest and add its files to the scan; a ChainError on any damage. */
  private async scanSnapshot(s: StoredSnapshot, open: Set<string>, out: TargetScan): Promise<void> {
    const where = (name: string) => `snapshot ${s.id}/${name}`;
    const takenAt = Date.parse(s.manifest.finishedAt);
    const listed = new Set(s.manifest.files.map((f) => f.stored?.name ?? f.name));
    let images = 0;
    for (const f of s.manifest.files) {
      const file = storedPathOf(s, f);
      const stored = f.stored?.name ?? f.name;
      const st = await fs.stat(file).catch(() => undefined);
      if (!st) throw new ChainError(file, `${where(stored)}: listed in ${MANIFEST} but missing`);
      if (st.size !== storedSizeOf(f))
        throw new ChainError(file, `${where(stored)}: ${st.size} B on disk, ${MANIFEST} says ${storedSizeOf(f)} B`);
      const name = `${s.id}/${stored}`;
      if (f.role === 'image') {
        images++;
        const facts = await readSnapshotContent(s, f, { keys: this.keys });
        if (!facts.header) throw new ChainError(file, `${where(f.name)}: ${facts.headerError}`);
        const header = facts.header;
        const version = restoreFrom(header);
        if (header.version !== s.manifest.image.version)
          throw new ChainError(
            file,
            `${where(f.name)}: image version ${header.version}, ${MANIFEST} says ${s.manifest.image.version}`,
          );
        out.images.push({
          name,
          unit: s.id,
          version,
          size: st.size,
          mtimeMs: Number.isFinite(takenAt) ? takenAt : st.mtimeMs,
          deletable: true,
          pinned: s.id === this.latest || this.pins.has(s.id),
        } satisfies PlanImage);
      } else if (f.role === 'sessions') {
        // A 1.x image's sessions.mfs: goes with its snapshot, holds no versions.
        out.others.push({ name, unit: s.id, size: st.size, mtimeMs: st.mtimeMs } satisfies PlanOtherFile);
      } else {
        const scan = (await readSnapshotContent(s, f, { keys: this.keys })).scan!;
        refuseDamagedChangelog(scan, where(f.name), false);
        if (
          (f.firstVersion !== undefined && f.firstVersion !== scan.first) ||
          (f.lastVersion !== undefined && f.lastVersion !== scan.last)
        ) {
          throw new ChainError(
            file,
            `${where(f.name)}: holds versions ${scan.first ?? '-'}..${scan.last ?? '-'}, ${MANIFEST} says ${f.firstVersion}..${f.lastVersion}`,
          );
        }
        out.changelogs.push({
          name,
          unit: s.id,
          segments: scan.segments,
          size: st.size,
          mtimeMs: st.mtimeMs,
          current: false,
          open: open.has(name),
          rotated: false,
        } satisfies PlanChangelog);
      }
    }
    if (images !== 1) throw new ChainError(s.dir, `snapshot ${s.id}: ${MANIFEST} lists ${images} images, expected 1`);
    for (const name of (await fs.readdir(s.dir)).filter((n) => !listed.has(n))) {
      const st = await fs.stat(path.join(s.dir, name));
      out.others.push({
        name: `${s.id}/${name}`,
        unit: s.id,
        size: st.isFile() ? st.size : 0,
        mtimeMs: st.mtimeMs,
      } satisfies PlanOtherFile);
    }
  }

  /** Take each planned snapshot out of the store in one rename, make that durable, then remove it. */
  async remove(entries: readonly PlanEntry[], signal: AbortSignal, onResult: (r: Removal) => void): Promise<void> {
    const byUnit = new Map<string, PlanEntry[]>();
    for (const e of entries) byUnit.set(e.unit, [...(byUnit.get(e.unit) ?? []), e]);
    const open = [...(await this.openFiles())];
    const latest = await this.latestId();
    const trash = path.join(this.store, TMP_DIR);
    await fs.mkdir(trash, { recursive: true, mode: DIR_MODE });
    for (const [id, unitEntries] of byUnit) {
      const dir = path.join(snapshotsDir(this.store), id);
      const why = signal.aborted
        ? 'aborted before it was deleted'
        : id === latest
          ? 'latest points to it now'
          : open.some((f) => f.startsWith(`${id}/`))
            ? 'opened by a process since the scan'
            : undefined;
      if (why) {
        for (const entry of unitEntries) onResult({ entry, deleted: false, skipped: why });
        continue;
      }
      const gone = path.join(trash, `${TRASH_PREFIX}${id}`);
      await renameDurable(dir, gone);
      await fs.rm(gone, { recursive: true, force: true });
      for (const entry of unitEntries) onResult({ entry, deleted: true });
    }
  }

  private async emptyTrash(): Promise<void> {
    const trash = path.join(this.store, TMP_DIR);
    const names = await fs.readdir(trash).catch(() => [] as string[]);
    for (const n of names.filter((n) => n.startsWith(TRASH_PREFIX)))
      await fs.rm(path.join(trash, n), { recursive: true, force: true });
  }

  async close(): Promise<void> {}
}
