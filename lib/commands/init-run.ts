import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDir, pathExists, writeFileAtomic } from '../core/atomic.js';
import { parseConfig, type Config, type DataPathHost } from '../core/config.js';
import { ConfigError, describeError, UsageError } from '../core/errors.js';
import { exitCodeOf, worst, type Job, type JobEntry, type Status } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import type { JsonReport } from '../core/output.js';
import { runJob } from '../core/runner.js';
import { DEFAULT_STATE_DIR } from '../core/hand-off.js';
import type { Generation } from '../moosefs/generations/index.js';
import { imageFormat } from '../moosefs/generations/image-formats.js';
import { connectedChunkservers, connectedMetaloggerHosts, masterStatus, type MasterStatus } from '../moosefs/master.js';
import { listDataPath } from '../moosefs/datapath.js';
import { openSource } from '../transport/remote.js';
import { clusterIdentity } from '../store/identity.js';
import { differingKeys, parseYaml, renderConfig, type InitHost, type InitPlan } from './init-config.js';

/** What the operator answered (flags, or the terminal); every path absolute. */
export interface InitAnswers {
  master: string;
  configFile: string;
  stateDir?: string;
  store?: string;
  dataPath: string;
  masterDataPath?: string;
  metaloggerDataPath?: string;
  /** DATA_PATH of the chunkservers (read before 1.6.5, where they keep changelog_csback.N.mfs). */
  chunkserverDataPath: string;
  sshUser: string;
  sshPort: number;
  sshKey?: string;
  knownHosts?: string;
  /** false: read every DATA_PATH over SSH, this machine's too. */
  local: boolean;
  moosefsPrefix?: string;
  force: boolean;
  dryRun: boolean;
}

/** The jobs init runs once, in this order, and schedules. */
const FIRST_RUNS = ['check-master', 'backup', 'verify'] as const;
const SCHEDULED = ['check-master', 'backup', 'verify', 'prune'] as const;

/** `HOST`, `HOST:PORT`, `[v6]:PORT`; the client port defaults to MooseFS's 9421. */
export function parseMasterAddress(text: string): { host: string; port: number } {
  if (!text)
    throw new UsageError(
      '--master',
      "--master HOST[:PORT] is needed (the master's client address; asked only on a terminal)",
    );
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:\s]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] === undefined ? 9421 : Number(m[2]);
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(
      '--master',
      `--master ${JSON.stringify(text)}: expected HOST or HOST:PORT (the master's client port, 9421 by default)`,
    );
  }
  return { host: m[1], port };
}

function isThisMachine(address: string): boolean {
  if (address === 'localhost') return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === address));
}

/** The example config the .deb installs as /etc/mfs-jobs/config.yaml: a placeholder, replaced without --force. */
async function isShippedExample(text: string): Promise<boolean> {
  const example = fileURLToPath(new URL('../../../examples/config.yaml', import.meta.url));
  return (await fs.readFile(example, 'utf8').catch(() => undefined)) === text;
}

type Raw = Record<string, unknown> & { ssh?: Record<string, unknown> };

interface Outcome {
  status: Status;
  summary: string;
  lines: string[];
  details: Record<string, unknown>;
}

