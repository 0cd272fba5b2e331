import { promises as fs } from 'node:fs';
import path from 'node:path';
import { scanChangelogFile, type ChangelogScan } from '../moosefs/changelog.js';
import { metaidSetBy, readChangelogEdges } from '../moosefs/changelog-edges.js';
import type { Config, CopyConfig, MasterHost } from '../core/config.js';
import { changelogBound, listDataPath, readSourceImageHeader } from '../moosefs/datapath.js';
import { ChainError, describeError, TransferError, UntrustedPathError } from '../core/errors.js';
import { isChangelogName, readImageHeader, restoreFrom } from '../moosefs/metadata.js';
import { listSnapshots, type StoredSnapshot } from '../store/manifest.js';
import { fetchFromCopy } from '../store/copy/fetch.js';
import { copyLocalFile, openSource, type FileSource } from '../transport/remote.js';
import type { Limit } from '../transport/listing-bounds.js';
import { archiveSource, snapshotSource } from '../store/snapshot-source.js';
import { ARCHIVE_DIR, archiveDir, listSegments, segmentsFrom } from '../store/segments.js';
import { fetchCopySegments } from '../store/copy/archive.js';
import { storeKeys, type StoreKeys } from '../store/stored-file.js';
import type { DirHandle } from '../core/dirhandle.js';
import { DIR_MODE, renameDurable } from '../core/atomic.js';
import { OTHER_FILESYSTEM_FLAG, restorePointProblem } from '../store/identity.js';
import { foreignRestorePoints, type ExpectedFilesystem } from './identity.js';
import { choosePlan, groupByMetaid, restorable } from './restore-plan.js';
import type { PromoteChangelog, ExcludedSource, PromoteImage, PlanChoice } from './restore-plan.js';
import type { PromoteInventory, SourceRef } from './restore-plan.js';

/**
 * Collecting restore material for a promotion: what every source (metaloggers, 1.x chunkservers'
 * changelog_csback files, the old master's DATA_PATH, the snapshot store) holds, read cheaply (image headers, first and last changelog
 * lines), then only the chosen files fetched into a staging directory and scanned there.
 */

export interface SourceSpec {
  ref: SourceRef;
  /** DATA_PATH or snapshot directory on that source. */
  dir: string;
  open(signal: AbortSignal): Promise<FileSource>;
  /** Removes what was fetched for this source (a copy's snapshot), once promote is done with it. */
  release?: () => Promise<void>;
}

/**
 * Every source promote may read, and why a configured host is not one. `lastResort` fetches an off-site
 * copy's snapshot: a copy is read only when none of `specs` can restore (collectLastResort), and then
 * never beside a reachable restore point (it never outvotes one); it is connected to and listed within
 * `copyWithin` (promote's sourceTimeoutSeconds).
 */
