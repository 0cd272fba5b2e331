import path from 'node:path';
import type { Generation } from './generation.js';
import { CSLIST_1_5 } from './chunkserver-list.js';

/**
 * MooseFS 1.5 (1.5.12, January 2009): `MFSM 1.5` images, no metalogger, `mfsmetarestore`. mfsmaster
 * takes no start/stop words: a plain start first kills the running master (`-f` refuses instead, `-s`
 * only stops), and `-d` keeps it in the foreground. Its lock lives at LOCK_FILE (anywhere; a relative one
 * is taken from DATA_PATH, where the master chdirs first); drill's scratch masters point it into DATA_PATH.
 */
export const MFS_1_5: Generation = {
  name: '1.5',
  label: 'MooseFS 1.5',
  imageMagic: 'MFSM 1.5',
  restore: 'mfsmetarestore',
  askPinnedThrough: 'protocol',
  listenKeys: {
    cs: { host: 'MATOCS_LISTEN_HOST', port: 'MATOCS_LISTEN_PORT' },
    cl: { host: 'MATOCU_LISTEN_HOST', port: 'MATOCU_LISTEN_PORT' },
  },
  masterConfigExtra: (dataPath) => ({ LOCK_FILE: `${dataPath}/.mfsmaster.lock` }),
  lockFile: (cfg, dataPath) => (cfg.LOCK_FILE ? path.resolve(dataPath, cfg.LOCK_FILE) : undefined),
  startArgs: (configFile, o) => ['-c', configFile, '-f', ...(o.foreground ? ['-d'] : [])],
  stopArgs: (configFile) => ['-c', configFile, '-s'],
  daemonWaitsForInit: false,
  reportsMetadataVersion: false,
  sessionsFiles: ['sessions.mfs', 'sessions_ml.mfs'],
  reusesLostChunkIds: true,
  hasMetalogger: false,
  selfChanges: ['FREEINODES', 'EMPTYTRASH', 'EMPTYRESERVED'],
  trashTime: { defaultSeconds: 86_400, stepSeconds: 1 },
  exportsWithPassword: false,
  chunkserverRecord: () => CSLIST_1_5,
};
