import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { configPath, DEFAULT_STATE_DIR, socketPathOf } from './hand-off.js';
import { cronProblem, isValidZone, loadCronParser } from './schedule-check.js';

export { configPath, DEFAULT_CONFIG_PATH } from './hand-off.js';

// zod compiles a parser for each object schema (new Function) on its first parse: worth it for a server parsing
// the same shape many times, not for a CLI that parses its config once (≈ 15 ms of start-up, issue #28).
z.config({ jitless: true });

const port = z.number().int().min(1).max(65535);
const absPath = z
  .string()
  .min(1)
  .refine((p) => path.isAbsolute(p), 'expected an absolute path');

/** SSH settings; set once under `ssh:` and overridden per host. */
const sshFields = {
  port: port.default(22),
  user: z.string().min(1).default('root'),
  privateKey: absPath.describe('private key file for key authentication'),
  knownHosts: absPath.describe('known_hosts file the host keys are verified against'),
  connectTimeoutSeconds: z.number().positive().default(10),
  /**
   * A remote read moving less than 64 KiB in this many seconds is abandoned (lib/transport/bounded.ts); so
   * is a directory listing whose next answer takes longer, or all of it ten times longer (listing-bounds.ts).
   */
  readIdleSeconds: z.number().positive().default(30),
  /**
   * OpenSSH's StrictHostKeyChecking=accept-new: a host not yet in knownHosts has its key accepted once
   * and appended there; from then on a different key is refused like any mismatch. Never the default.
   */
  acceptUnknownHostKeys: z.boolean().default(false),
};
const sshSchema = z.strictObject(sshFields);
const sshOverrideSchema = z.strictObject(sshFields).partial();
export type SshSettings = z.infer<typeof sshSchema> & {
  /** Which config key set each file (`ssh.knownHosts` when it came from the global section), for messages. */
  keys?: { privateKey: string; knownHosts: string };
};

const hostFields = {
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a short name of letters, digits, "_", "." or "-"'),
  host: z.string().min(1),
  /** DATA_PATH on that host (Debian: /var/lib/mfs). */
  dataPath: absPath.default('/var/lib/mfs'),
  /** Read files from this machine's filesystem instead of over SFTP (the job runs on that host). */
  local: z.boolean().default(false),
  ssh: sshOverrideSchema.optional(),
};

const masterSchema = z.strictObject({
  ...hostFields,
  /** Where mfscli reaches the master (MATOCL_LISTEN_HOST/PORT). */
  cliHost: z.string().min(1).optional(),
  cliPort: port.default(9421),
});

const metaloggerSchema = z.strictObject({
  ...hostFields,
  /** META_DOWNLOAD_FREQ of that metalogger, hours. */
  metaDownloadFreqHours: z.number().positive().default(24),
});

/**
 * A chunkserver whose DATA_PATH holds `changelog_csback.N.mfs` (MooseFS 1.x): before 1.6.5 there is no
 * metalogger, and at failover these are the changelogs that roll the hourly image forward.
 */
const chunkserverSchema = z.strictObject({ ...hostFields });

const compressionObject = z.strictObject({
  type: z.enum(['zstd', 'none']),
  /** zstd's level: 3 (its default) compresses a metadata image about 7x at ~140 MB/s (BENCHMARKS.md). */
  level: z.number().int().min(1).max(19).default(3),
});
/** `compression: zstd` / `compression: none` (what an operator types) is `{ type: zstd }` / `{ type: none }`. */
const compressionSchema = z.preprocess((v) => (typeof v === 'string' ? { type: v } : v), compressionObject);

const retentionSchema = z.strictObject({
  keepLast: z.number().int().min(1).default(3),
  keepHourly: z.number().int().min(0).default(24),
  keepDaily: z.number().int().min(0).default(7),
  keepWeekly: z.number().int().min(0).default(4),
  /**
   * Beside the counts: every snapshot taken within this window (`14d`, `36h`, `2w`) and the newest one before
   * it stay, and the changelog archive keeps every segment they need (issue #26). Absent: the archive is kept whole.
   */
  recoveryWindow: z
    .string()
    .regex(/^[1-9]\d{0,4}[hdw]$/, 'expected a duration such as 36h, 14d or 2w')
    .optional(),
});

/** A copy's name: plain, it becomes part of messages, metrics labels and `--from copy:NAME`. */
const copyName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a short name of letters, digits, "_", "." or "-"');

