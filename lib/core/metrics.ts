/**
 * Every metric mfs-jobs reports, in one place: its name, type, unit and HELP. node_exporter merges the
 * textfiles of all jobs into one scrape, and refuses a metric whose HELP or type differs between two files
 * (the whole family is then dropped), so a name means one thing whichever job writes it; the `job` label
 * tells which job it was. The same name is the Nagios perfdata label and the JSON `metrics[].name`; the
 * Prometheus name is `mfs_jobs_` + name. Names follow Prometheus' rules: base units as suffixes
 * (`_seconds`, `_bytes`), `_total` only for counters. Each job's figures describe its last run: gauges.
 */

/** Nagios unit of measure: s, B, %, c (counter) or none. */
export type MetricUnit = 's' | 'B' | '%' | 'c';

export interface MetricSpec {
  type: 'gauge' | 'counter';
  unit?: MetricUnit;
  help: string;
}

const gauge = (help: string, unit?: MetricUnit): MetricSpec => ({ type: 'gauge', ...(unit ? { unit } : {}), help });

export const METRICS = {
  // Every job (written by lib/core/output.ts).
  last_run_timestamp_seconds: gauge('When the job last finished (unix time).', 's'),
  last_status: gauge("Status of the job's last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
  last_duration_seconds: gauge("How long the job's last run took.", 's'),

  // check-master, promote
  metadata_version: gauge(
    'Metadata version the master serves (check-master: each configured master; promote: the promoted one).',
  ),
  masters_up: gauge('Configured masters that answer.'),

  // backup
  snapshot_version: gauge('Metadata version the newest snapshot of this source restores to.'),
  snapshot_age_seconds: gauge(
    "Age of the newest complete snapshot (backup: of each source, from its start; verify: the store's newest, from its end).",
    's',
  ),
  transferred_bytes: gauge('Bytes copied into the snapshot store by the last run.', 'B'),
  snapshots: gauge('Usable snapshots in the store.'),
  snapshots_removed: gauge('Snapshots retention removed in the last run.'),
  broken_snapshots: gauge('Snapshot directories in the store that are not usable.'),
  // backup and verify: per off-site copy (label copy)
  copy_ok: gauge('Whether the off-site copy took the last push (backup) or checked out (verify): 1 yes, 0 no.'),
  copy_snapshots: gauge('Complete snapshots on the off-site copy.'),
  copy_snapshot_age_seconds: gauge('Age of the newest complete snapshot on the off-site copy, from its start.', 's'),

  // archive and verify: the changelog archive (verify: label destination, the store or a copy)
  archive_version: gauge('Metadata version a restore through the changelog archive reaches (its last line + 1).'),
  archive_gaps: gauge('Version ranges missing inside the changelog archive.'),
  archive_lag_versions: gauge('Metadata versions the master has beyond the end of the changelog archive.'),
  archive_lag_seconds: gauge(
    "Age of the archive's newest line while the master has newer changes (0 when it has everything).",
    's',
  ),

  // verify: per metalogger (label metalogger) or chunkserver (label chunkserver)
  master_metadata_version: gauge('Metadata version of the serving master (mfscli -SIM) when verify ran.'),
  lag_versions: gauge('Metadata versions the master has that a restore from this source would not reach.'),
  lag_seconds: gauge(
    'Age of the newest change a restore from this source reaches, while the master has newer ones (0 when it has everything).',
    's',
  ),
  image_age_seconds: gauge('Age of the metadata image a restore from this source would load (file mtime).', 's'),
  image_version: gauge('Version of the metadata image a restore from this source would load.'),
  restorable_version: gauge(
    "Metadata version mfsmaster -a reaches from this source's files (image rolled forward, gap-free).",
  ),
  holes: gauge('Missing version ranges between the image and the newest changelog line.'),
  changelog_problems: gauge('Unparsable, repeated or cut changelog lines.'),
  connected: gauge('Whether the master lists this metalogger as connected (1, 0; NaN when unknown).'),
  metalogger_status: gauge("Verify's verdict per metalogger: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
  chunkserver_status: gauge(
    "Verify's verdict per chunkserver (changelog_csback): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
  ),
  snapshot_restorable_version: gauge('Metadata version a restore from the newest snapshot reaches.'),
  snapshot_lag_versions: gauge('Metadata versions the master has beyond the newest snapshot.'),
  snapshot_status: gauge("Verify's verdict on the newest snapshot: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
  retained_snapshots: gauge('Snapshots older than the newest that verify checked (each a restore point).'),
  retained_snapshots_damaged: gauge(
    "Of those, how many are damaged (checksum, key, chain): each is named in verify's output.",
  ),

  // prune: per target (label target)
  freed_bytes: gauge('Bytes prune deleted in its last run.', 'B'),
  deleted_files: gauge('Files prune deleted in its last run.'),
  kept_bytes: gauge('Bytes prune kept (what restore points need and what safety keeps).', 'B'),
  retained_restore_points: gauge('Restore points prune retained.'),

  // promote, drill
  rto_seconds: gauge(
    'Recovery time measured (promote: from the hook call to the master serving; drill: copy + restore + until mfscli -SIM answers).',
    's',
  ),
  restore_seconds: gauge('Time the restore itself took (mfsmaster -a or mfsmetarestore, until it daemonised).', 's'),
  rpo_versions: gauge(
    'Metadata versions lost (promote: versus the newest any source had; drill: the live master has beyond the restore point).',
  ),
  rpo_seconds: gauge(
    'Seconds of changes lost (promote: versus the newest any source had; drill: 0 when the live master has nothing newer).',
    's',
  ),
  overhead_seconds: gauge('What promote adds on top of the bare restore.', 's'),
  fetched_bytes: gauge('Bytes promote fetched or copied for the restore.', 'B'),
  mirrored_bytes: gauge("Bytes the warm standby's mirror gave promote instead of a source (standby.mirror).", 'B'),
  // Written by the clients-back watch after promote returned (job label promote-clients); the HELP stays as it
  // was, or node_exporter would drop the family while an older promote textfile still carries it.
  clients_back_seconds: gauge(
    'Promote: from the hook call until the first client mount was connected to the promoted master again.',
    's',
  ),
  restored_version: gauge(
    'Metadata version the restore reached (drill: its scratch master after mfsmaster -a; restore: the restored DATA_PATH).',
  ),
  expected_version: gauge("Newest metadata version the drill's restore point chain offers."),
  copy_seconds: gauge('Drill: copying (and checksumming) the restore point.', 's'),
  serving_seconds: gauge('Drill: from the restore until mfscli -SIM answered.', 's'),
  copied_bytes: gauge('Drill: bytes of image and changelogs copied.', 'B'),
  restore_point_age_seconds: gauge('Age of the restore point the drill restored.', 's'),
  restored_files: gauge("Files in the drill's restored metadata (mfscli -SIG)."),
  restored_directories: gauge("Directories in the drill's restored metadata (mfscli -SIG)."),

  // restore (--to-version / --to-time)
  left_out_changes: gauge('Restore: changelog lines after the target left out.'),
  left_out_deletions: gauge('Restore: deletions (UNLINK, PURGE, trash) among the lines left out.'),
  trash_seconds: gauge('Restore: the trash time the target was compared with.', 's'),
  served_version: gauge('Restore: metadata version the restored master serves.'),

  // check-standby
  standby_problems: gauge(
    'Check-standby: settings or conditions that would make a promotion of this standby fail or need attention now.',
  ),
  promotion_version: gauge('Check-standby: metadata version a promotion of this standby would restore now.'),
  promotion_lag_versions: gauge(
    'Check-standby: metadata versions the live master has beyond what a promotion now would restore.',
  ),
  promotion_lag_seconds: gauge(
    'Check-standby: age of the newest change a promotion now would restore, while the master has newer ones (0 when it has everything).',
    's',
  ),
  standby_free_bytes: gauge("Check-standby: bytes free to the standby's DATA_PATH filesystem.", 'B'),
  keepalived_fault_held: gauge(
    'Check-standby: 1 while standby.keepalivedTrackFile holds keepalived in FAULT after a refused promotion.',
  ),

  // demote
  stop_seconds: gauge('How long mfsmaster stop took.', 's'),
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof METRICS;

/** The prefix of every Prometheus metric mfs-jobs writes. */
export const METRIC_PREFIX = 'mfs_jobs_';

/** One figure: Nagios perfdata and a Prometheus sample at once; build it with `metric()`. */
export interface Metric {
  /** A key of METRICS, e.g. `lag_versions`. */
  name: MetricName;
  value: number;
  unit?: MetricUnit;
  warn?: number;
  crit?: number;
  labels?: Record<string, string>;
}

/** A sample of a registered metric; its unit comes from the registry. */
export function metric(name: MetricName, value: number, extra: Pick<Metric, 'warn' | 'crit' | 'labels'> = {}): Metric {
  const unit = METRICS[name].unit;
  return { name, value, ...(unit ? { unit } : {}), ...extra };
}

/** The registry entry of `name`; undefined for a name no job may emit. */
export function metricSpec(name: string): MetricSpec | undefined {
  return Object.hasOwn(METRICS, name) ? (METRICS as Record<string, MetricSpec>)[name] : undefined;
}

/** Why `name` + `spec` breaks Prometheus' naming rules, or undefined when it follows them. */
export function namingProblem(name: string, spec: MetricSpec): string | undefined {
  if (!/^[a-z][a-z0-9_]*$/.test(name) || name.includes('__')) return 'not snake_case [a-z0-9_]';
  if (spec.unit === 's' && !name.endsWith('_seconds')) return 'unit s but no _seconds suffix';
  if (spec.unit === 'B' && !name.endsWith('_bytes')) return 'unit B but no _bytes suffix';
  if (spec.unit !== 's' && /_seconds$|_milliseconds$|_minutes$|_hours$/.test(name))
    return 'a time without unit s (base unit: seconds)';
  if (spec.unit !== 'B' && /_bytes$|_kb$|_mb$/.test(name)) return 'a size without unit B (base unit: bytes)';
  if (spec.type === 'counter' && !name.endsWith('_total')) return 'a counter without _total';
  if (spec.type === 'gauge' && name.endsWith('_total')) return 'a gauge named _total';
  if (!spec.help.trim() || /[\n\\]/.test(spec.help)) return 'HELP empty or not one line';
  return undefined;
}