export async function sourceSpecs(
  config: Config,
  oldMasters: readonly MasterHost[],
  signal?: AbortSignal,
  copyWithin?: Limit,
): Promise<{ specs: SourceSpec[]; notes: string[]; lastResort?: LastResort }> {
  const specs: SourceSpec[] = [];
  const notes: string[] = [];
  for (const ml of config.metaloggers) {
    specs.push({
      ref: { name: ml.name, kind: 'metalogger', local: ml.local },
      dir: ml.dataPath,
      open: (signal) => openSource(config, ml, signal),
    });
  }
  for (const cs of config.chunkservers) {
    specs.push({
      ref: { name: cs.name, kind: 'chunkserver', local: cs.local },
      dir: cs.dataPath,
      open: (signal) => openSource(config, cs, signal),
    });
  }
  for (const m of oldMasters) {
    if (!m.local && !m.ssh) {
      notes.push(`${m.name}: not a source (no ssh settings to read its DATA_PATH)`);
      continue;
    }
    specs.push({
      ref: { name: m.name, kind: 'master', local: m.local },
      dir: m.dataPath,
      open: (signal) => openSource(config, m, signal),
    });
  }
  if (config.snapshotStore) {
    const keys = await storeKeys(config);
    const { snapshots, broken } = await listSnapshots(config.snapshotStore.path, keys);
    for (const b of broken) notes.push(`snapshot ${b.id}: not used (${b.error})`);
    for (const s of snapshots) {
      const name = `snapshot:${s.id}`;
      // Read through the store (decompressed, decrypted, checked against the manifest), never as plain files.
      specs.push({
        ref: { name, kind: 'snapshot', local: true },
        dir: s.dir,
        open: async () => snapshotSource(name, s, keys),
      });
    }
    // The archive's segments roll any snapshot's image on past its own changelogs (issue #26), e.g. when the
    // metaloggers are gone with the master: read through the store like the snapshots' files.
    // Only the segments after the newest snapshot's image: each is a file the inventory reads and the restore
    // replays, and a window holds thousands; the older ones serve restore --to-time, not a failover.
    // An archive that cannot be listed is a note: it never stops a failover the snapshots can serve.
    const archive = await listSegments(config.snapshotStore.path, keys).catch((err: unknown) => {
      notes.push(`the changelog archive: not used (${describeError(err)})`);
      return { segments: [], broken: [] };
    });
    for (const b of archive.broken) notes.push(`archive segment ${b.id}: not used (${b.error})`);
    const newestImage = Math.max(-1, ...snapshots.map((s) => restoreFrom(s.manifest.image)));
    const after = newestImage < 0 ? [] : segmentsFrom(archive.segments, newestImage);
    if (after.length) {
      const dir = archiveDir(config.snapshotStore.path);
      specs.push({
        ref: { name: 'archive:store', kind: 'archive', local: true },
        dir,
        open: async () => archiveSource('archive:store', dir, after, keys),
      });
    }
    if (config.snapshotStore.copies.length > 0) {
      const outer = signal;
      const lastResort: LastResort = (signal) =>
        copySpecs(config, keys, notes, outer ? AbortSignal.any([outer, signal]) : signal, copyWithin);
      return { specs, notes, lastResort };
    }
  }
  return { specs, notes };
}

/** Fetches the copy sources, when nothing else can restore. */
export type LastResort = (signal: AbortSignal) => Promise<SourceSpec[]>;

/**
 * A copy's archive as promote reads it: at most this many segments after its newest image (a day of 60 s
 * segments) and this many stored bytes; beyond, the image rolls forward through the oldest of them only.
 */
export const COPY_ARCHIVE_MAX_SEGMENTS = 1440;
export const COPY_ARCHIVE_MAX_BYTES = 2 * 2 ** 30;

/**
 * No live source and no snapshot of the store can restore the cluster's filesystem (the store's disk is
 * gone, the metaloggers do not answer): the newest snapshot of the first off-site copy that answers,
 * fetched and checked into `<stateDir>/copy-fetch/` (lib/store/copy/fetch.ts), is a source like a local one,
 * and the copy's archive after its image (`archive:copy:NAME`, issue #26) one more: the segments downloaded
 * beside it and hashed against their signed manifests (as restore --from copy:NAME does), connected and
 * listed within `within`, downloaded within it again (what came in time is used), bounded in count and bytes.
 * An archive that cannot be fetched is a note: the copy's snapshot alone still restores.
 */
async function copySpecs(
  config: Config,
  keys: StoreKeys,
  notes: string[],
  signal: AbortSignal,
  within?: Limit,
): Promise<SourceSpec[]> {
  for (const copy of config.snapshotStore?.copies ?? []) {
    try {
      const fetched = await fetchFromCopy(config, copy, 'latest', keys, signal, { listWithin: within });
      const name = `copy:${copy.name}:${fetched.snapshot.id}`;
      const into = `${fetched.snapshot.id} from copy ${copy.name} into ${fetched.snapshot.dir}`;
      notes.push(`no live source or snapshot of the store can restore: fetched ${into}`);
      // Its files are the stored bytes, as in the store: read through the same checked stream.
      const specs: SourceSpec[] = [
        {
          ref: { name, kind: 'snapshot', local: true },
          dir: fetched.snapshot.dir,
          open: async () => snapshotSource(name, fetched.snapshot, keys),
          release: () => fetched.cleanup(),
        },
      ];
      const archive = await copyArchiveSpec(config, copy, fetched.snapshot, keys, notes, signal, within);
      if (archive) specs.push(archive);
      return specs;
    } catch (err) {
      notes.push(`copy ${copy.name}: not used (${describeError(err)})`);
    }
  }
  return [];
}