/** Ask the master what it is and who is connected to it: the plan of the config. */
async function discover(a: InitAnswers): Promise<{ plan: InitPlan; status: MasterStatus }> {
  const { host, port } = parseMasterAddress(a.master);
  if (!Number.isInteger(a.sshPort) || a.sshPort < 1 || a.sshPort > 65535)
    throw new UsageError('--ssh-port', `--ssh-port: expected a port number, got ${a.sshPort}`);
  const status = await masterStatus({ host, port, timeoutMs: 5000, generation: 'auto' });
  const ips = status.generation.hasMetalogger ? await connectedMetaloggerHosts({ host, port, timeoutMs: 5000 }) : [];
  const confDir = path.dirname(a.configFile);
  const stateDir = a.stateDir ?? DEFAULT_STATE_DIR;
  const local = (addr: string) => a.local && isThisMachine(addr);
  // One entry per address: two metaloggers on one machine cannot be told apart by the master's list.
  const metaloggers: InitHost[] = [...new Set(ips)].sort().map((ip) => ({
    name: `ml-${ip.replace(/[^A-Za-z0-9_.-]/g, '-')}`,
    host: ip,
    dataPath: a.metaloggerDataPath ?? a.dataPath,
    local: local(ip),
  }));
  // Before 1.6.5 no metalogger exists: the chunkservers' changelog_csback.N.mfs are the changelogs.
  const csIps = status.generation.hasMetalogger
    ? []
    : ((await connectedChunkservers({ host, port, timeoutMs: 5000 }, status)) ?? []).map((c) => c.ip);
  // One entry per address, as for metaloggers: chunkservers on one machine share what init can tell of them.
  const chunkservers: InitHost[] = [...new Set(csIps)].sort().map((ip) => ({
    name: `cs-${ip.replace(/[^A-Za-z0-9_.-]/g, '-')}`,
    host: ip,
    dataPath: a.chunkserverDataPath,
    local: local(ip),
  }));
  const plan: InitPlan = {
    configFile: a.configFile,
    stateDir,
    store: a.store ?? path.join(stateDir, 'snapshots'),
    master: { name: 'mfsmaster', host, cliPort: port, dataPath: a.masterDataPath ?? a.dataPath, local: local(host) },
    metaloggers,
    chunkservers,
    ssh: {
      user: a.sshUser,
      port: a.sshPort,
      privateKey: a.sshKey ?? path.join(confDir, 'id_ed25519'),
      knownHosts: a.knownHosts ?? path.join(confDir, 'known_hosts'),
    },
    softwareVersion: status.softwareVersion,
    generation: status.generation.name,
    metaid: status.metaid,
    moosefsPrefix: a.moosefsPrefix,
    schedules: [],
  };
  return { plan, status };
}

/**
 * Open each host's DATA_PATH the way the jobs will (SFTP or local) and list it. An unknown host key is
 * pinned into knownHosts (accept-new); a known one that differs is refused, as every job refuses it.
 */
async function testSources(raw: Raw, file: string): Promise<{ ok: boolean; lines: string[] }> {
  const pinning = parseConfig({ ...raw, ssh: raw.ssh ? { ...raw.ssh, acceptUnknownHostKeys: true } : undefined }, file);
  const hosts: DataPathHost[] = [...pinning.masters, ...pinning.metaloggers, ...pinning.chunkservers];
  if (hosts.some((h) => !h.local)) {
    const { privateKey, knownHosts } = hosts.find((h) => h.ssh)!.ssh!;
    if (!(await pathExists(privateKey))) {
      const remote = hosts.filter((h) => !h.local).map((h) => h.host);
      return {
        ok: false,
        lines: [
          `SSH key ${privateKey} does not exist: create it (ssh-keygen -t ed25519 -N '' -f ${privateKey}) and add ` +
            `${privateKey}.pub to ~${typeof raw.ssh?.user === 'string' ? raw.ssh.user : 'root'}/.ssh/authorized_keys on ` +
            [...new Set(remote)].join(', '),
        ],
      };
    }
    await ensureDir(path.dirname(knownHosts));
  }
  let ok = true;
  const lines: string[] = [];
  for (const host of hosts) {
    const how = host.local ? 'local' : `ssh ${host.ssh!.user}@${host.host}:${host.ssh!.port}`;
    try {
      const source = await openSource(pinning, host, undefined, () => undefined);
      try {
        const listing = await listDataPath(source, host.dataPath);
        const files = listing.images.length + listing.changelogs.length;
        if (files === 0)
          throw new ConfigError(
            host.dataPath,
            `${host.dataPath} holds no metadata image or changelog (is it the DATA_PATH?)`,
          );
        lines.push(
          `${host.name} (${how}): ${host.dataPath} readable, ` +
            `${listing.images.length} image(s), ${listing.changelogs.length} changelog(s)`,
        );
      } finally {
        await source.close();
      }
    } catch (err) {
      ok = false;
      lines.push(`${host.name} (${how}): ${describeError(err)}`);
    }
  }
  return { ok, lines };
}

