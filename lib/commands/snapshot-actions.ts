import { DateTime } from 'luxon';
import { loadConfig, type Config } from '../core/config.js';
import { ConfigError, UsageError } from '../core/errors.js';
import { acquireLock } from '../core/lock.js';
import { checkStrictModes } from '../core/strict-modes.js';
import type { Manifest, StoredSnapshot } from '../store/manifest.js';
import { formatBytes } from '../core/progress.js';
import { exportSnapshot, findSnapshot, importSnapshot } from '../store/snapshot-archive.js';
import { readLatest, refreshLatest, viewStore } from '../store/snapshot-store.js';
import { keyProblem, storedSizeOf, storeKeys, storeWriteSettings, type StoreKeys } from '../store/stored-file.js';
import { signSnapshots } from '../store/sign.js';
import { MAX_NOTE, readPins, writePins } from '../store/pins.js';
import { clusterIdentity } from '../store/identity.js';
import { formatTable } from '../core/table.js';
import { printable } from '../core/names.js';
import { findCopy } from '../store/copy/fetch.js';
import { listCopy } from '../store/copy/listing.js';
import { openCopy } from '../store/copy/open.js';
import { describeImageVersion, EMPTY_IMAGE_MAGIC } from '../moosefs/metadata.js';
import { listSegments } from '../store/segments.js';
import { newestRecoverable, type Recoverable } from '../backup/incremental.js';

/*
 * Every text field shown here comes from a manifest, i.e. possibly from an imported archive: it passes
 * `printable`, so a source name cannot carry an escape sequence to the operator's terminal.
 */

/** What `snapshot …` does (registered in snapshot.ts, which imports this file only when one runs). */
export interface Globals {
  config?: string;
  verbose?: boolean;
}

async function storeOf(globals: Globals): Promise<{ config: Config; store: string }> {
  const config = await loadConfig(globals.config);
  if (!config.snapshotStore)
    throw new ConfigError(
      'snapshotStore.path',
      `${config.file}: snapshotStore.path is not set: there is no snapshot store`,
    );
  return { config, store: config.snapshotStore.path };
}

function bytesOf(m: Manifest): number {
  return m.files.reduce((s, f) => s + f.size, 0);
}

function storedBytesOf(m: Manifest): number {
  return m.files.reduce((s, f) => s + storedSizeOf(f), 0);
}

/** `zstd`, `zstd + aes-256-gcm (key 0123…)`, `none`; mixed when the files differ. */
function storageOf(m: Manifest): string {
  const forms = new Set(
    m.files.map(
      (f) =>
        `${f.stored?.compression ?? 'none'}${f.stored?.encryption ? ` + aes-256-gcm (key ${f.stored.encryption.keyId})` : ''}`,
    ),
  );
  return [...forms].join(', ');
}

/** `7.1x` (content bytes over stored bytes). */
function ratioOf(m: Manifest): string {
  const stored = storedBytesOf(m);
  return stored > 0 ? `${(bytesOf(m) / stored).toFixed(1)}x` : '-';
}

/** Why this snapshot cannot be read with the configured key (missing, wrong, unusable), or undefined. */
function keyStateOf(m: Manifest, keys: StoreKeys): string | undefined {
  for (const f of m.files) {
    const problem = keyProblem(f, keys);
    if (problem) return problem;
  }
  return undefined;
}

function summaryOf(s: StoredSnapshot, latest: string | undefined, keys: StoreKeys = {}) {
  const m = s.manifest;
  return {
    id: s.id,
    latest: s.id === latest,
    source: m.source.name,
    role: m.source.role,
    image: m.image.name,
    imageVersion: m.image.version,
    emptyImage: m.image.empty,
    changelogs: m.changelogs,
    reachesVersion: m.reachesVersion,
    files: m.files.length,
    bytes: bytesOf(m),
    storedBytes: storedBytesOf(m),
    storage: storageOf(m),
    ratio: ratioOf(m),
    keyProblem: keyStateOf(m, keys) ?? null,
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
  };
}

