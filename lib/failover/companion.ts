import type { Config, StandbyConfig } from '../core/config.js';
import type { Companion } from '../core/job.js';
import type { Logger } from '../core/logger.js';
import { MasterCfg } from '../moosefs/master-cfg.js';
import { listening } from '../core/tcp-table.js';
import { LeaseKeeper } from './lease-keeper.js';
import { mastersToFence } from './fence.js';
import { MasterWatch } from './master-watch.js';
import { mirroredHosts, mirrorOf, StandbyMirror } from './mirror.js';
import { standbyMasterPid } from './standby.js';
import { SynHold } from './syn-hold.js';
import { localAddresses } from './vip.js';

/** The settings of jobs.promote the daemon side reads. */
export interface CompanionSettings {
  fenceAheadMilliseconds: number;
  fenceArpMilliseconds: number;
  fenceArpProbes: number;
}

/**
 * What promote keeps running inside `mfs-jobs daemon` on a standby (promote's alongsideDaemon), handed to
 * each promotion the daemon runs (JobContext.companion): the watch of the other masters (so that fencing
 * already knows), the warm standby's mirror, the SYN hold at the VIP, and the clients-back watches a
 * promotion leaves running. A part that is closed is unset, so a promotion never uses a closed one.
 */
export class StandbyCompanion implements Companion {
  watch?: MasterWatch;
  mirror?: StandbyMirror;
  hold?: SynHold;
  /** Issue #25: holds the leader key while this host's mfsmaster serves; self-fences when it cannot. */
  keeper?: LeaseKeeper;
  readonly clientWatches = new Set<AbortController>();

  static async start(config: Config, o: CompanionSettings, log: Logger): Promise<StandbyCompanion | undefined> {
    const standby = config.standby;
    if (!standby) return undefined;
    const c = new StandbyCompanion();
    c.keeper = await LeaseKeeper.start(config, standby, log);
    if (o.fenceAheadMilliseconds > 0) await c.startWatch(config, standby, o, log);
    if (standby.vip && standby.holdClients) await c.startHold(standby, standby.vip, log);
    const hosts = mirroredHosts(config);
    if (standby.mirror && hosts.length > 0) {
      const store = mirrorOf(config, true)!;
      c.mirror = new StandbyMirror(config, store, hosts, { intervalMs: standby.mirrorIntervalSeconds * 1000, log });
      log.info('mirroring the sources for a warm standby', { sources: hosts.map((h) => h.name), dir: store.dir });
    }
    return c;
  }

  private async startWatch(config: Config, standby: StandbyConfig, o: CompanionSettings, log: Logger): Promise<void> {
    const vip = standby.vip;
    const others = mastersToFence(config, { port: standby.cliPort, localAddresses: await localAddresses(), vip });
    if (others.length === 0) return;
    this.watch = new MasterWatch(others, {
      intervalMs: o.fenceAheadMilliseconds,
      arp: { windowMs: o.fenceArpMilliseconds, probes: o.fenceArpProbes },
      idle: async () => (await standbyMasterPid(standby)) !== undefined,
      onChange: (m, state) =>
        log.info(
          `watch: ${m.name} (${m.cliHost}:${m.cliPort}) ${state.kind}${'detail' in state ? `: ${state.detail}` : ''}`,
          {
            master: m.name,
            state: state.kind,
          },
        ),
    });
    const masters = others.map((m) => m.name);
    log.info('watching the other masters for fencing', { masters, intervalMs: o.fenceAheadMilliseconds });
  }

  private async startHold(standby: StandbyConfig, vip: string, log: Logger): Promise<void> {
    const cfg = await MasterCfg.readOrEmpty(standby.masterConfig);
    const ports = cfg.anyGenerationPorts({ cl: standby.cliPort });
    // Serving = listening: a master loading its metadata (its process and lock already there) still holds.
    const cl = cfg.anyGenerationPort('cl', standby.cliPort);
    const hold = new SynHold({ vip, ports, serving: () => listening([cl]), log });
    if (!(await hold.start())) return;
    this.hold = hold;
    log.info('holding client SYNs to the virtual IP while no master serves here', { vip, ports });
  }

  async close(): Promise<void> {
    const { watch, hold, mirror, keeper } = this;
    this.watch = this.hold = this.mirror = this.keeper = undefined;
    this.clientWatches.forEach((c) => c.abort());
    await Promise.all([watch?.close(), hold?.close(), mirror?.close(), keeper?.close()]);
  }
}
