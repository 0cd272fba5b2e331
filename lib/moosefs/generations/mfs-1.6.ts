import path from 'node:path';
import type { Generation } from './generation.js';
import { MFS_1_5 } from './mfs-1.5.js';
import { CSLIST_1_6, CSLIST_1_6_28, versionBefore, versionParts } from './chunkserver-list.js';

/**
 * MooseFS 1.6.0–1.6.4 (1.6.4, August 2009: the last release before 1.6.5): like 1.5 on disk and on the
 * command line (`MFSM 1.5` images, MATOCU_* keys, no start/stop words, no metalogger). At failover the
 * changelogs come from the chunkservers' `changelog_csback.N.mfs`, and `mfsmetarestore` restores.
 */
export const MFS_1_6: Generation = {
  ...MFS_1_5,
  name: '1.6',
  label: 'MooseFS 1.6 (before 1.6.5)',
  exportsWithPassword: true,
  chunkserverRecord: () => CSLIST_1_6,
};

/**
 * MooseFS 1.6.5 and later 1.6 releases (1.6.27, August 2012): metaloggers (MATOML_*), MATOCL_* keys
 * (MATOCU_* still read), start/stop words, `.mfsmaster.lock` in DATA_PATH, still `MFSM 1.5` images and
 * `mfsmetarestore` with changelog merging and hole detection.
 */
export const MFS_1_6_5: Generation = {
  ...MFS_1_5,
  name: '1.6.5',
  label: 'MooseFS 1.6 (1.6.5 and later)',
  listenKeys: {
    ml: { host: 'MATOML_LISTEN_HOST', port: 'MATOML_LISTEN_PORT' },
    cs: { host: 'MATOCS_LISTEN_HOST', port: 'MATOCS_LISTEN_PORT' },
    cl: { host: 'MATOCL_LISTEN_HOST', port: 'MATOCL_LISTEN_PORT' },
  },
  masterConfigExtra: () => ({}),
  // LOCK_FILE is read only to find a 1.6.4 master still running from before (mfscommon/main.c).
  lockFile: (_cfg, dataPath) => path.join(dataPath, '.mfsmaster.lock'),
  startArgs: (configFile, o) => ['-c', configFile, ...(o.foreground ? ['-d'] : []), 'start'],
  stopArgs: (configFile) => ['-c', configFile, 'stop'],
  daemonWaitsForInit: true,
  reusesLostChunkIds: false,
  hasMetalogger: true,
  exportsWithPassword: true,
  chunkserverRecord: (v) => (versionBefore(versionParts(v), [1, 6, 28]) ? CSLIST_1_6 : CSLIST_1_6_28),
};