/** Fields every off-site copy has (lib/store/copy/). */
const copyFields = {
  name: copyName,
  /** Its own retention, applied to its own listing (lib/store/retention.ts). Default: the store's. */
  retention: retentionSchema.optional(),
  /**
   * Every remote call (connect, one request, one read window) gives up after this long without progress;
   * a whole listing of the copy after LISTING_WINDOWS of these (lib/transport/listing-bounds.ts).
   */
  timeoutSeconds: z.number().positive().default(30),
};

const sftpCopySchema = z.strictObject({
  ...copyFields,
  type: z.literal('sftp'),
  host: z.string().min(1),
  port: port.default(22),
  user: z.string().min(1),
  identityFile: absPath.describe('private key file for key authentication'),
  knownHosts: absPath.describe('known_hosts file the host key is verified against'),
  /** Directory on that host that holds `snapshots/<id>/` (made if missing). */
  path: absPath,
});

const s3CopySchema = z.strictObject({
  ...copyFields,
  type: z.literal('s3'),
  endpoint: z.url().optional(),
  region: z.string().min(1).default('us-east-1'),
  bucket: z.string().min(3).max(63),
  /** Key prefix inside the bucket (`mfs/`); objects are `<prefix>snapshots/<id>/<file>`. */
  prefix: z
    .string()
    .regex(/^$|^[^/].*\/$/, 'expected "" or a prefix ending in "/" (not starting with "/")')
    .default(''),
  forcePathStyle: z.boolean().default(false),
  /** JSON or YAML file with accessKeyId and secretAccessKey, readable by its owner only. */
  credentialsFile: absPath,
  /** Files bigger than this go up in parts of this size (S3 needs parts of at least 5 MiB). */
  partSizeMiB: z.number().int().min(5).max(5120).default(16),
});

const copySchema = z.discriminatedUnion('type', [sftpCopySchema, s3CopySchema]);

const standbySchema = z.strictObject({
  dataPath: absPath,
  masterConfig: absPath.default('/etc/mfs/mfsmaster.cfg'),
  cliHost: z.string().min(1).default('127.0.0.1'),
  cliPort: port.default(9421),
  /**
   * `auto`: the restore of the image's generation (`mfsmetarestore` before 1.7, `mfsmaster -a` since);
   * `mfsmaster-a` or `mfsmetarestore` force one.
   */
  restoreMethod: z.enum(['auto', 'mfsmaster-a', 'mfsmetarestore']).default('auto'),
  /** The virtual IP the standby takes over; promote checks it is held before and after acting. */
  vip: z.string().min(1).optional(),
  /**
   * With `mfs-jobs daemon` running here: start promote the moment `vip` appears on an interface (ucarp's
   * up-script or keepalived adds it), without waiting for the hook's own process; the hook's `run promote`
   * then joins that run and reports its result. Needs `vip` and daemon.socket.
   */
  promoteOnVip: z.boolean().default(false),
  /**
   * With `mfs-jobs daemon` running here and `vip` set: while this standby's master is not serving, TCP
   * SYNs to `vip` on the master's ports are dropped (an nftables table `inet mfs_jobs`), so a client that
   * reaches the VIP before the new master listens retries in 1 s instead of being refused into its back-off
   * (lib/failover/syn-hold.ts). Released once mfsmaster has started; ends by itself if the daemon dies.
   */
  holdClients: z.boolean().default(true),
  /**
   * A warm standby: `mfs-jobs daemon` keeps a copy of each remote metalogger's (and 1.x chunkserver's)
   * newest image and the changelogs after it in `<stateDir>/mirror`, refreshed every
   * `mirrorIntervalSeconds`, so promote fetches only the lines written since (lib/failover/mirror.ts).
   */
  mirror: z.boolean().default(false),
  mirrorIntervalSeconds: z.number().positive().default(5),
  mfsmasterBin: z.string().min(1).default('mfsmaster'),
  /**
   * The failover hook scripts ucarp or keepalived run here as root (e.g. /etc/mfs-jobs/mfs-jobs-notify.sh):
   * check-standby proves each is executable, starts with `#!` and that no other user can change it or a
   * directory above it (keepalived's enable_script_security silently disables such a script).
   */
  hookScripts: z.array(absPath).default([]),
  /**
   * keepalived's FAULT on a refusal (issue #24): the file keepalived.conf's `track_file` (weight 0) watches.
   * When promote refuses because the old master still serves, it writes 1 there and keepalived holds this
   * standby in FAULT (VIP released, not retaken) until that master stops answering; root's, in a directory
   * only root can change that exists before keepalived starts (lib/failover/keepalived-fault.ts).
   */
  keepalivedTrackFile: absPath.optional(),
});