function when(iso: string, zone: string): string {
  return DateTime.fromISO(iso, { zone }).toFormat('yyyy-LL-dd HH:mm:ss');
}

/** `snapshot list --copy NAME`: the copy's own listing, read through its repository (complete ones have their manifest). */
async function listCopySnapshots(globals: Globals, name: string, json: boolean): Promise<void> {
  const { config } = await storeOf(globals);
  const copy = findCopy(config, name, '--copy');
  const repo = await openCopy(config, copy);
  let listing;
  try {
    listing = await listCopy(repo, await storeKeys(config));
  } finally {
    await repo.close();
  }
  const rows = listing.complete.map((s) => summaryOf({ id: s.id, dir: '', manifest: s.manifest }, undefined));
  if (json) {
    process.stdout.write(
      JSON.stringify(
        {
          copy: copy.name,
          where: repo.label,
          snapshots: rows.map(({ latest: _, ...r }) => r),
          incomplete: listing.incomplete,
          broken: listing.broken,
          skipped: listing.skipped,
        },
        null,
        2,
      ) + '\n',
    );
    return;
  }
  const table = formatTable(
    ['ID', 'SOURCE', 'VERSION', 'IMAGE', 'SIZE', `TAKEN (${config.timezone})`],
    rows.map((r) =>
      [
        r.id,
        r.source,
        String(r.reachesVersion),
        `${r.image} ${describeImageVersion({ empty: r.emptyImage, version: r.imageVersion }, { short: true })}`,
        formatBytes(r.bytes),
        when(r.startedAt, config.timezone),
      ].map(printable),
    ),
  );
  const notes = [
    `copy ${repo.label}: ${rows.length} complete snapshot${rows.length === 1 ? '' : 's'}`,
    ...listing.incomplete.map((id) => `incomplete (no manifest yet): ${id}`),
    ...listing.broken.map((b) => `unusable: ${b.id}: ${b.error}`),
  ];
  process.stdout.write([table, ...notes.map(printable)].join('\n') + '\n');
}

function recoverableLine(r: Recoverable, zone: string): string {
  const at = r.time === undefined ? '' : ` (${when(new Date(r.time * 1000).toISOString(), zone)})`;
  const how = `${r.snapshot}'s image rolled forward through the archive`;
  return `newest recoverable moment: version ${r.version}${at}: ${how}`;
}

export async function list(globals: Globals, json: boolean, copy?: string): Promise<void> {
  if (copy !== undefined) return listCopySnapshots(globals, copy, json);
  const { config, store } = await storeOf(globals);
  const keys = await storeKeys(config);
  const { healthy, broken } = await viewStore(store, keys);
  const latest = await readLatest(store);
  const pins = await readPins(store);
  const rows = healthy.map((s) => ({ ...summaryOf(s, latest, keys), pin: pins[s.id] ?? null }));
  // Images are kept once and rolled forward by the archive (issue #26): its end is the store's newest moment.
  const { segments } = await listSegments(store, keys);
  const recoverable = newestRecoverable(healthy, { segments: segments.map((x) => x.manifest) }) ?? null;
  if (json) {
    const doc = { store, latest: latest ?? null, snapshots: rows, broken, recoverable };
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    return;
  }
  const table = formatTable(
    ['ID', 'SOURCE', 'VERSION', 'IMAGE', 'CHANGELOGS', 'SIZE', 'STORED', `TAKEN (${config.timezone})`],
    rows.map((r) =>
      [
        `${r.id}${r.latest ? ' *' : ''}${r.pin ? ' P' : ''}`,
        r.source,
        String(r.reachesVersion),
        `${r.image} ${describeImageVersion({ empty: r.emptyImage, version: r.imageVersion }, { short: true })}`,
        r.changelogs.first !== undefined ? `${r.changelogs.first}..${r.changelogs.last}` : '-',
        formatBytes(r.bytes),
        `${formatBytes(r.storedBytes)} ${r.storage}${r.keyProblem ? ' KEY!' : ''}`,
        when(r.startedAt, config.timezone),
      ].map(printable),
    ),
  );
  const notes = [
    rows.length ? '* = latest, P = pinned' : `no snapshots in ${store}`,
    ...(recoverable?.throughArchive ? [recoverableLine(recoverable, config.timezone)] : []),
    ...rows
      .filter((r) => r.pin)
      .map((r) => `pinned: ${r.id}: ${r.pin!.note || '(no note)'} (since ${r.pin!.pinnedAt})`),
    ...rows.filter((r) => r.keyProblem).map((r) => `cannot be read: ${r.id}: ${r.keyProblem}`),
    ...broken.map((b) => `unusable: ${b.id}: ${b.error}`),
  ];
  process.stdout.write([table, ...notes.map(printable)].join('\n') + '\n');
}