/** The copy's segments after its fetched snapshot's image, into that snapshot's private directory. */
async function copyArchiveSpec(
  config: Config,
  copy: CopyConfig,
  snapshot: StoredSnapshot,
  keys: StoreKeys,
  notes: string[],
  signal: AbortSignal,
  within?: Limit,
): Promise<SourceSpec | undefined> {
  const name = `archive:copy:${copy.name}`;
  const dir = path.join(snapshot.dir, ARCHIVE_DIR);
  try {
    await fs.mkdir(dir, { mode: DIR_MODE });
    const bounds = { within, maxSegments: COPY_ARCHIVE_MAX_SEGMENTS, maxBytes: COPY_ARCHIVE_MAX_BYTES, notes };
    const from = restoreFrom(snapshot.manifest.image);
    const segments = segmentsFrom(await fetchCopySegments(config, copy, from, keys, dir, signal, bounds), from);
    if (!segments.length) return undefined;
    const span = `${segments[0]!.manifest.first}..${segments.at(-1)!.manifest.last}`;
    notes.push(`copy ${copy.name}: fetched ${segments.length} archive segments after its image (${span})`);
    // Read like the store's archive: decompressed, decrypted, every byte against its manifest.
    return {
      ref: { name, kind: 'archive', local: true },
      dir,
      open: async () => archiveSource(name, dir, segments, keys),
    };
  } catch (err) {
    // Stopped too: the snapshot goes back to the caller (who releases it), the promotion sees the signal.
    notes.push(`copy ${copy.name}: its archive not used (${describeError(err)})`);
    return undefined;
  }
}

/** Into the staging directory: a crash discards it, and DirHandle.place syncs what it places from there. */
const STAGED = { durable: false } as const;

/**
 * `work`, or the signal's reason as soon as it aborts. What `work` gives after that is handed to
 * `dispose` (an SFTP connection that opened too late is closed, not leaked) and its failure is
 * swallowed: a rejection nobody waits for would end the daemon.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, dispose?: (late: T) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) void Promise.resolve(dispose?.(v)).catch(() => undefined);
        resolve(v);
      },
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

export interface CollectedSource {
  spec: SourceSpec;
  /** Open while the promotion may still fetch from it; closed by `closeSources`. */
  files?: FileSource;
  inventory: PromoteInventory;
}

async function readInventory(spec: SourceSpec, files: FileSource): Promise<PromoteInventory> {
  const inv: PromoteInventory = { source: spec.ref, images: [], changelogs: [], notes: [] };
  const listing = await listDataPath(files, spec.dir);
  const at = (name: string) => path.posix.join(spec.dir, name);
  await Promise.all([
    ...listing.images.map(async (e) => {
      try {
        const h = await readSourceImageHeader(files, at(e.name), e.size);
        inv.images.push({
          source: spec.ref.name,
          name: e.name,
          path: at(e.name),
          size: e.size,
          version: restoreFrom(h),
          metaid: h.metaid,
          empty: h.empty,
          local: spec.ref.local,
        });
      } catch (err) {
        inv.notes.push(`${e.name}: not used (${describeError(err)})`);
      }
    }),
    ...listing.changelogs.map(async (e) => {
      if (e.size === 0) return;
      const { first, last } = await readChangelogEdges(files, at(e.name), e.size);
      if (!first || !last) {
        inv.notes.push(`${e.name}: not used (no complete changelog line)`);
        return;
      }
      const metaid = metaidSetBy(first);
      if (metaid) inv.metaid ??= metaid;
      inv.changelogs.push({
        source: spec.ref.name,
        name: e.name,
        path: at(e.name),
        size: e.size,
        local: spec.ref.local,
        segments: last.version >= first.version ? [{ first: first.version, last: last.version }] : [],
        scanned: false,
        lastTimestamp: last.timestamp,
        clean: false,
      });
    }),
  ]);
  const newestImage = inv.images.filter((i) => !i.empty).sort((a, b) => b.version - a.version)[0];
  if (newestImage) inv.metaid = newestImage.metaid;
  return inv;
}