/**
 * The MooseFS generations mfs-jobs knows (lib/moosefs/generations/; a unit test keeps the two lists equal):
 * '1.6' is 1.6.0–1.6.4, '1.6.5' later 1.6 releases, '3.0' 1.7–3.x.
 */
export const GENERATION_KEYS = ['1.5', '1.6', '1.6.5', '3.0', '4'] as const;

const moosefsSchema = z.strictObject({
  /** Which MooseFS the cluster runs; `auto` tells it from image headers and from what the master answers. */
  generation: z.enum(['auto', ...GENERATION_KEYS]).default('auto'),
  /**
   * Where each generation's own binaries are installed (PREFIX/sbin/mfsmaster, mfsmetarestore,
   * PREFIX/bin/mfscli), e.g. `"1.6": /opt/mfs-jobs/moosefs/1.6.4`. A generation without one uses
   * standby.mfsmasterBin and mfscliBin (the MooseFS installed on this machine).
   */
  prefixes: z.partialRecord(z.enum(GENERATION_KEYS), absPath).default({}),
});

/**
 * The quorum lease (issue #25, lib/failover/quorum.ts): the serving master's daemon holds `<prefix>/leader`
 * on an etcd lease and renews it every loopWaitSeconds, each try given retryTimeoutSeconds; a master that
 * cannot renew stops serving before the lease ends. Patroni's rule, checked here: loop_wait + 2 x
 * retry_timeout <= ttl (a renewal missed, a retry missed, and the stop still fits in the lease).
 */
const hexKeyFile = absPath.describe('key file: 64 hex characters (openssl rand -hex 32), mode 0600');
const quorumSchema = z
  .strictObject({
    etcd: z.strictObject({
      endpoints: z.array(z.string().regex(/^https?:\/\/[^\s/]+$/, 'expected http(s)://host:port')).min(1),
      prefix: z.string().regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'expected a key prefix such as /mfs-jobs/cluster1'),
      ttlSeconds: z.number().int().min(2).max(300).default(10),
      loopWaitSeconds: z.number().positive().default(2),
      retryTimeoutSeconds: z.number().positive().default(4),
      caFile: absPath.optional(),
      certFile: absPath.optional(),
      keyFile: absPath.optional(),
    }),
    /** This host's name in the leader key (default: the hostname). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a short name of letters, digits, "_", "." or "-"')
      .optional(),
    /**
     * Patroni's failsafe mode: with etcd unreachable, a master keeps serving only while every other
     * master's daemon confirms, over an HMAC-authenticated TCP channel on `port`, that it is not promoting
     * (and then promises not to for one TTL).
     */
    failsafe: z.strictObject({ port: port.default(9482), keyFile: hexKeyFile }).optional(),
  })
  .superRefine((q, ctx) => {
    const { ttlSeconds: ttl, loopWaitSeconds: loop, retryTimeoutSeconds: retry } = q.etcd;
    if (loop + 2 * retry > ttl) {
      const message = `loopWaitSeconds + 2 x retryTimeoutSeconds (${loop} + 2 x ${retry}) must be <= ttlSeconds (${ttl})`;
      ctx.addIssue({ code: 'custom', path: ['etcd', 'ttlSeconds'], message });
    }
    if ((q.etcd.certFile === undefined) !== (q.etcd.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['etcd', 'certFile'], message: 'certFile and keyFile go together' });
    }
  });

/** The power-fence hook: run with the old master's name when its state cannot be established. */
const fenceSchema = z.strictObject({
  command: z
    .array(z.string().min(1))
    .min(1)
    .refine((c) => path.isAbsolute(c[0]!), 'expected [absolute path of the program, its arguments...]'),
  timeoutSeconds: z.number().positive().default(30),
});

