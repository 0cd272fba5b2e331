import type { Generation } from './generation.js';
import { MFS_1_6_5 } from './mfs-1.6.js';
import {
  CSLIST_1_6_28,
  CSLIST_1_7_25,
  CSLIST_2_1,
  CSLIST_3_0_38,
  versionBefore,
  versionParts,
} from './chunkserver-list.js';

/**
 * MooseFS 3.0 (Debian's 3.0.117; the adapter also serves 1.7–2.x): `MFSM 2.0` images ending in
 * `[MFS EOF MARKER]`, metaid in the header, `mfsmaster -a` restores (mfsmetarestore is a stub that says
 * it was removed), `-f` keeps the master in the foreground.
 */
export const MFS_3_0: Generation = {
  name: '3.0',
  label: 'MooseFS 3.0',
  imageMagic: 'MFSM 2.0',
  restore: 'mfsmaster-a',
  askPinnedThrough: 'mfscli',
  // The keys 1.6.5 introduced (MATOML_* for metaloggers, MATOCL_* for clients), unchanged since.
  listenKeys: MFS_1_6_5.listenKeys,
  masterConfigExtra: () => ({}),
  lockFile: (cfg, dataPath) => MFS_1_6_5.lockFile(cfg, dataPath),
  startArgs: (configFile, o) => [
    '-c',
    configFile,
    ...(o.foreground ? ['-f'] : []),
    ...(o.autoRestore ? ['-a'] : []),
    'start',
  ],
  stopArgs: (configFile) => ['-c', configFile, 'stop'],
  daemonWaitsForInit: true,
  reportsMetadataVersion: true,
  sessionsFiles: [],
  reusesLostChunkIds: false,
  hasMetalogger: true,
  // 1.7 renamed EMPTYRESERVED to EMPTYSUSTAINED and began dropping stale sessions itself (SESDEL).
  selfChanges: ['FREEINODES', 'EMPTYTRASH', 'EMPTYSUSTAINED', 'SESDEL'],
  trashTime: { defaultSeconds: 86_400, stepSeconds: 1 },
  exportsWithPassword: true,
  chunkserverRecord: (v) => {
    const at = versionParts(v);
    if (versionBefore(at, [1, 7, 25])) return CSLIST_1_6_28;
    if (versionBefore(at, [2, 1, 0])) return CSLIST_1_7_25;
    return versionBefore(at, [3, 0, 38]) ? CSLIST_2_1 : CSLIST_3_0_38;
  },
};