/** The line(s) that schedule the jobs: the systemd unit when the package installed it, else cron.d lines. */
async function scheduleAdvice(plan: InitPlan): Promise<{ systemd?: string; crontab: string[]; lines: string[] }> {
  const env = plan.configFile === '/etc/mfs-jobs/config.yaml' ? '' : `MFS_JOBS_CONFIG=${plan.configFile} `;
  const crontab = plan.schedules.map((s) => `${s.schedule.padEnd(12)} root  ${env}mfs-jobs run ${s.job} >/dev/null`);
  const units = ['/lib/systemd/system/mfs-jobs.service', '/etc/systemd/system/mfs-jobs.service'];
  const unit = (await Promise.all(units.map(pathExists))).some(Boolean);
  if (unit) {
    const systemd = 'systemctl enable --now mfs-jobs';
    const note = env ? ` (after \`systemctl edit mfs-jobs\`: [Service] Environment=${env.trim()})` : '';
    return {
      systemd,
      crontab,
      lines: [
        `schedule: ${systemd}${note}`,
        'or, instead (not both), in /etc/cron.d/mfs-jobs:',
        ...crontab.map((l) => `  ${l}`),
      ],
    };
  }
  return {
    crontab,
    lines: [
      'schedule: put these lines in /etc/cron.d/mfs-jobs (or run `mfs-jobs daemon` under systemd):',
      ...crontab.map((l) => `  ${l}`),
    ],
  };
}

export async function runInit(a: InitAnswers, jobs: readonly JobEntry[], log: Logger): Promise<JsonReport> {
  const startedAt = new Date();
  const outcome = await initOutcome(a, jobs, log).catch((err: unknown): Outcome => ({
    status: err instanceof UsageError ? 'UNKNOWN' : 'CRITICAL',
    summary: describeError(err),
    lines: [],
    details: {},
  }));
  const finishedAt = new Date();
  return {
    job: 'init',
    status: outcome.status,
    exitCode: exitCodeOf(outcome.status),
    summary: outcome.summary,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    dryRun: a.dryRun,
    details: outcome.details,
    metrics: [],
    lines: outcome.lines,
  };
}

