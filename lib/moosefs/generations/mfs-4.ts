import type { Generation } from './generation.js';
import { MFS_3_0 } from './mfs-3.0.js';

/**
 * MooseFS 4.x (4.59.2, what operators run today): on disk and on the command line like 3.0 (`MFSM 2.0`,
 * `mfsmaster -a`). What differs is how it answers: its mfscli prints `metadata servers (masters):` and
 * JSON with `-j`, and 3.0's mfscli cannot talk to it ("Working master servers not found"); and it
 * changes its metadata by itself when idle.
 */
export const MFS_4: Generation = {
  ...MFS_3_0,
  name: '4',
  label: 'MooseFS 4',
  // 3.0's mfscli finds no 4.x master ("Working master servers not found").
  askPinnedThrough: 'protocol',
  // IDLE(): its changelog_sendnop() writes one after 30 s without a change — and, since its clock of the
  // last change starts at 0, within a second of every start.
  selfChanges: [...MFS_3_0.selfChanges, 'IDLE'],
  // filesystem.c (4.59.2): DEFAULT_TRASHTIME 24 (hours). SETTRASHTIME(inode,uid,trashretention,smode) logs
  // seconds (`mfssettrashretention 2h` logs 7200) and applies (trashretention+3599)/3600 hours.
  trashTime: { defaultSeconds: 24 * 3600, stepSeconds: 3600 },
  // 4.x answers in 69, 73 or 77 bytes by version and by a request mode byte (mfscgi's dataprovider.py):
  // not read here, since 4.x has metaloggers and init does not need its chunkservers.
  chunkserverRecord: () => undefined,
};
