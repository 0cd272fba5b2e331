import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MFS_JOBS_BIN } from '../../test/helpers/cli.js';
import { NetLab } from '../../test/lab/netns.js';
import {
  compare,
  expectExitZero,
  FigureSamples,
  finish,
  jobAvailable,
  jobReport,
  metricValue,
  mfsJobs,
  notAvailable,
  sshClientOptions,
  writeJobsConfig,
  warmedUp,
  type BenchContext,
  type CaseResult,
  type Side,
} from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import {
  baselineScript,
  expectServing,
  masterPeakRssMb,
  peakRssMb,
  placeChain,
  scratchMaster,
  stopAndWipe,
} from '../scratch.js';

/**
 * Case 3: turn the standby into the master from a metalogger reached over the loopback sshd —
 * `mfs-jobs run promote` against the recipe's up-script (bench/baseline/promote.sh: scp the
 * metalogger's image and changelogs, `mfsmaster -a`). Both end with a master serving the chain's end.
 */
export async function promoteCase(
  ctx: BenchContext,
  chain: ChainInfo,
  o: { cold?: boolean } = {},
): Promise<CaseResult[]> {
  const standby = await scratchMaster(path.join(ctx.runDir, 'promote-script'));
  const script: Side = {
    label: 'recipe script (scp + mfsmaster -a)',
    command: {
      cmd: baselineScript('promote.sh'),
      args: [
        `root@${ctx.sshd.host}`,
        chain.dataPath,
        standby.dataPath,
        standby.configFile,
        '-P',
        String(ctx.sshd.port),
        ...sshClientOptions(ctx),
      ],
    },
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(standby, chain.last + 1);
    },
    cleanup: () => stopAndWipe(standby),
  };
  const result = {
    id: `promote-${chain.files}`,
    title: `promote, ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs (${Math.round(chain.changelogBytes / 2 ** 20)} MB) over loopback, old master's host dead (namespace, link down)`,
    target:
      chain.files >= 10_000_000
        ? { text: '≤ 1.05× recipe script', maxRatio: 1.05 }
        : { text: '≤ 1.3× recipe script', maxRatio: 1.3 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('promote')) {
    const [baseline] = await compare(ctx, [script], { warmup: !ctx.quick });
    return [notAvailable({ ...result, baseline }, 'promote')];
  }
  // The old master's machine is dead like a real one: a network namespace on a bridge of this machine's
  // own, its link down. Promote must fence it (ARP gets no reply) and give up its SSH source, not wait out
  // timeouts; the metalogger is reached over the loopback sshd.
  const net = await NetLab.create(['X'], '10.75.0');
  try {
    await net.joinFromHost('10.75.0.254');
    const dead = net.machine('X');
    await dead.linkDown();
    const mfsStandby = await scratchMaster(path.join(ctx.runDir, 'promote-standby'));
    const config = await writeJobsConfig(ctx, 'promote', {
      masters: [{ name: 'old', host: dead.ip, cliPort: 9421, dataPath: '/var/lib/mfs' }],
      metaloggers: [{ name: 'ml', host: ctx.sshd.host, dataPath: chain.dataPath }],
      standby: {
        dataPath: mfsStandby.dataPath,
        masterConfig: mfsStandby.configFile,
        cliHost: mfsStandby.cliHost,
        cliPort: mfsStandby.ports.cl,
      },
      // No clients here to come back: the command's time is the promotion's.
      jobs: { promote: { clientsWaitSeconds: 0 } },
    });
    const cold = (o.cold ?? true) ? [await measurePromote(ctx, chain, { result, script, config, mfsStandby })] : [];
    return [...cold, await measureWarm(ctx, chain, dead.ip)];
  } finally {
    await net.destroy();
  }
}

async function measurePromote(
  ctx: BenchContext,
  chain: ChainInfo,
  o: {
    result: Omit<CaseResult, 'status'>;
    script: Side;
    config: string;
    mfsStandby: Awaited<ReturnType<typeof scratchMaster>>;
  },
): Promise<CaseResult> {
  const { result, script, config, mfsStandby } = o;
  const timings = new FigureSamples();
  const promote: Side = {
    label: 'mfs-jobs run promote',
    command: mfsJobs('run', 'promote', '--config', config, '--json'),
    check: (sample) => {
      const report = jobReport(sample);
      const version = metricValue(report, 'metadata_version');
      if (version !== chain.last + 1)
        throw new Error(`promote serves version ${version}, expected ${chain.last + 1}: ${report.summary}`);
      const t = (report.details.timings ?? {}) as Record<string, unknown>;
      timings.add({
        rtoSeconds: metricValue(report, 'rto_seconds'),
        overheadSeconds: metricValue(report, 'overhead_seconds'),
        ...t,
      });
    },
    cleanup: () => stopAndWipe(mfsStandby),
  };
  const warm = warmedUp(ctx, !ctx.quick);
  const [subject, baseline] = await compare(ctx, [promote, script], { warmup: warm });
  Object.assign(result.figures, timings.medians(warm ? 1 : 0));
  result.notes.push(
    'rtoSeconds as promote reports it: from its process start to mfscli answering; overheadSeconds = RTO minus its own mfsmaster -a; *Ms = the timings promote reports (startup = Node and module loading); promote also fences the old master, verifies every changelog line and moves the old DATA_PATH content aside',
  );
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, promote);
}

/**
 * The warm standby (standby.mirror): `mfs-jobs daemon` on the standby has mirrored the metalogger
 * and watches the old master; the hook's `run promote` is handed to it. Against a bare
 * `mfsmaster -a` with the files already in DATA_PATH: what promote costs beyond the restore itself.
 */