export async function show(globals: Globals, id: string, json: boolean): Promise<void> {
  const { config, store } = await storeOf(globals);
  const keys = await storeKeys(config);
  const snap = await findSnapshot(store, id, keys);
  const latest = await readLatest(store);
  const m = snap.manifest;
  const keyState = keyStateOf(m, keys);
  const pin = (await readPins(store))[snap.id];
  if (json) {
    process.stdout.write(
      JSON.stringify(
        {
          dir: snap.dir,
          latest: snap.id === latest,
          pin: pin ?? null,
          storage: storageOf(m),
          storedBytes: storedBytesOf(m),
          bytes: bytesOf(m),
          ratio: ratioOf(m),
          keyProblem: keyState ?? null,
          manifest: m,
        },
        null,
        2,
      ) + '\n',
    );
    return;
  }
  const head = [
    ['snapshot', `${snap.id}${snap.id === latest ? ' (latest)' : ''}`],
    ['directory', snap.dir],
    ['source', `${m.source.name} (${m.source.role}) ${m.source.host}:${m.source.dataPath}`],
    [
      'image',
      `${m.image.name} version ${m.image.version}${m.image.empty ? ` (${EMPTY_IMAGE_MAGIC}, empty)` : ''}, metaid ${m.image.metaid || '-'}`,
    ],
    ['changelogs', m.changelogs.first !== undefined ? `${m.changelogs.first}..${m.changelogs.last}` : 'none needed'],
    ['reaches', `metadata version ${m.reachesVersion}`],
    [
      'stored',
      `${storageOf(m)}: ${formatBytes(storedBytesOf(m))} for ${formatBytes(bytesOf(m))} of metadata, ratio ${ratioOf(m)}`,
    ],
    ['taken', `${when(m.startedAt, config.timezone)} .. ${when(m.finishedAt, config.timezone)} (${config.timezone})`],
    ['mfs-jobs', m.mfsJobsVersion],
    ...(pin ? [['pinned', `${pin.note || '(no note)'} (since ${pin.pinnedAt})`]] : []),
    ...(keyState ? [['key', `cannot be read: ${keyState}`]] : []),
  ];
  const files = formatTable(
    ['FILE', 'ROLE', 'SIZE', 'STORED AS', 'VERSIONS', 'SHA256 (HMAC if sealed)', 'FROM'],
    m.files.map((f) =>
      [
        f.name,
        f.role,
        String(f.size),
        f.stored ? `${f.stored.name} ${f.stored.size}` : '-',
        f.firstVersion !== undefined ? `${f.firstVersion}..${f.lastVersion}` : '-',
        f.sha256 ?? `hmac ${f.hmac}`,
        f.sourcePath,
      ].map((c) => printable(String(c))),
    ),
  );
  const width = Math.max(...head.map(([k]) => k!.length)) + 2;
  process.stdout.write(head.map(([k, v]) => `${k!.padEnd(width)}${printable(v!)}`).join('\n') + '\n\n' + files + '\n');
}

export async function exportCmd(globals: Globals, id: string, file: string): Promise<void> {
  const { config, store } = await storeOf(globals);
  const res = await exportSnapshot(store, id, file, await storeKeys(config));
  process.stdout.write(`exported snapshot ${res.id} to ${res.file} (${formatBytes(res.bytes)}), checksums verified\n`);
}

