import { z } from 'zod';
import { jobOptionsSchema, type ChunkserverHost, type Config, type MetaloggerHost } from '../lib/core/config.js';
import { matchConnected, resolveAddresses, type ConnectedVerdict } from '../lib/moosefs/connected-metaloggers.js';
import { describeError } from '../lib/core/errors.js';
import { defineJob, worst, type JobContext, type JobResult, type Metric } from '../lib/core/job.js';
import { CARDS } from '../lib/core/job-cards.js';
import { metric } from '../lib/core/metrics.js';
import { listSnapshots } from '../lib/store/manifest.js';
import { connectedMetaloggerHosts, dataPathOf, masterVersion, targetOf } from '../lib/moosefs/master.js';
import { openSource } from '../lib/transport/remote.js';
import { inspectChunkserver, inspectDataPath, type DataPathFacts, type SnapshotFacts } from '../lib/verify/source.js';
import { checkCopy } from '../lib/store/copy/check.js';
import { lastClientsBack } from '../lib/failover/clients-watch.js';
import { quorumStatus } from '../lib/failover/quorum.js';
import { judgeCopy } from '../lib/verify/copy-verdict.js';
import { storeKeys } from '../lib/store/stored-file.js';
import { sweepSnapshots } from '../lib/verify/snapshot-cache.js';
import { judgeArchive, readArchiveFacts } from '../lib/verify/archive-verdict.js';
import { ChangelogScanPool } from '../lib/moosefs/changelog-pool.js';
import {
  judgeChunkserver,
  judgeMetalogger,
  judgeRetained,
  judgeSnapshot,
  summarize,
  type Finding,
  type SourceVerdict,
  type VerifyThresholds,
} from '../lib/verify/verdict.js';

const options = jobOptionsSchema({
  cliTimeoutSeconds: z.number().positive().default(10),
  lagVersionsWarn: z.number().int().min(0).default(100),
  lagVersionsCrit: z.number().int().min(0).default(1000),
  lagSecondsWarn: z.number().min(0).default(300),
  lagSecondsCrit: z.number().min(0).default(1800),
  imageAgeSlackHours: z.number().min(0).default(1),
  imageAgeCritSlackHours: z.number().min(0).default(24),
  snapshotAgeWarnHours: z.number().positive().default(25),
  snapshotAgeCritHours: z.number().positive().default(49),
  /** A cut last line may be the metalogger writing it: read the file once more after this pause. */
  cutLineRetrySeconds: z.number().min(0).default(1),
  /**
   * Re-read the newest snapshot of each off-site copy and hash it against its manifest (every byte crosses
   * the link each run); false: only presence and sizes.
   */
  copyChecksums: z.boolean().default(true),
  /** A snapshot verified clean and unchanged since is read again after this long anyway (bit rot keeps mtimes). */
  snapshotRecheckDays: z.number().positive().default(7),
}).superRefine((o, ctx) => {
  const pairs: [keyof typeof o, keyof typeof o][] = [
    ['lagVersionsWarn', 'lagVersionsCrit'],
    ['lagSecondsWarn', 'lagSecondsCrit'],
    ['imageAgeSlackHours', 'imageAgeCritSlackHours'],
    ['snapshotAgeWarnHours', 'snapshotAgeCritHours'],
  ];
  for (const [warn, crit] of pairs) {
    if ((o[warn] as number) > (o[crit] as number))
      ctx.addIssue({ code: 'custom', path: [warn], message: `must not exceed ${crit} (${String(o[crit])})` });
  }
});

type Options = z.infer<typeof options>;

interface MasterView {
  name?: string;
  version?: number;
  /** Why no version: every configured master failed to answer. */
  error?: string;
  listed?: string[];
  listError?: string;
}

/** The newest metadata version any configured master serves, and the metaloggers it lists. */
async function askMasters(config: Config, o: Options, signal: AbortSignal): Promise<MasterView> {
  if (config.masters.length === 0) return { error: 'no masters configured (masters: in the config)' };
  const target = (m: Config['masters'][number]) =>
    targetOf(config, m, { timeoutMs: o.cliTimeoutSeconds * 1000, signal });
  const answers = await Promise.all(
    config.masters.map(async (m) => {
      try {
        const status = await masterVersion(target(m), dataPathOf(config, m, signal));
        return { m, version: status.metadataVersion, listsMetaloggers: status.generation.hasMetalogger };
      } catch (err) {
        return { m, error: describeError(err) };
      }
    }),
  );
  const up = answers
    .filter(
      (a): a is { m: Config['masters'][number]; version: number; listsMetaloggers: boolean } => a.version !== undefined,
    )
    .sort((a, b) => b.version - a.version);
  const best = up[0];
  if (!best) return { error: `no master answers: ${answers.map((a) => a.error).join('; ')}` };
  // Before 1.6.5 there are no metaloggers to list (the master does not know the question).
  if (!best.listsMetaloggers || config.metaloggers.length === 0) return { name: best.m.name, version: best.version };
  try {
    return { name: best.m.name, version: best.version, listed: await connectedMetaloggerHosts(target(best.m)) };
  } catch (err) {
    return { name: best.m.name, version: best.version, listError: describeError(err) };
  }
}