/**
 * Read every source in parallel, each within `timeoutMs` (a dead host must not hold up a failover).
 * `abortFor(name)` may give a signal that drops one source early (fencing found its host unreachable).
 */
export async function collectSources(
  specs: readonly SourceSpec[],
  o: { timeoutMs: number; signal: AbortSignal; abortFor?: (name: string) => AbortSignal | undefined },
): Promise<CollectedSource[]> {
  return Promise.all(
    specs.map(async (spec) => {
      const signals = [o.signal, AbortSignal.timeout(o.timeoutMs)];
      const early = o.abortFor?.(spec.ref.name);
      if (early) signals.push(early);
      const signal = AbortSignal.any(signals);
      let files: FileSource | undefined;
      try {
        if (signal.aborted) throw signal.reason;
        files = await untilAborted(spec.open(signal), signal, (late) => late.close());
        const inventory = await untilAborted(readInventory(spec, files), signal);
        return { spec, files, inventory };
      } catch (err) {
        await files?.close();
        const reason = signal.aborted ? describeError(signal.reason) : describeError(err);
        return { spec, inventory: { source: spec.ref, images: [], changelogs: [], notes: [], error: reason } };
      }
    }),
  );
}

/**
 * The copy as promote's last resort: only when the sources read within sourceTimeoutSeconds cannot
 * restore the cluster's filesystem (`restorable`) is `lastResort` fetched and read, and its snapshot
 * joins them. With the cluster's metaid unknown, a copy's image that names one is dropped unless
 * `otherFilesystem` (lib/store/identity.ts): nothing of root's vouches for it. `fetched` receives the
 * copy's specs, for their release once the promotion is done.
 */
export async function collectLastResort(
  collected: CollectedSource[],
  lastResort: LastResort | undefined,
  o: {
    expected?: ExpectedFilesystem;
    otherFilesystem: boolean;
    unknownBecause?: string;
    timeoutMs: number;
    signal: AbortSignal;
    fetched: SourceSpec[];
  },
): Promise<CollectedSource[]> {
  if (
    !lastResort ||
    restorable(
      collected.map((c) => c.inventory),
      o.expected?.metaids,
    )
  )
    return collected;
  const specs = await lastResort(o.signal);
  o.fetched.push(...specs);
  const copies = await collectSources(specs, { timeoutMs: o.timeoutMs, signal: o.signal });
  if (!o.expected && !o.otherFilesystem) {
    for (const { inventory: inv } of copies) {
      const problemOf = (img: PromoteImage) =>
        restorePointProblem(img.name, img.metaid, 'copy', undefined, o.unknownBecause);
      const problems = new Map(inv.images.map((img) => [img, problemOf(img)] as const));
      const refused = [...problems.values()].filter((p): p is string => p !== undefined);
      inv.notes.push(...refused.map((p) => `${p}: not used (${OTHER_FILESYSTEM_FLAG} to use it anyway)`));
      inv.images = inv.images.filter((img) => !problems.get(img));
    }
  }
  return [...collected, ...copies];
}

export async function closeSources(sources: readonly CollectedSource[]): Promise<void> {
  await Promise.all(sources.map((s) => s.files?.close().catch(() => undefined)));
}

/** A file the plan wants staged; images carry version and metaid, changelogs their runs (how the mirror knows them). */
export interface StagedFile {
  source: string;
  name: string;
  path: string;
  local: boolean;
  size: number;
  version?: number;
  metaid?: string;
  segments?: { first: number }[];
}

/** Where Staging may find a file's bytes before it fetches them (the warm standby's mirror, mirror.ts). */
export interface StagingMirror {
  stage(
    file: StagedFile,
    files: FileSource,
    tmp: string,
  ): Promise<{ reused: number; fetched: number; scan?: ChangelogScan } | undefined>;
}