export async function importCmd(globals: Globals, file: string, otherFilesystem: boolean): Promise<void> {
  const { config, store } = await storeOf(globals);
  // The backup job's lock: an import writes into the store like a backup does, and a backup run
  // removes leftover temp dirs it must not take from a live import.
  await checkStrictModes(config);
  const lock = await acquireLock(config.lockDir, 'backup');
  try {
    const res = await importSnapshot(store, file, {
      otherFilesystem,
      identity: await clusterIdentity(config),
      keys: await storeKeys(config),
    });
    process.stdout.write(
      res.already
        ? `snapshot ${res.id} is already in the store (same checksums)\n`
        : `imported snapshot ${res.id}, checksums and chain verified\n`,
    );
  } finally {
    await lock.release();
  }
}

/**
 * `snapshot sign [--yes]`: sign (and in an encrypted store re-seal) the local snapshots written before
 * manifests were signed, each after it verified in full; without --yes only says what it would do.
 */
export async function signCmd(globals: Globals, yes: boolean): Promise<void> {
  const { config, store } = await storeOf(globals);
  const s = config.snapshotStore!;
  if (!s.encryption && !s.signingKeyFile) {
    const why =
      'neither snapshotStore.encryption.keyFile nor snapshotStore.signingKeyFile is set: nothing to sign with';
    throw new ConfigError('snapshotStore.signingKeyFile', `${config.file}: ${why}`);
  }
  await checkStrictModes(config);
  const settings = await storeWriteSettings(config);
  // The backup job's lock: signing re-writes snapshots like a backup writes them.
  const lock = await acquireLock(config.lockDir, 'backup');
  try {
    const plan = await signSnapshots(store, settings, yes);
    if (yes) await refreshLatest(store, settings);
    const lines = [
      ...plan.sign.map((id) => `${yes ? 'signed' : 'would sign'}${settings.key ? ' (re-sealed)' : ''}: ${id}`),
      ...plan.refused.map((r) => `not signed: ${r.id}: ${r.error}`),
      `${plan.signed.length} already signed, ${plan.sign.length} ${yes ? 'signed now' : 'to sign'}, ${plan.refused.length} refused`,
      ...(!yes && plan.sign.length
        ? ['each verified in full against its manifest; run again with --yes to sign them']
        : []),
    ];
    process.stdout.write(lines.map(printable).join('\n') + '\n');
    if (plan.refused.length) process.exitCode = 2;
  } finally {
    await lock.release();
  }
}

/** `snapshot pin ID --note …`: under the backup lock (retention runs under it). */
export async function pinCmd(globals: Globals, id: string, note: string): Promise<void> {
  const { config, store } = await storeOf(globals);
  if (note.length > MAX_NOTE || [...note].some((ch) => ch < ' ' || ch === '\x7f'))
    throw new UsageError('--note', `--note: one line of at most ${MAX_NOTE} characters`);
  await checkStrictModes(config);
  const lock = await acquireLock(config.lockDir, 'backup');
  try {
    const snap = await findSnapshot(store, id, await storeKeys(config));
    const pins = await readPins(store);
    pins[snap.id] = { note, pinnedAt: new Date().toISOString() };
    await writePins(store, pins);
    process.stdout.write(
      `pinned snapshot ${snap.id}${note ? `: ${printable(note)}` : ''}; retention keeps it (store and copies)\n`,
    );
  } finally {
    await lock.release();
  }
}

export async function unpinCmd(globals: Globals, id: string): Promise<void> {
  const { config, store } = await storeOf(globals);
  await checkStrictModes(config);
  const lock = await acquireLock(config.lockDir, 'backup');
  try {
    const pins = await readPins(store);
    if (!pins[id]) throw new UsageError(id, `snapshot ${printable(id)} is not pinned`);
    delete pins[id];
    await writePins(store, pins);
    process.stdout.write(`unpinned snapshot ${id}; retention decides about it again\n`);
  } finally {
    await lock.release();
  }
}