async function readMetalogger(
  config: Config,
  ml: MetaloggerHost,
  o: Options,
  signal: AbortSignal,
): Promise<{ facts?: DataPathFacts; error?: string }> {
  let source;
  try {
    source = await openSource(config, ml, signal);
    return {
      facts: await inspectDataPath(source, ml.dataPath, { signal, cutLineRetryMs: o.cutLineRetrySeconds * 1000 }),
    };
  } catch (err) {
    if (signal.aborted) throw err;
    return { error: (err as Error).message };
  } finally {
    await source?.close();
  }
}

async function connectedState(config: Config, master: MasterView): Promise<ConnectedVerdict | undefined> {
  if (!master.listed) return undefined;
  const listed = await Promise.all(master.listed.map(resolveAddresses));
  const mls = await Promise.all(
    config.metaloggers.map(async (m) => ({ name: m.name, ...(await resolveAddresses(m.host)) })),
  );
  return matchConnected(mls, listed);
}

/**
 * The newest snapshot (the verdict on the store's freshness and restore point) and every older one
 * (each a restore point promote, drill and restore may pick): all checked, the unchanged ones from
 * the cache (lib/verify/snapshot-cache.ts).
 */
async function verifySnapshotStore(
  config: Config,
  store: string,
  masterVersion: number | undefined,
  t: VerifyThresholds,
  o: Options,
  signal: AbortSignal,
): Promise<{ verdict: SourceVerdict; retained?: SourceVerdict; facts?: SnapshotFacts }> {
  try {
    const keys = await storeKeys(config);
    const { snapshots, broken } = await listSnapshots(store, keys);
    const sweep = await sweepSnapshots(config.stateDir, store, snapshots, {
      keys,
      signal,
      maxAgeMs: o.snapshotRecheckDays * 86_400_000,
    });
    const facts = sweep.facts[sweep.facts.length - 1];
    const older = sweep.facts.slice(0, -1);
    const verdict = judgeSnapshot({ store, facts, broken, masterVersion, now: Date.now() }, t);
    const retained = older.length
      ? judgeRetained(
          {
            store,
            facts: older,
            rechecked: sweep.rechecked.filter((id) => id !== facts?.snapshot.id),
            cached: sweep.cached.filter((id) => id !== facts?.snapshot.id),
          },
          t,
        )
      : undefined;
    return { verdict, retained, facts };
  } catch (err) {
    if (signal.aborted) throw err;
    return {
      verdict: judgeSnapshot({ store, broken: [], error: describeError(err), masterVersion, now: Date.now() }, t),
    };
  }
}

/** A 1.x chunkserver's changelog_csback files on top of the newest snapshot: the pre-1.6.5 restore point. */
async function verifyChunkserver(
  config: Config,
  cs: ChunkserverHost,
  snapshot: SnapshotFacts | undefined,
  masterVersion: number | undefined,
  o: Options,
  signal: AbortSignal,
): Promise<SourceVerdict> {
  const input = { name: cs.name, host: cs.host, snapshotId: snapshot?.snapshot.id, masterVersion, now: Date.now() };
  let source;
  try {
    source = await openSource(config, cs, signal);
    const facts = await inspectChunkserver(source, cs.dataPath, snapshot, {
      signal,
      cutLineRetryMs: o.cutLineRetrySeconds * 1000,
    });
    return judgeChunkserver({ ...input, facts }, o);
  } catch (err) {
    if (signal.aborted) throw err;
    return judgeChunkserver({ ...input, error: (err as Error).message }, o);
  } finally {
    await source?.close();
  }
}

/** Prove every metalogger and the newest snapshot can restore the master's metadata right now. */
export default defineJob({
  ...CARDS.verify,
  options,
  async run(ctx) {
    const { config } = ctx;
    // A local DATA_PATH's changelogs are scanned in worker threads: they start now, beside the masters' query and
    // the listing (issue #28); the pool is ended here if no scan took it.
    if ([...config.metaloggers, ...config.chunkservers].some((h) => h.local)) ChangelogScanPool.warm();
    try {
      return await verify(ctx);
    } finally {
      await ChangelogScanPool.cool();
    }
  },
});

