import path from 'node:path';
import { NetLab } from '../../test/lab/netns.js';
import { compare, expectExitZero, FigureSamples, finish, jobAvailable, jobReport, metricValue, mfsJobs, notAvailable, sshClientOptions, writeJobsConfig, type BenchContext, type CaseResult, type Side } from '../bench-case.js';
import type { ChainInfo } from '../generate.js';
import { baselineScript, expectServing, scratchMaster, stopAndWipe } from '../scratch.js';

/**
 * Case 3: turn the standby into the master from a metalogger reached over the loopback sshd —
 * `mfs-jobs run promote` against the recipe's up-script (bench/baseline/promote.sh: scp the
 * metalogger's image and changelogs, `mfsmaster -a`). Both end with a master serving the chain's end.
 */
export async function promoteCase(ctx: BenchContext, chain: ChainInfo): Promise<CaseResult> {
  const standby = await scratchMaster(path.join(ctx.runDir, 'promote-script'));
  const script: Side = {
    label: 'recipe script (scp + mfsmaster -a)',
    command: {
      cmd: baselineScript('promote.sh'),
      args: [`root@${ctx.sshd.host}`, chain.dataPath, standby.dataPath, standby.configFile, '-P', String(ctx.sshd.port), ...sshClientOptions(ctx)],
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
    target: chain.files >= 10_000_000 ? { text: '≤ 1.05× recipe script', maxRatio: 1.05 } : { text: '≤ 1.3× recipe script', maxRatio: 1.3 },
    figures: {} as Record<string, number | string>,
    notes: [] as string[],
  };
  if (!jobAvailable('promote')) {
    const [baseline] = await compare(ctx, [script], { warmup: !ctx.quick });
    return notAvailable({ ...result, baseline }, 'promote');
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
      standby: { dataPath: mfsStandby.dataPath, masterConfig: mfsStandby.configFile, cliHost: mfsStandby.cliHost, cliPort: mfsStandby.ports.cl },
    });
    return await measurePromote(ctx, chain, { result, script, config, mfsStandby });
  } finally {
    await net.destroy();
  }
}

async function measurePromote(
  ctx: BenchContext,
  chain: ChainInfo,
  o: { result: Omit<CaseResult, 'status'>; script: Side; config: string; mfsStandby: Awaited<ReturnType<typeof scratchMaster>> },
): Promise<CaseResult> {
  const { result, script, config, mfsStandby } = o;
  const timings = new FigureSamples();
  const promote: Side = {
    label: 'mfs-jobs run promote',
    command: mfsJobs('run', 'promote', '--config', config, '--json'),
    check: (sample) => {
      const report = jobReport(sample);
      const version = metricValue(report, 'metadata_version');
      if (version !== chain.last + 1) throw new Error(`promote serves version ${version}, expected ${chain.last + 1}: ${report.summary}`);
      const t = (report.details.timings ?? {}) as Record<string, unknown>;
      timings.add({ rtoSeconds: metricValue(report, 'rto_seconds'), overheadSeconds: metricValue(report, 'overhead_seconds'), ...t });
    },
    cleanup: () => stopAndWipe(mfsStandby),
  };
  const warm = !ctx.quick;
  const [subject, baseline] = await compare(ctx, [promote, script], { warmup: warm });
  Object.assign(result.figures, timings.medians(warm ? 1 : 0));
  result.notes.push('rtoSeconds as promote reports it: from its process start to mfscli answering; overheadSeconds = RTO minus its own mfsmaster -a; *Ms = the timings promote reports (startup = Node and module loading); promote also fences the old master, verifies every changelog line and moves the old DATA_PATH content aside');
  return finish(ctx, { ...result, status: 'measured', subject, baseline }, promote);
}