/** Keys every job section accepts; each job adds its own with `jobOptionsSchema`. */
export const jobCommonFields = {
  schedule: z
    .string()
    .superRefine((expr, ctx) => {
      const problem = cronProblem(expr);
      if (problem) ctx.addIssue({ code: 'custom', message: `expected a cron expression (${problem})` });
    })
    .optional(),
  enabled: z.boolean().default(true),
  timeoutSeconds: z.number().positive().optional(),
};

const configSchema = z.strictObject({
  timezone: z
    .string()
    .default('UTC')
    .refine((zone) => isValidZone(zone), 'expected an IANA time zone such as Europe/Warsaw'),
  stateDir: absPath.default(DEFAULT_STATE_DIR),
  lockDir: absPath.optional(),
  log: z.strictObject({ level: z.enum(['error', 'warn', 'info', 'debug']).default('info') }).default({ level: 'info' }),
  prometheus: z.strictObject({ textfileDir: absPath.optional() }).default({}),
  mfscliBin: z.string().min(1).default('mfscli'),
  moosefs: moosefsSchema.default({ generation: 'auto', prefixes: {} }),
  daemon: z
    .strictObject({
      /** On SIGTERM, how long running jobs may go on before they are aborted at their next safe point. */
      shutdownGraceSeconds: z.number().min(0).default(30),
      /**
       * Unix socket on which the daemon takes over failover hook runs (`run promote`, `run demote`) from a
       * freshly started `mfs-jobs`, sparing the failover Node's start-up. Default `<stateDir>/daemon.sock`;
       * `false`: no socket, hooks always run in their own process.
       */
      socket: z.union([absPath, z.literal(false)]).optional(),
    })
    .default({ shutdownGraceSeconds: 30 }),
  ssh: sshOverrideSchema.optional(),
  masters: z.array(masterSchema).default([]),
  metaloggers: z.array(metaloggerSchema).default([]),
  chunkservers: z.array(chunkserverSchema).default([]),
  /**
   * The filesystem this config serves (hex metaid, as mfscli and the image header show it). Unset, it is
   * learnt on the first backup from a live source and kept in `<stateDir>/cluster-identity.json`.
   */
  cluster: z
    .strictObject({
      metaid: z
        .string()
        .regex(/^[0-9A-Fa-f]{1,16}$/, 'expected a hex metaid')
        .optional(),
    })
    .default({}),
  snapshotStore: z
    .strictObject({
      path: absPath,
      retention: retentionSchema.default(retentionSchema.parse({})),
      /** Off-site copies backup pushes each verified snapshot to (lib/store/copy/). */
      copies: z
        .array(copySchema)
        .default([])
        .superRefine((copies, ctx) => {
          const seen = new Set<string>();
          for (const [i, c] of copies.entries()) {
            if (seen.has(c.name))
              ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `copy name "${c.name}" is used twice` });
            seen.add(c.name);
          }
        }),
      /** How new snapshots' files are stored; existing snapshots keep what their manifest says. */
      compression: compressionSchema.default({ type: 'zstd', level: 3 }),
      /** Encrypt new snapshots' files (AES-256-GCM, after compression) with the key in this file. */
      encryption: z
        .strictObject({ keyFile: absPath.describe('key file: 64 hex characters (openssl rand -hex 32), mode 0600') })
        .optional(),
      /**
       * A store without encryption: manifests are signed (HMAC) with a key derived from this one, and a
       * manifest without a valid MAC is refused. An encrypted store signs with its encryption key.
       */
      signingKeyFile: absPath.describe('key file: 64 hex characters (openssl rand -hex 32), mode 0600').optional(),
      /**
       * Incremental restore points (issue #26): with jobs.archive configured and healthy, backup stores a new
       * image only when the newest stored one is this old (`24h`, `2d`)... (docs/snapshot-store.md)
       */
      imageInterval: z
        .string()
        .regex(/^[1-9]\d{0,4}[hdw]$/, 'expected a duration such as 24h, 2d or 1w')
        .default('24h'),
      /** ...or a restore would replay this many changes (versions) from it. These bound a restore's roll-forward. */
      imageChanges: z.number().int().positive().default(10_000_000),
      /**
       * Archive compaction (issue #26): backup and prune merge the segments of each UTC hour that ended this
       * long ago into one (in the store and every copy), so a short jobs.archive.segmentSeconds stays ~24
       * segments a day... (docs/snapshot-store.md)
       */
      compactSegmentsAfter: z
        .string()
        .regex(/^[1-9]\d{0,4}[hdw]$/, 'expected a duration such as 1h, 2d or 1w')
        .default('1h'),
      /** ...at most this many bytes of changelog lines each (a busier hour becomes several). */
      compactSegmentBytes: z
        .number()
        .int()
        .positive()
        .default(256 * 2 ** 20),
    })
    .refine((s) => !(s.encryption && s.signingKeyFile), {
      path: ['signingKeyFile'],
      message: 'only for a store without encryption (an encrypted store signs its manifests with encryption.keyFile)',
    })
    .optional(),
  standby: standbySchema.optional(),
  quorum: quorumSchema.optional(),
  fence: fenceSchema.optional(),
  jobs: z.record(z.string(), z.looseObject(jobCommonFields)).default({}),
});