async function initOutcome(a: InitAnswers, jobs: readonly JobEntry[], log: Logger): Promise<Outcome> {
  const { plan, status } = await discover(a);
  plan.schedules = SCHEDULED.map((name) => ({
    job: name,
    schedule: jobs.find((j) => j.name === name)?.defaultSchedule ?? '',
  }));
  const text = renderConfig(plan);
  const raw = parseYaml(text) as Raw;
  parseConfig(raw, a.configFile); // what init writes must load: a bug here is caught before anything is written
  const found = [
    `master ${plan.master.host}:${plan.master.cliPort}: ` +
      `MooseFS ${status.softwareVersion} (generation ${plan.generation})` +
      (status.metaid ? `, metaid ${status.metaid}` : ', metaid learnt by the first backup'),
    `metaloggers: ${plan.metaloggers.map((m) => m.host).join(', ') || 'none connected'}`,
  ];
  if (!status.generation.hasMetalogger) {
    found[1] =
      `metaloggers: none in ${status.generation.label}; chunkservers (their changelog_csback.N.mfs): ` +
      (plan.chunkservers.map((c) => c.host).join(', ') || 'none connected');
  }
  const details: Record<string, unknown> = {
    config: a.configFile,
    master: {
      ...plan.master,
      softwareVersion: status.softwareVersion,
      generation: plan.generation,
      metaid: status.metaid ?? null,
    },
    metaloggers: plan.metaloggers,
    chunkservers: plan.chunkservers,
  };
  if (a.dryRun) {
    return {
      status: 'OK',
      summary: `dry run: would write ${a.configFile} (nothing written)`,
      lines: [...found, '', ...text.split('\n')],
      details: { ...details, configText: text },
    };
  }

  const existing = await fs.readFile(a.configFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new UsageError(a.configFile, `cannot read ${a.configFile}: ${err.code ?? err.message}`);
  });
  let previous: unknown;
  if (existing !== undefined) {
    try {
      previous = parseYaml(existing);
    } catch {
      previous = existing;
    }
  }
  const differs = existing === undefined ? [] : differingKeys(previous, raw);
  const unchanged = existing !== undefined && differs.length === 0;
  if (existing !== undefined && !unchanged && !a.force && !(await isShippedExample(existing))) {
    const keys = differs.slice(0, 8).join(', ') + (differs.length > 8 ? `, … (${differs.length} keys)` : '');
    return {
      status: 'UNKNOWN',
      summary:
        `${a.configFile} exists and differs (${keys}): not overwritten; ` +
        '--force replaces it, --dry-run shows the new one',
      lines: found,
      details: { ...details, differs },
    };
  }

  const sources = await testSources(raw, a.configFile);
  const schedule = await scheduleAdvice(plan);
  const lines = [...found, ...sources.lines];
  if (!sources.ok) {
    const summary = `cannot read every DATA_PATH: ${a.configFile} ${unchanged ? 'left as it is' : 'not written'}`;
    return { status: 'CRITICAL', summary, lines, details: { ...details, sources: sources.lines } };
  }
  if (unchanged) {
    return {
      status: 'OK',
      summary: `${a.configFile} already says this: nothing changed`,
      lines: [...lines, ...schedule.lines],
      details: { ...details, changed: false, schedule },
    };
  }
  await writeFileAtomic(a.configFile, text, 0o600);
  lines.push(`wrote ${a.configFile}${existing === undefined ? '' : ` (replaced: ${differs.slice(0, 8).join(', ')})`}`);

  const reports: JsonReport[] = [];
  for (const name of FIRST_RUNS) {
    const entry = jobs.find((j) => j.name === name)!;
    const job: Job = await entry.load();
    const { report } = await runJob(job, { config: await reload(a.configFile), log });
    reports.push(report);
    lines.push(`${name}: ${report.status} - ${report.summary}`);
  }
  const worstStatus = worst(...reports.map((r) => r.status));
  if (!status.metaid) {
    // A master before 4.4 does not say its metaid: the first backup of a live source recorded it.
    const identity = await clusterIdentity({ file: a.configFile, stateDir: plan.stateDir }).catch(() => undefined);
    lines.push(identity ? `metaid ${identity.metaid} (${identity.from})` : noMetaid(status.generation));
    details.metaid = identity?.metaid ?? null;
  }
  lines.push(...schedule.lines);
  const summary =
    worstStatus === 'OK'
      ? `wrote ${a.configFile}; check-master, backup and verify OK`
      : `wrote ${a.configFile}; ${reports
          .filter((r) => r.status !== 'OK')
          .map((r) => `${r.job} ${r.status}`)
          .join(', ')}`;
  return { status: worstStatus, summary, lines, details: { ...details, changed: true, jobs: reports, schedule } };
}

/** The config as a job reads it: from the file just written, by the one loader every job uses. */
async function reload(file: string): Promise<Config> {
  const { loadConfig } = await import('../core/config.js');
  return loadConfig(file);
}

/** Why no metaid is known after the first backup. */
function noMetaid(g: Generation): string {
  if (imageFormat(g.imageMagic)?.carriesMetaid === false) return `metaid: none (${g.label} images carry none)`;
  return 'metaid: not learnt yet (a later backup of an image that carries one records it)';
}