async function verify(ctx: JobContext<Options>): Promise<JobResult> {
  const { config, options: o, signal } = ctx;
  const t: VerifyThresholds = o;
  const store = config.snapshotStore?.path;
  if (config.metaloggers.length === 0 && config.chunkservers.length === 0 && !store)
    return {
      status: 'UNKNOWN',
      summary: 'nothing to verify: no metaloggers, chunkservers or snapshotStore in the config',
    };

  // The master first: a metalogger read afterwards can only be ahead of it, never falsely behind.
  const master = await askMasters(config, o, signal);
  // Who holds the quorum lease (issue #25), asked beside the sources (each etcd request has its deadline).
  const quorumAsked = config.quorum ? quorumStatus(config) : undefined;
  const [read, snapshot, copies] = await Promise.all([
    Promise.all(config.metaloggers.map((ml) => readMetalogger(config, ml, o, signal))),
    store ? verifySnapshotStore(config, store, master.version, t, o, signal) : Promise.resolve(undefined),
    Promise.all(
      (config.snapshotStore?.copies ?? []).map((c) =>
        checkCopy(config, c, signal, { readBack: o.copyChecksums, recheckMs: o.snapshotRecheckDays * 86_400_000 }),
      ),
    ),
  ]);
  const chunkservers = await Promise.all(
    config.chunkservers.map((cs) => verifyChunkserver(config, cs, snapshot?.facts, master.version, o, signal)),
  );
  // The changelog archive (issue #26), when configured: its end behind the master, per destination.
  const archives = store && config.jobs.archive ? await readArchiveFacts(config, await storeKeys(config), signal) : [];
  const links = await connectedState(config, master);

  const globalFindings: Finding[] = [];
  if (master.error)
    globalFindings.push({ status: 'UNKNOWN', text: `${master.error}: lag behind the master is unknown` });
  if (master.listError)
    globalFindings.push({ status: 'UNKNOWN', text: `cannot list connected metaloggers: ${master.listError}` });
  for (const line of links?.ambiguous ?? []) globalFindings.push({ status: 'WARNING', text: line });
  const quorum = await quorumAsked;
  if (quorum && !quorum.reachable) {
    const endpoints = config.quorum!.etcd.endpoints.join(', ');
    const text = `quorum: etcd unreachable from here (${endpoints}): ${quorum.decision}: ${quorum.error}`;
    globalFindings.push({ status: 'WARNING', text });
  }

  const now = Date.now();
  const verdicts = config.metaloggers.map((ml, i) =>
    judgeMetalogger(
      {
        name: ml.name,
        host: ml.host,
        metaDownloadFreqHours: ml.metaDownloadFreqHours,
        ...read[i]!,
        masterVersion: master.version,
        connected: links?.connected.get(ml.name),
        now,
      },
      t,
    ),
  );
  verdicts.push(...chunkservers);
  if (snapshot) verdicts.push(snapshot.verdict);
  if (snapshot?.retained) verdicts.push(snapshot.retained);
  verdicts.push(...archives.map((a) => judgeArchive(a, master.version, Date.now(), t)));
  // Last: details.copies below takes the copies' verdicts from the end.
  verdicts.push(...copies.map((c) => judgeCopy(c, t)));
  for (const v of verdicts)
    ctx.log.debug('source verified', {
      source: v.name,
      status: v.status,
      headline: v.headline,
      findings: v.findings.length,
    });

  const status = worst(...globalFindings.map((f) => f.status), ...verdicts.map((v) => v.status));
  const metrics: Metric[] = [
    metric('master_metadata_version', master.version ?? NaN),
    ...verdicts.flatMap((v) => v.metrics),
  ];
  const details = {
    master,
    sources: Object.fromEntries(verdicts.map((v) => [v.name, v.figures])),
    copies: Object.fromEntries(copies.map((c, i) => [c.copy, verdicts[verdicts.length - copies.length + i]!.figures])),
    findings: globalFindings,
  };
  const lines = [
    ...globalFindings.map((f) => `${f.status}: ${f.text}`),
    ...verdicts.flatMap((v) => [
      `${v.name}: ${v.status}${v.headline ? ` - ${v.headline}` : ''}`,
      ...v.findings.map((f) => `  ${f.status}: ${f.text}`),
    ]),
  ];
  // Where a standby promoted before: when its clients came back (recorded after promote returned).
  const clientsBack = await lastClientsBack(config.stateDir);
  if (clientsBack) lines.push(clientsBack.line);
  Object.assign(details, { lastPromotionClients: clientsBack?.details ?? null });
  if (quorum) {
    lines.push(quorum.line, `  ${quorum.decision}`);
    const { line: _line, ...rest } = quorum;
    Object.assign(details, { quorum: rest });
  }
  const summary =
    status === 'OK'
      ? `every source can restore: ${verdicts.map((v) => (v.restorableVersion === undefined ? v.headline : `${v.name} to ${v.restorableVersion}`)).join(', ')}; master at ${master.version}`
      : summarize([...verdicts, { name: '', findings: globalFindings }]);
  return { status, summary, details, metrics, lines };
}