type RawConfig = z.infer<typeof configSchema>;
export type MasterHost = Omit<z.infer<typeof masterSchema>, 'ssh' | 'cliHost'> & {
  cliHost: string;
  ssh: SshSettings | undefined;
  role: 'master';
};
export type MetaloggerHost = Omit<z.infer<typeof metaloggerSchema>, 'ssh'> & {
  ssh: SshSettings | undefined;
  role: 'metalogger';
};
export type ChunkserverHost = Omit<z.infer<typeof chunkserverSchema>, 'ssh'> & {
  ssh: SshSettings | undefined;
  role: 'chunkserver';
};
/** Any host whose DATA_PATH mfs-jobs reads. */
export type DataPathHost = MasterHost | MetaloggerHost | ChunkserverHost;
export type Retention = z.infer<typeof retentionSchema>;
export type CopyConfig = z.infer<typeof copySchema>;
export type SftpCopyConfig = z.infer<typeof sftpCopySchema>;
export type S3CopyConfig = z.infer<typeof s3CopySchema>;
export type Compression = z.infer<typeof compressionSchema>;
export type StandbyConfig = z.infer<typeof standbySchema>;
export type QuorumConfig = z.infer<typeof quorumSchema>;
export type FenceConfig = z.infer<typeof fenceSchema>;

export interface Config extends Omit<
  RawConfig,
  'masters' | 'metaloggers' | 'chunkservers' | 'ssh' | 'lockDir' | 'daemon'
> {
  /** The file it was read from (for messages). */
  file: string;
  lockDir: string;
  daemon: { shutdownGraceSeconds: number; socket?: string };
  masters: MasterHost[];
  metaloggers: MetaloggerHost[];
  chunkservers: ChunkserverHost[];
}

