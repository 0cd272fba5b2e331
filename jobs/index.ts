import type { Job, JobEntry } from '../lib/core/job.js';

// The jobs' cards, and a dynamic import() of each: a command line loads only the job it runs (start-up,
// issue #24). The card repeats what the job's own definition says; a unit test keeps the two equal.
const FORCE = { flags: '--force', description: 'act even when another master answers or the VIP is not held (you know the other master is dead)' };
const TARGET = [
  { flags: '--to-version <n>', description: 'the metadata as the master had it when it reported version N (mfscli -SIM): every change before N, none from N on' },
  { flags: '--to-time <iso>', description: 'the metadata after the last change at or before this ISO-8601 time (no offset: the config\'s timezone)' },
];
const OTHER_FILESYSTEM = {
  flags: '--other-filesystem',
  description: "restore a restore point whose metaid is not the cluster's (cluster.metaid, or recorded by backup), or a copy's when the cluster's is not known",
};
const job = (imported: Promise<{ default: unknown }>): Promise<Job> => imported.then((m) => m.default as Job);

/** Every job mfs-jobs knows, by name. Add a job: one file in jobs/, one entry here. */
export const JOBS: readonly JobEntry[] = [
  {
    name: 'check-master',
    description: 'Ask every configured master what it serves (MooseFS client protocol, every generation); CRITICAL when none answers',
    defaultSchedule: '*/5 * * * *',
    load: () => job(import('./check-master.js')),
  },
  {
    name: 'check-standby',
    description: 'Prove on the standby that a promotion would succeed now (cfg, binaries, ports, DATA_PATH, sources)',
    defaultSchedule: '*/5 * * * *',
    load: () => job(import('./check-standby.js')),
  },
  {
    name: 'backup',
    description: 'Copy the newest metadata image and the changelogs that roll it forward from each source (SFTP) into the snapshot store, verified; then apply retention',
    defaultSchedule: '7 * * * *',
    load: () => job(import('./backup.js')),
  },
  {
    name: 'archive',
    description: "Archive the masters' changelogs continuously into the snapshot store (and its copies) as sealed segments",
    cliOptions: [{ flags: '--follow', description: 'go on following the changelogs until stopped (SIGTERM seals what is pending)' }],
    load: () => job(import('./archive.js')),
  },
  {
    name: 'verify',
    description: 'Check that every metalogger, every 1.x chunkserver\'s changelog_csback and the newest snapshot can restore the cluster now: valid image, gap-free changelogs, lag behind the master',
    defaultSchedule: '*/10 * * * *',
    load: () => job(import('./verify.js')),
  },
  {
    name: 'prune',
    description: 'Delete changelogs and snapshots that no retained restore point needs (snapshot store; DATA_PATHs listed in jobs.prune.dataPaths)',
    defaultSchedule: '30 * * * *',
    load: () => job(import('./prune.js')),
  },
  {
    name: 'promote',
    description: 'Turn this standby into the running mfsmaster with the newest metadata (ucarp up-script, keepalived notify_master)',
    cliOptions: [
      FORCE,
      {
        flags: '--other-filesystem',
        description: "restore points of another filesystem than the cluster's may be chosen (jobs.promote.metaid still pins one), and a copy's when the cluster's is not known",
      },
    ],
    load: () => job(import('./promote.js')),
  },
  {
    name: 'demote',
    description: 'Stop this standby\'s mfsmaster cleanly and keep its files (ucarp down-script, keepalived notify_backup/notify_fault)',
    cliOptions: [FORCE],
    load: () => job(import('./demote.js')),
  },
  {
    name: 'drill',
    description: 'Restore drill: restore a snapshot or a metalogger\'s files into a scratch master on loopback, prove it serves, report RTO/RPO, clean up',
    defaultSchedule: '30 4 * * 0',
    cliOptions: [
      { flags: '--snapshot <id>', description: 'drill this snapshot of the store' },
      { flags: '--from <metalogger>', description: 'drill from this metalogger\'s DATA_PATH (SFTP, or local); copy:NAME: the newest snapshot of that off-site copy (or --snapshot ID of it), fetched and checked first' },
      { flags: '--latest', description: 'drill the newest snapshot (the default, unless jobs.drill.from names a metalogger)' },
      { flags: '--keep', description: 'keep the scratch DATA_PATH afterwards (the scratch master is stopped anyway)' },
      OTHER_FILESYSTEM,
      ...TARGET,
    ],
    load: () => job(import('./drill.js')),
  },
  {
    name: 'restore',
    description: 'Point-in-time recovery: rebuild a master\'s DATA_PATH from a snapshot or a metalogger, to a version or a time',
    cliOptions: [
      { flags: '--snapshot <id>', description: 'restore this snapshot of the store' },
      { flags: '--from <metalogger>', description: 'restore from this metalogger\'s (or master\'s) DATA_PATH (SFTP, or local); copy:NAME: the newest snapshot of that off-site copy (or --snapshot ID of it), fetched and checked first' },
      { flags: '--latest', description: 'restore the newest snapshot whose image is older than the target' },
      ...TARGET,
      { flags: '--data-path <dir>', description: 'the DATA_PATH to rebuild (its old content is moved aside, never deleted; no master may run there)' },
      { flags: '--start', description: 'start the restored master (mfsmaster -a, or mfsmetarestore before 1.7) and wait until it serves the target version' },
      { flags: '--master-config <file>', description: 'the restored master\'s mfsmaster.cfg (default: jobs.restore.masterConfig, standby.masterConfig, /etc/mfs/mfsmaster.cfg)' },
      OTHER_FILESYSTEM,
    ],
    load: () => job(import('./restore.js')),
  },
];

export function findJob(name: string): JobEntry | undefined {
  return JOBS.find((j) => j.name === name);
}

/**
 * Every job loaded (the daemon runs them all; tests check them all). One after the other: jest's ESM
 * loader fails on concurrent imports that share modules ("request for … is not in cache").
 */
export async function loadJobs(): Promise<Job[]> {
  const jobs: Job[] = [];
  for (const entry of JOBS) jobs.push(await entry.load());
  return jobs;
}