async function measureWarm(ctx: BenchContext, chain: ChainInfo, deadIp: string): Promise<CaseResult> {
  const result = {
    id: `promote-warm-${chain.files}`,
    title: `promote from a warm standby (daemon, standby.mirror), ${chain.files / 1e6}M-file image + ${chain.changelogs.length} changelogs, old master's host dead`,
    target:
      chain.files >= 10_000_000
        ? { text: '≤ 1.05× bare mfsmaster -a (files in place)', maxRatio: 1.05 }
        : { text: 'overhead ≤ 0.3 s', maxRatio: 1.3 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  // Per size: a case's mirror and state must not meet the previous size's.
  const name = `promote-warm-${chain.files}`;
  const bare = await scratchMaster(path.join(ctx.runDir, `${name}-bare`));
  const masterRss = new FigureSamples();
  const baseline: Side = {
    label: 'bare mfsmaster -a, files already in place',
    prepare: () => placeChain(chain, bare.dataPath),
    command: { cmd: 'mfsmaster', args: ['-c', bare.configFile, '-a', 'start'] },
    check: async (sample) => {
      expectExitZero(sample);
      await expectServing(bare, chain.last + 1);
      masterRss.add({ bareMfsmasterPeakRssMb: await masterPeakRssMb(bare) });
    },
    cleanup: () => stopAndWipe(bare),
  };
  const standby = await scratchMaster(path.join(ctx.runDir, name));
  const config = await writeJobsConfig(ctx, name, {
    masters: [{ name: 'old', host: deadIp, cliPort: 9421, dataPath: '/var/lib/mfs' }],
    metaloggers: [{ name: 'ml', host: ctx.sshd.host, dataPath: chain.dataPath }],
    standby: {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: standby.cliHost,
      cliPort: standby.ports.cl,
      mirror: true,
      mirrorIntervalSeconds: 1,
    },
    jobs: {
      ...Object.fromEntries(['backup', 'check-master', 'drill', 'prune', 'verify'].map((j) => [j, { enabled: false }])),
      promote: { clientsWaitSeconds: 0 },
    },
  });
  const daemon = spawn(process.execPath, [MFS_JOBS_BIN, 'daemon', '--config', config], { stdio: 'ignore' });
  const timings = new FigureSamples();
  const mirrorBytes = new FigureSamples();
  try {
    const promote: Side = {
      label: 'mfs-jobs run promote (handed to the daemon, warm mirror)',
      prepare: () => waitMirrorWarm(path.join(ctx.runDir, `${name}-state`, 'mirror', 'ml'), chain),
      command: mfsJobs('run', 'promote', '--config', config, '--json'),
      check: async (sample) => {
        const report = jobReport(sample);
        const version = metricValue(report, 'metadata_version');
        if (version !== chain.last + 1)
          throw new Error(`promote serves version ${version}, expected ${chain.last + 1}: ${report.summary}`);
        masterRss.add({
          mfsmasterPeakRssMb: await masterPeakRssMb(standby),
          daemonPeakRssMb: await peakRssMb(daemon.pid),
        });
        if (report.details.handedOff !== true) throw new Error('promote was not handed to the daemon');
        const t = (report.details.timings ?? {}) as Record<string, unknown>;
        timings.add({
          rtoSeconds: metricValue(report, 'rto_seconds'),
          overheadSeconds: metricValue(report, 'overhead_seconds'),
          ...t,
        });
        mirrorBytes.add({ mirroredBytes: report.details.mirroredBytes, fetchedBytes: report.details.fetchedBytes });
      },
      // The mirror (in the state dir) stays: fetching it again would load the machine under the baseline.
      cleanup: () => stopAndWipe(standby),
    };
    const warm = warmedUp(ctx, !ctx.quick);
    const [subject, base] = await compare(ctx, [promote, baseline], { warmup: warm });
    Object.assign(
      result.figures,
      timings.medians(warm ? 1 : 0),
      mirrorBytes.medians(warm ? 1 : 0),
      masterRss.medians(warm ? 1 : 0),
    );
    // The daemon mirrored the image and ran the promotion: its peak over the whole case, not the client's.
    result.figures.daemonPeakRssMb = (await peakRssMb(daemon.pid)) ?? '-';
    result.notes.push(
      "the mirror is warmed before each run (not timed); fence answered by the daemon's watch of the dead host; overheadSeconds = RTO minus promote's own mfsmaster -a; daemonPeakRssMb = the daemon's VmHWM (it mirrors and promotes; the measured RSS is the handing-off client's)",
    );
    return await finish(ctx, { ...result, status: 'measured', subject, baseline: base }, promote);
  } finally {
    daemon.kill('SIGTERM');
    await once(daemon, 'exit').catch(() => undefined);
    await stopAndWipe(standby);
  }
}

/** Until the daemon's mirror (`dir`: <stateDir>/mirror/<source>) holds the chain's image and every changelog byte. */
async function waitMirrorWarm(dir: string, chain: ChainInfo): Promise<void> {
  const image = (await fs.stat(path.join(chain.dataPath, 'metadata_ml.mfs.back'))).size;
  const deadline = Date.now() + 600_000;
  for (;;) {
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    const sizes = await Promise.all(
      names.map(async (n) => ({ n, size: (await fs.stat(path.join(dir, n)).catch(() => undefined))?.size ?? 0 })),
    );
    const img = sizes.find((s) => s.n.startsWith('image-'))?.size;
    const logs = sizes.filter((s) => s.n.startsWith('changelog-')).reduce((t, s) => t + s.size, 0);
    if (img === image && logs >= chain.changelogBytes) return;
    if (Date.now() > deadline)
      throw new Error(
        `the mirror in ${dir} did not warm up in 600 s (image ${img ?? '-'}/${image} B, changelogs ${logs}/${chain.changelogBytes} B)`,
      );
    await sleep(200);
  }
}
