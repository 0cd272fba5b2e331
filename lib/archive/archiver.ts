import type { Config, CopyConfig, DataPathHost } from '../core/config.js';
import { ConfigError, describeError, LockBusyError } from '../core/errors.js';
import { acquireLock } from '../core/lock.js';
import type { Logger } from '../core/logger.js';
import { archiveChain, type StoredSegment } from '../store/segments.js';
import { listCopySegments, openArchiveCopy, pushSegments } from '../store/copy/archive.js';
import { storeKeys, storeWriteSettings } from '../store/stored-file.js';
import { ArchiveFollower, type FollowSettings } from './follow.js';

/**
 * `run archive` (one pass: archive what the sources hold now) and `run archive --follow` / the daemon's
 * archiver (go on until stopped): the follower's rounds, each sealed segment pushed to every copy.
 */
export interface ArchiveOptions extends FollowSettings {
  /** Host names, in the order they are asked; default: metaloggers, then masters, then 1.x chunkservers. */
  sources?: string[];
  pollSeconds: number;
}

export interface CopyPushState {
  copy: string;
  ok: boolean;
  error?: string;
  pushed: number;
}

export interface ArchiveOutcome {
  sealed: StoredSegment[];
  segments: number;
  first?: number;
  last?: number;
  lastTime?: number;
  gaps: { from: number; to: number; why?: string }[];
  newGaps: { from: number; to: number; why: string }[];
  problems: string[];
  copies: CopyPushState[];
}

export function archiveSources(config: Config, names: string[] | undefined): DataPathHost[] {
  const all: DataPathHost[] = [...config.metaloggers, ...config.masters, ...config.chunkservers];
  if (!names) {
    const chosen = config.metaloggers.length
      ? [...config.metaloggers, ...config.masters]
      : config.masters.length
        ? config.masters
        : config.chunkservers;
    if (!chosen.length)
      throw new ConfigError(
        'metaloggers',
        `${config.file}: no metaloggers, masters or chunkservers configured: nothing to archive`,
      );
    return chosen;
  }
  return names.map((name, i) => {
    const host = all.find((h) => h.name === name);
    if (!host)
      throw new ConfigError(
        `jobs.archive.sources.${i}`,
        `${config.file}: jobs.archive.sources.${i}: no host named "${name}"`,
      );
    return host;
  });
}

function storePath(config: Config): string {
  if (!config.snapshotStore)
    throw new ConfigError(
      'snapshotStore.path',
      `${config.file}: snapshotStore.path is needed by the archive (where segments are kept)`,
    );
  return config.snapshotStore.path;
}

/** A copy that failed is tried again this often while the sources are quiet (else only at the next seal). */
const COPY_RETRY_MS = 5_000;
/** A graceful stop still hands the segment it sealed to the copies, within this. */
const STOP_PUSH_MS = 15_000;

/** Each copy: the ids it holds (listed once), then every local segment it lacks, after each seal. */
class CopyPusher {
  private readonly known = new Map<string, Set<string>>();
  /** Per copy: where its archive starts (older segments were pruned there and are not sent back). */
  private readonly floors = new Map<string, number | undefined>();
  private readonly tried = new Map<string, number>();
  /** The push under way in the background (kick), whether a seal came during it, and the segments then. */
  private running: Promise<void> | undefined;
  private again = false;
  private latest: readonly StoredSegment[] = [];
  readonly states = new Map<string, CopyPushState>();
  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}
  /** `signal`: the run's, or (a graceful stop's last push) a bound of its own. `only`: these copies. */
  async push(all: readonly StoredSegment[], signal = this.signal, only?: (c: CopyConfig) => boolean): Promise<void> {
    const keys = await storeKeys(this.config);
    for (const copy of this.config.snapshotStore!.copies.filter(only ?? (() => true)))
      await this.pushOne(copy, all, keys, signal);
  }
  /**
   * Push in the background, one push at a time (a seal during one is taken by the next): a slow or silent
   * copy (a firewall dropping packets waits out its timeoutSeconds) never holds up sealing into the store.
   */
  kick(all: readonly StoredSegment[], only?: (c: CopyConfig) => boolean): void {
    this.latest = all;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          const rest = this.again ? undefined : only;
          this.again = false;
          await this.push(this.latest, this.signal, rest);
        } while (this.again && !this.signal.aborted);
      } catch (err) {
        // The run stopping (pushOne keeps a copy's own failure as its state), or the store's keys unreadable.
        if (!this.signal.aborted) this.log.error(`archive: copies: ${describeError(err)}`);
      } finally {
        this.running = undefined;
      }
    })();
  }
  /** The background push, ended (a stopped run's ends at once: its signal is the run's). */
  async settle(): Promise<void> {
    await this.running;
  }
  /** The copies that failed last time, again (at most every COPY_RETRY_MS): a backlog goes without a new seal. */
  retryBehind(all: readonly StoredSegment[], now = Date.now()): void {
    if (this.running) return;
    const behind = (c: CopyConfig) =>
      this.states.get(c.name)?.ok === false && now - (this.tried.get(c.name) ?? 0) >= COPY_RETRY_MS;
    if (this.config.snapshotStore!.copies.some(behind)) this.kick(all, behind);
  }
  private async pushOne(
    copy: CopyConfig,
    all: readonly StoredSegment[],
    keys: Awaited<ReturnType<typeof storeKeys>>,
    signal: AbortSignal,
  ): Promise<void> {
    const state = this.states.get(copy.name) ?? { copy: copy.name, ok: true, pushed: 0 };
    this.states.set(copy.name, state);
    this.tried.set(copy.name, Date.now());
    let repo;
    try {
      repo = await openArchiveCopy(this.config, copy, signal);
      let known = this.known.get(copy.name);
      if (!known) {
        const { segments, superseded } = await listCopySegments(repo, keys, signal);
        // A part the copy holds merged is not sent again (compaction removes the parts there).
        known = new Set([...segments, ...superseded].map((s) => s.id));
        this.known.set(copy.name, known);
        this.floors.set(copy.name, segments[0]?.manifest.first);
      }
      const run = await pushSegments(repo, all, known, signal, this.floors.get(copy.name));
      state.pushed += run.pushed.length;
      if (!state.ok) this.log.info('archive: copy caught up', { copy: copy.name, pushed: run.pushed.length });
      state.ok = true;
      delete state.error;
    } catch (err) {
      if (signal === this.signal && signal.aborted) throw err;
      // Listed again next time: what got there before the failure is found then.
      this.known.delete(copy.name);
      state.ok = false;
      state.error = describeError(err);
      this.log.warn('archive: copy did not take the segment (tried again at the next seal, or in 5 s if none)', {
        copy: copy.name,
        error: state.error,
      });
    } finally {
      await repo?.close().catch(() => undefined);
    }
  }
}

