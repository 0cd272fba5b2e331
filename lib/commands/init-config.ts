import { isDeepStrictEqual } from 'node:util';
import YAML from 'yaml';

/**
 * The config `mfs-jobs init` writes: built from what it found, rendered as commented YAML in a fixed order,
 * so the same answers give the same bytes (a second run compares and changes nothing).
 */

export interface InitHost {
  name: string;
  host: string;
  dataPath: string;
  local: boolean;
}

export interface InitPlan {
  configFile: string;
  stateDir: string;
  store: string;
  master: InitHost & { cliPort: number };
  metaloggers: InitHost[];
  /** Before 1.6.5 (no metalogger): the chunkservers the master listed, whose changelog_csback files are read. */
  chunkservers: InitHost[];
  ssh: { user: string; port: number; privateKey: string; knownHosts: string };
  /** What the master said it runs: "3.0.117" and the generation key ("3.0"). */
  softwareVersion: string;
  generation: string;
  /** Only when the master reports it (4.4 and later); older ones leave it to the first backup. */
  metaid?: string;
  moosefsPrefix?: string;
  /** Jobs init schedules (their default schedules), in this order. */
  schedules: { job: string; schedule: string }[];
}

const q = (s: string) => JSON.stringify(s);
/** A line with its comment in column 45, like examples/config.yaml. */
const c = (line: string, comment: string) => `${line.padEnd(44)} # ${comment}`;

function hostLines(h: InitHost, extra: string[]): string[] {
  return [
    `  - name: ${h.name}`,
    `    host: ${q(h.host)}`,
    `    dataPath: ${q(h.dataPath)}`,
    ...(h.local ? [c('    local: true', 'on this machine: read directly, no SSH')] : []),
    ...extra,
  ];
}

/** The YAML text: every choice commented with why (docs/init.md says more). */
export function renderConfig(p: InitPlan): string {
  const anyRemote = [p.master, ...p.metaloggers, ...p.chunkservers].some((h) => !h.local);
  const lines = [
    `# ${p.configFile} — written by \`mfs-jobs init\` for the master at ${p.master.host}:${p.master.cliPort}`,
    `# (MooseFS ${p.softwareVersion}). Run \`mfs-jobs init\` again with the same answers: it changes nothing.`,
    '# Every key: examples/config.yaml (/usr/share/mfs-jobs/examples/config.yaml) and docs/init.md.',
    '',
    c('timezone: UTC', 'schedules and list-jobs times'),
    `stateDir: ${q(p.stateDir)}`,
    '',
    'moosefs:',
    c('  generation: auto', `found ${p.softwareVersion} (generation ${p.generation}); auto follows an upgrade`),
    ...(p.moosefsPrefix ? [`  prefixes: { ${q(p.generation)}: ${q(p.moosefsPrefix)} }`] : []),
    '',
  ];
  if (anyRemote) {
    lines.push(
      '# DATA_PATHs on other machines are read over SFTP with this key; host keys are checked against knownHosts',
      '# (init pinned each one on first contact, as OpenSSH accept-new; from now on a changed key is refused).',
      'ssh:',
      `  user: ${q(p.ssh.user)}`,
      `  port: ${p.ssh.port}`,
      `  privateKey: ${q(p.ssh.privateKey)}`,
      `  knownHosts: ${q(p.ssh.knownHosts)}`,
      '',
    );
  }
  lines.push(
    '# The master: check-master asks it what it serves; backup copies its metadata.mfs.back and changelogs.',
    'masters:',
    ...hostLines(p.master, [c(`    cliPort: ${p.master.cliPort}`, 'the port its mfsmaster.cfg sets for clients')]),
    '',
  );
  if (p.metaloggers.length) {
    lines.push(
      '# The metaloggers the master listed as connected: verify checks each can restore the cluster now.',
      'metaloggers:',
      ...p.metaloggers.flatMap((m) =>
        hostLines(m, [c('    metaDownloadFreqHours: 24', 'META_DOWNLOAD_FREQ (MooseFS default)')]),
      ),
      '',
    );
  } else {
    lines.push(c('metaloggers: []', 'the master listed none'), '');
  }
  if (p.chunkservers.length) {
    lines.push(
      '# No metalogger before MooseFS 1.6.5: the chunkservers the master listed keep changelog_csback.N.mfs,',
      '# the changelogs that roll the hourly image forward; backup copies them, verify checks them.',
      'chunkservers:',
      ...p.chunkservers.flatMap((h) => hostLines(h, [])),
      '',
    );
  }
  if (p.metaid) {
    lines.push(
      '# The filesystem this config serves, as the master reported it: restore points of another are refused.',
      'cluster:',
      `  metaid: ${q(p.metaid)}`,
      '',
    );
  } else {
    lines.push(
      '# cluster.metaid: not reported by this master; the first backup learns it (<stateDir>/cluster-identity.json).',
      '',
    );
  }
  lines.push(
    "# Restore points, zstd-compressed; each snapshot's manifest holds every file's checksum.",
    'snapshotStore:',
    `  path: ${q(p.store)}`,
    '  compression: zstd',
    '',
    '# Schedules for `mfs-jobs daemon` (systemctl enable --now mfs-jobs) or the crontab init printed.',
    'jobs:',
    ...p.schedules.map((s) => `  ${s.job}: { schedule: ${q(s.schedule)} }`),
    c('  check-standby: { enabled: false }', 'needs a standby: section (this machine as standby master)'),
    c('  drill: { enabled: false }', 'enable once `mfs-jobs drill --latest` passes here'),
    '',
  );
  return lines.join('\n');
}

/** Dotted keys whose values differ between two parsed documents (comments and order do not count). */
export function differingKeys(a: unknown, b: unknown, prefix = ''): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => differingKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    return a.flatMap((v, i) => differingKeys(v, b[i], `${prefix}.${i}`));
  }
  return [prefix || '(top level)'];
}

export function parseYaml(text: string): unknown {
  return YAML.parse(text, { maxAliasCount: 100 });
}