/**
 * Where fetched files wait before they are placed: on the standby's disk, so placing is a rename,
 * never a second copy. Each file is fetched once, however often the plan is revised.
 */
export class Staging {
  private readonly fetched = new Map<string, Promise<string>>();
  /** Bytes fetched or copied from sources. */
  bytes = 0;
  /** Bytes the warm standby's mirror gave instead (mirror.ts). */
  reused = 0;
  /** Scans the mirror kept of the changelogs it staged: no second pass over them. */
  private readonly scans = new Map<string, ChangelogScan>();

  /** `owned`: the private directory `dir` reaches (through its held descriptor), removed by `remove`. */
  constructor(
    readonly dir: string,
    private readonly sources: ReadonlyMap<string, FileSource>,
    private readonly mirror?: StagingMirror,
    private readonly owned?: DirHandle,
  ) {}

  /** Remove every staged file and the directory (a dry run's temp directory, or the private one in DATA_PATH). */
  async remove(): Promise<void> {
    if (this.owned) await this.owned.discard();
    else await fs.rm(this.dir, { recursive: true, force: true });
  }

  /** A file's size where it lies (lstat locally, stat over SFTP), for one the inventory did not list. */
  async sizeOf(file: { source: string; path: string; local: boolean }): Promise<number> {
    const open = this.sources.get(file.source);
    if (file.local && !open) {
      const st = await fs.lstat(file.path);
      if (!st.isFile()) throw new UntrustedPathError(file.path, `${file.path}: not a regular file`);
      return st.size;
    }
    const files = this.sources.get(file.source);
    if (!files) throw new TransferError(file.source, `${file.source}: source is closed`);
    const st = await files.stat(file.path);
    if (!st.isFile) throw new UntrustedPathError(file.path, `${file.path}: not a regular file`);
    return st.size;
  }

  /** The scan of a staged file, if the mirror already had it. */
  scanOf(staged: string): ChangelogScan | undefined {
    return this.scans.get(staged);
  }

  fetch(file: StagedFile, signal: AbortSignal): Promise<string> {
    const key = `${file.source}\0${file.name}`;
    let p = this.fetched.get(key);
    if (!p) {
      p = this.copy(file, signal);
      this.fetched.set(key, p);
      p.catch(() => this.fetched.delete(key));
    }
    return p;
  }

  private async copy(file: StagedFile, signal: AbortSignal): Promise<string> {
    const target = path.join(this.dir, `${file.source.replace(/[^A-Za-z0-9_.-]/g, '_')}--${file.name}`);
    const tmp = `${target}.part`;
    const files = this.sources.get(file.source);
    const mirrored =
      !file.local && files && this.mirror
        ? await this.mirror.stage(file, files, tmp).catch(() => undefined)
        : undefined;
    if (mirrored) {
      await fs.chmod(tmp, 0o600);
      await renameDurable(tmp, target, STAGED);
      if (mirrored.scan) this.scans.set(target, { ...mirrored.scan, file: target });
      this.bytes += mirrored.fetched;
      this.reused += mirrored.reused;
      return target;
    }
    // Only the live changelog (N = 0) may have grown since it was listed; rotated ones and images are fixed.
    const bound = isChangelogName(file.name) ? changelogBound(file.name, file.size) : { size: file.size };
    if (file.local && !files) {
      // A local file is cloned where the filesystem can (reflink), copied otherwise: never transferred;
      // never through a symlink planted in the source directory, never more than its bound. (An open
      // local source does the same in its download; a snapshot's decompresses and checks.)
      await copyLocalFile(file.source, file.path, tmp, bound);
    } else {
      if (!files) throw new TransferError(file.source, `${file.source}: source is closed`);
      await files.download(file.path, tmp, { signal, bound });
    }
    await fs.chmod(tmp, 0o600);
    await renameDurable(tmp, target, STAGED);
    // Read the size first: `this.bytes += await …` would add to a stale total when fetches run side by side.
    const { size } = await fs.stat(target);
    this.bytes += size;
    return target;
  }
}