/** "masters.0.host: expected string, received number" — the key first, as the operator wrote it. */
export function formatIssues(error: z.ZodError, prefix: (string | number)[] = []): string {
  return error.issues
    .map((issue) => {
      const keyPath = [...prefix, ...issue.path.map((p) => String(p))];
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${[...keyPath, k].join('.')}: unknown key`).join('; ');
      }
      return `${keyPath.join('.') || '(top level)'}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * A host's SSH settings: global `ssh:` merged with its own. Undefined when the host is local or no
 * key/known_hosts is configured at all (jobs that transfer files then fail with `requireSsh`).
 */
function resolveSsh(
  where: string,
  global: Partial<SshSettings> | undefined,
  own: Partial<SshSettings> | undefined,
  local: boolean,
): SshSettings | undefined {
  if (local) return undefined;
  const merged = { ...global, ...own };
  if (merged.privateKey === undefined && merged.knownHosts === undefined) return undefined;
  const parsed = sshSchema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(`${where}.ssh`, formatIssues(parsed.error, [where, 'ssh']));
  const keyOf = (k: 'privateKey' | 'knownHosts') => (own?.[k] !== undefined ? `${where}.ssh.${k}` : `ssh.${k}`);
  return { ...parsed.data, keys: { privateKey: keyOf('privateKey'), knownHosts: keyOf('knownHosts') } };
}

/** Validate an already parsed document (YAML or JSON) into a Config. */
export function parseConfig(document: unknown, file = '(inline)'): Config {
  const parsed = configSchema.safeParse(document ?? {});
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ConfigError(first ? first.path.join('.') : file, `${file}: ${formatIssues(parsed.error)}`);
  }
  const raw = parsed.data;
  const names = new Set<string>();
  for (const [i, h] of [...raw.masters, ...raw.metaloggers, ...raw.chunkservers].entries()) {
    if (names.has(h.name))
      throw new ConfigError(
        `name`,
        `${file}: host name "${h.name}" is used twice (entry ${i}); names must be unique across masters, metaloggers and chunkservers`,
      );
    names.add(h.name);
  }
  const { ssh, lockDir, daemon, ...rest } = raw;
  return {
    ...rest,
    file,
    lockDir: lockDir ?? path.join(raw.stateDir, 'locks'),
    daemon: { shutdownGraceSeconds: daemon.shutdownGraceSeconds, socket: socketPathOf(daemon.socket, raw.stateDir) },
    masters: raw.masters.map((m, i) => ({
      ...m,
      cliHost: m.cliHost ?? m.host,
      ssh: resolveSsh(`masters.${i}`, ssh, m.ssh, m.local),
      role: 'master' as const,
    })),
    metaloggers: raw.metaloggers.map((m, i) => ({
      ...m,
      ssh: resolveSsh(`metaloggers.${i}`, ssh, m.ssh, m.local),
      role: 'metalogger' as const,
    })),
    chunkservers: raw.chunkservers.map((c, i) => ({
      ...c,
      ssh: resolveSsh(`chunkservers.${i}`, ssh, c.ssh, c.local),
      role: 'chunkserver' as const,
    })),
  };
}

/**
 * A config is read as root: a few aliases are fine (`ssh: *common`), an alias bomb (each alias
 * doubling the last) is refused before it is expanded. The yaml package's own default, said here so
 * an upgrade that changes it changes nothing.
 */
const YAML_LIMITS = { maxAliasCount: 100 };

/** Any `jobs.<name>.schedule` in the document (only then is node-cron loaded to check it). */
function namesSchedule(document: unknown): boolean {
  const jobs = (document as { jobs?: unknown } | null)?.jobs;
  if (typeof jobs !== 'object' || jobs === null) return false;
  return Object.values(jobs).some((j) => typeof j === 'object' && j !== null && 'schedule' in j);
}

export async function loadConfig(explicit?: string): Promise<Config> {
  const file = path.resolve(configPath(explicit));
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      file,
      `cannot read config file ${file}: ${code === 'ENOENT' ? 'no such file (use --config or MFS_JOBS_CONFIG)' : (code ?? String(err))}`,
    );
  }
  let document: unknown;
  try {
    document = YAML.parse(text, YAML_LIMITS);
  } catch (err) {
    throw new ConfigError(file, `${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (namesSchedule(document)) await loadCronParser();
  return parseConfig(document, file);
}

/**
 * A job's own section (`jobs.<name>`), validated with the job's schema; errors name the full key.
 * Missing section = all defaults.
 */
export function jobOptions<T extends z.ZodType>(config: Config, jobName: string, schema: T): z.infer<T> {
  const parsed = schema.safeParse(config.jobs[jobName] ?? {});
  if (!parsed.success) {
    throw new ConfigError(`jobs.${jobName}`, `${config.file}: ${formatIssues(parsed.error, ['jobs', jobName])}`);
  }
  return parsed.data;
}

/** Build a job's schema: the common keys plus its own. */
export function jobOptionsSchema<S extends z.ZodRawShape>(shape: S) {
  return z.strictObject({ ...jobCommonFields, ...shape });
}

/** The SSH settings of a host a job must reach over SFTP; a ConfigError naming the key otherwise. */
export function requireSsh(config: Config, host: DataPathHost): SshSettings {
  if (host.ssh) return host.ssh;
  const list = hostList(host);
  const index = (config[list] as DataPathHost[]).findIndex((h) => h.name === host.name);
  throw new ConfigError(
    `${list}.${index}.ssh`,
    `${config.file}: ${list}.${index}.ssh (or ssh:): privateKey and knownHosts are needed to reach ${host.name} (${host.host}) over SFTP; or set ${list}.${index}.local: true`,
  );
}

/** The config list a host comes from: `masters`, `metaloggers` or `chunkservers`. */
export function hostList(host: DataPathHost): 'masters' | 'metaloggers' | 'chunkservers' {
  return host.role === 'master' ? 'masters' : host.role === 'metalogger' ? 'metaloggers' : 'chunkservers';
}

/** Every host, masters first. */
export function allHosts(config: Config): (MasterHost | MetaloggerHost)[] {
  return [...config.masters, ...config.metaloggers];
}
