import type { Generation } from './generation.js';

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
  listenKeys: {
    ml: { host: 'MATOML_LISTEN_HOST', port: 'MATOML_LISTEN_PORT' },
    cs: { host: 'MATOCS_LISTEN_HOST', port: 'MATOCS_LISTEN_PORT' },
    cl: { host: 'MATOCL_LISTEN_HOST', port: 'MATOCL_LISTEN_PORT' },
  },
  masterConfigExtra: () => ({}),
  startArgs: (configFile, o) => ['-c', configFile, ...(o.foreground ? ['-f'] : []), ...(o.autoRestore ? ['-a'] : []), 'start'],
  stopArgs: (configFile) => ['-c', configFile, 'stop'],
  daemonWaitsForInit: true,
  reportsMetadataVersion: true,
  sessionsFiles: [],
  reusesLostChunkIds: false,
  hasMetalogger: true,
};
