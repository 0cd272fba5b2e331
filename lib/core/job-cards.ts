import type { JobCard } from './job.js';

// The jobs' cards: what the CLI parses and lists without importing any job (start-up, issue #24). Each job's
// definition spreads its card (`defineJob({ ...CARDS.promote, … })`), so the two say the same by construction.
const FORCE = {
  flags: '--force',
  description: 'act even when another master answers or the VIP is not held (you know the other master is dead)',
};
const TARGET = [
  {
    flags: '--to-version <n>',
    description:
      'the metadata as the master had it when it reported version N (mfscli -SIM): every change before N, none from N on',
  },
  {
    flags: '--to-time <iso>',
    description:
      "the metadata after the last change at or before this ISO-8601 time (no offset: the config's timezone)",
  },
];
const OTHER_FILESYSTEM = {
  flags: '--other-filesystem',
  description:
    "restore a restore point whose metaid is not the cluster's (cluster.metaid, or recorded by backup), or a copy's when the cluster's is not known",
};

/** Every job's card, by name (jobs/index.ts adds how to load each). */
export const CARDS = {
  'check-master': {
    name: 'check-master',
    description:
      'Ask every configured master what it serves (MooseFS client protocol, every generation); CRITICAL when none answers',
    defaultSchedule: '*/5 * * * *',
  },
  'check-standby': {
    name: 'check-standby',
    description: 'Prove on the standby that a promotion would succeed now (cfg, binaries, ports, DATA_PATH, sources)',
    defaultSchedule: '*/5 * * * *',
  },
  backup: {
    name: 'backup',
    description:
      'Copy the newest metadata image and the changelogs that roll it forward from each source (SFTP) into the snapshot store, verified; then apply retention',
    defaultSchedule: '7 * * * *',
  },
  archive: {
    name: 'archive',
    description:
      "Archive the masters' changelogs continuously into the snapshot store (and its copies) as sealed segments",
    cliOptions: [
      {
        flags: '--follow',
        description: 'go on following the changelogs until stopped (SIGTERM seals what is pending)',
      },
    ],
  },
  verify: {
    name: 'verify',
    description:
      "Check that every metalogger, every 1.x chunkserver's changelog_csback and the newest snapshot can restore the cluster now: valid image, gap-free changelogs, lag behind the master",
    defaultSchedule: '*/10 * * * *',
  },
  prune: {
    name: 'prune',
    description:
      'Delete changelogs and snapshots that no retained restore point needs (snapshot store; DATA_PATHs listed in jobs.prune.dataPaths)',
    defaultSchedule: '30 * * * *',
  },
  promote: {
    name: 'promote',
    description:
      'Turn this standby into the running mfsmaster with the newest metadata (ucarp up-script, keepalived notify_master)',
    cliOptions: [
      FORCE,
      {
        flags: '--other-filesystem',
        description:
          "restore points of another filesystem than the cluster's may be chosen (jobs.promote.metaid still pins one), and a copy's when the cluster's is not known",
      },
    ],
  },
  demote: {
    name: 'demote',
    description:
      "Stop this standby's mfsmaster cleanly and keep its files (ucarp down-script, keepalived notify_backup/notify_fault)",
    cliOptions: [FORCE],
  },
  drill: {
    name: 'drill',
    description:
      "Restore drill: restore a snapshot or a metalogger's files into a scratch master on loopback, prove it serves, report RTO/RPO, clean up",
    defaultSchedule: '30 4 * * 0',
    cliOptions: [
      { flags: '--snapshot <id>', description: 'drill this snapshot of the store' },
      {
        flags: '--from <metalogger>',
        description:
          "drill from this metalogger's DATA_PATH (SFTP, or local); copy:NAME: the newest snapshot of that off-site copy (or --snapshot ID of it), fetched and checked first",
      },
      {
        flags: '--latest',
        description: 'drill the newest snapshot (the default, unless jobs.drill.from names a metalogger)',
      },
      { flags: '--keep', description: 'keep the scratch DATA_PATH afterwards (the scratch master is stopped anyway)' },
      OTHER_FILESYSTEM,
      ...TARGET,
    ],
  },
  restore: {
    name: 'restore',
    description:
      "Point-in-time recovery: rebuild a master's DATA_PATH from a snapshot or a metalogger, to a version or a time",
    cliOptions: [
      { flags: '--snapshot <id>', description: 'restore this snapshot of the store' },
      {
        flags: '--from <metalogger>',
        description:
          "restore from this metalogger's (or master's) DATA_PATH (SFTP, or local); copy:NAME: the newest snapshot of that off-site copy (or --snapshot ID of it), fetched and checked first",
      },
      { flags: '--latest', description: 'restore the newest snapshot whose image is older than the target' },
      ...TARGET,
      {
        flags: '--data-path <dir>',
        description:
          'the DATA_PATH to rebuild (its old content is moved aside, never deleted; no master may run there)',
      },
      {
        flags: '--start',
        description:
          'start the restored master (mfsmaster -a, or mfsmetarestore before 1.7) and wait until it serves the target version',
      },
      {
        flags: '--master-config <file>',
        description:
          "the restored master's mfsmaster.cfg (default: jobs.restore.masterConfig, standby.masterConfig, /etc/mfs/mfsmaster.cfg)",
      },
      OTHER_FILESYSTEM,
    ],
  },
} as const satisfies Record<string, JobCard>;