/**
 * Scan a fetched changelog: its real runs replace the first/last guess. A file whose versions go
 * backwards holds two histories — a 1.6.4 chunkserver that survived its master appends the new
 * master's changes, numbered from where the new master began, after the dead master's buffered tail —
 * and versions from both would pass for one run: such a file is not used.
 */
export async function scanFetched(c: PromoteChangelog, staged: string, known?: ChangelogScan): Promise<void> {
  const scan = known ?? (await scanChangelogFile(staged));
  const rewind = scan.problems.find((p) => p.kind === 'backwards');
  if (rewind) throw new ChainError(staged, `line ${rewind.line}: ${rewind.reason}: two histories in one file`);
  c.segments = scan.segments.map((s) => ({ ...s }));
  c.scanned = true;
  c.lastTimestamp = scan.lastTimestamp;
  c.clean = scan.segments.length === 1 && scan.problems.length === 0 && !scan.truncatedLastLine;
  c.cutLastLine = scan.truncatedLastLine;
}

/** The staged image must be the one whose header was read on the source (not replaced meanwhile). */
async function verifyStagedImage(image: PromoteImage, staged: string): Promise<void> {
  const h = await readImageHeader(staged, { checkEnding: true });
  const version = restoreFrom(h);
  if (version !== image.version || h.metaid !== image.metaid) {
    throw new ChainError(
      staged,
      `fetched copy is version ${version} metaid ${h.metaid || '-'}, the source said ${image.version} ${image.metaid || '-'} (replaced during the transfer?)`,
    );
  }
}

export interface SettledPlan {
  choice: PlanChoice;
  excluded: ExcludedSource[];
  /** Staged copy of the plan's image (unset when not fetched: dry run). */
  imageStaged?: string;
  /** Files that failed to fetch or verify, one line each; the plan was made without them. */
  dropped: string[];
}

/**
 * Choose, fetch, scan, choose again until the plan stands on scanned files: the first/last-line
 * guess is optimistic (a file may hide a hole), so every file the plan uses is scanned before it
 * counts. The image is fetched alongside the changelogs (it is the big transfer). A file that fails
 * is dropped and the plan made again without it.
 */
export async function settlePlan(
  inventories: PromoteInventory[],
  staging: Staging,
  o: { fetchImage: boolean; expected?: ExpectedFilesystem; signal: AbortSignal },
): Promise<SettledPlan | { failure: string; dropped: string[] }> {
  // Restore points of another filesystem than the cluster's never win, however far they reach.
  const dropped: string[] = foreignRestorePoints(inventories, o.expected);
  const drop = (file: PromoteImage | PromoteChangelog, err: unknown) => {
    dropped.push(`${file.source}:${file.name}: not used (${describeError(err)})`);
    for (const inv of inventories) {
      inv.images = inv.images.filter((i) => i !== file);
      inv.changelogs = inv.changelogs.filter((c) => c !== file);
    }
  };
  for (;;) {
    if (o.signal.aborted) throw o.signal.reason;
    const { groups, excluded } = groupByMetaid(inventories);
    const choice = choosePlan(groups, o.expected?.metaids);
    if (!choice)
      return {
        failure: o.expected?.known
          ? `no usable metadata image of metaid ${o.expected.metaids.join(' or ')} (${o.expected.from}) on any source`
          : 'no usable metadata image on any source',
        dropped,
      };
    const { plan } = choice;
    const pending = plan.steps.map((s) => s.changelog).filter((c) => !c.scanned);
    const image = o.fetchImage
      ? staging.fetch(plan.image, o.signal).then(async (p) => (await verifyStagedImage(plan.image, p), p))
      : Promise.resolve(undefined);
    const scans = pending.map((c) =>
      staging
        .fetch(c, o.signal)
        .then((p) => scanFetched(c, p, staging.scanOf(p)))
        .catch((err: unknown) => drop(c, err)),
    );
    const [imageResult] = await Promise.allSettled([image, ...scans]);
    if (imageResult.status === 'rejected') {
      drop(plan.image, imageResult.reason);
      continue;
    }
    if (pending.length === 0) return { choice, excluded, imageStaged: imageResult.value, dropped };
  }
}