/** The listener goes when the pause ends: a follower pauses every poll, for weeks (issue 26 archive-lag bench). */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => (clearTimeout(t), resolve());
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Archive until the sources have nothing new (`follow` false), or until `signal` (`follow` true). Pending
 * lines are sealed before returning either way: a graceful stop loses nothing; a kill -9 loses only what
 * was not sealed yet, which the next run reads again from the sources.
 */
export async function runArchive(o: {
  config: Config;
  options: ArchiveOptions;
  log: Logger;
  signal: AbortSignal;
  follow: boolean;
  mfsJobsVersion: string;
}): Promise<ArchiveOutcome> {
  const { config, options, log, signal } = o;
  const store = storePath(config);
  const storage = await storeWriteSettings(config);
  const pusher = new CopyPusher(config, log, signal);
  const follower = new ArchiveFollower({
    config,
    store,
    sources: archiveSources(config, options.sources),
    settings: options,
    storage,
    keys: await storeKeys(config),
    log,
    mfsJobsVersion: o.mfsJobsVersion,
    // Stopped: the last push below takes the lines sealed on the way out.
    onSealed: (_s, all) => {
      if (!signal.aborted) pusher.kick(all);
      return Promise.resolve();
    },
  });
  try {
    await follower.start();
    for (;;) {
      if (signal.aborted) break;
      let got: boolean;
      try {
        got = await follower.round(signal);
      } catch (err) {
        if (signal.aborted) break;
        if (!o.follow) throw err;
        log.error(`archive: ${describeError(err)}`);
        got = false;
      }
      if (!o.follow && !got) break;
      if (!got) {
        // A copy that was down gets its backlog while the sources are quiet too, not only at the next seal.
        pusher.retryBehind(follower.segments);
        await sleep(options.pollSeconds * 1000, signal);
      }
    }
    await follower.seal();
    await pusher.settle();
    // Every copy brought to the archive's end: a one-shot run catches up a copy that was down, a graceful
    // stop hands over what it sealed on the way out (within a bound of its own: the run's signal is spent).
    await pusher
      .push(follower.segments, signal.aborted ? AbortSignal.timeout(STOP_PUSH_MS) : signal)
      .catch(() => undefined);
  } finally {
    await pusher.settle();
    await follower.close();
  }
  const chain = archiveChain(follower.segments.map((s) => s.manifest));
  return {
    sealed: follower.sealed,
    segments: follower.segments.length,
    first: chain.first,
    last: chain.last,
    lastTime: chain.lastTime,
    gaps: chain.holes,
    newGaps: follower.gaps,
    problems: [...follower.problems, ...chain.overlaps],
    copies: [...pusher.states.values()],
  };
}

/**
 * The daemon's archiver: follows while the daemon runs (jobs.archive configured and enabled), under the
 * same lock as `run archive`; a failure is logged and the follower starts again after a pause.
 */
export function startDaemonArchiver(o: {
  config: Config;
  options: ArchiveOptions;
  log: Logger;
  mfsJobsVersion: string;
}): { close(): Promise<void> } {
  const controller = new AbortController();
  const done = (async () => {
    while (!controller.signal.aborted) {
      let lock;
      try {
        lock = await acquireLock(o.config.lockDir, 'archive', { signal: controller.signal });
        await runArchive({ ...o, signal: controller.signal, follow: true });
      } catch (err) {
        if (controller.signal.aborted) break;
        if (!(err instanceof LockBusyError))
          o.log.error(`archive stopped, starting again in 30 s: ${describeError(err)}`);
      } finally {
        await lock?.release().catch(() => undefined);
      }
      await sleep(30_000, controller.signal);
    }
  })();
  return {
    async close() {
      controller.abort(new Error('daemon stopping'));
      await done;
    },
  };
}
