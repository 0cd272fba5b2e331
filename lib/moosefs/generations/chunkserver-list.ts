/**
 * How each generation answers CLTOMA_CSERV_LIST (MATOCL_CSERV_LIST, MATOCU_CSERV_LIST before 1.6.5): one
 * fixed-size record per chunkserver. The socket exchange and the parse are lib/moosefs/protocol.ts's; the
 * record layout, which differs between versions, is here, with the other adapters.
 */

/** One chunkserver's record in the answer: its size and the byte offsets of the fields read. */
export interface ChunkserverRecord {
  bytes: number;
  /** ip:32 */
  ip: number;
  /** port:16, the port the chunkserver listens on for clients */
  port: number;
  /** version:32 (major:16 mid:8 minor:8) or 3 bytes after a flags byte; absent before 1.5.13 */
  version?: { at: number; bytes: 3 | 4 };
  /** A byte whose lowest bit marks a chunkserver the master knows but is not connected now (1.6.27 and later). */
  disconnectedFlag?: number;
}

// 1.5.12 (matocsserv.c): N × [ip:32 port:16 used:64 total:64 chunks:32 tdused:64 tdtotal:64 tdchunks:32 errors:32].
// 1.5.13 put version:32 first; a 1.5 master does not send its version, so 1.5.12's record is assumed.
export const CSLIST_1_5: ChunkserverRecord = { bytes: 50, ip: 0, port: 4 };
// 1.6.4 and 1.6.27 (matocsserv.c): version:32 first. 1.6.27 also lists chunkservers it knew that are gone,
// with version 0x01000000 (the top byte set).
export const CSLIST_1_6: ChunkserverRecord = {
  bytes: 54,
  ip: 4,
  port: 8,
  version: { at: 0, bytes: 4 },
  disconnectedFlag: 0,
};
// mfscli 3.0 (get_chunkservers): [flags:8 version:24 ip:32 port:16 …] with 62 (1.6.28–1.7.24), 64 (1.7.25–2.0),
// 68 (2.1–3.0.37) and 69 (3.0.38 and later) bytes; flags bit 0 is "disconnected".
const flagged = (bytes: number): ChunkserverRecord => ({
  bytes,
  ip: 4,
  port: 8,
  version: { at: 1, bytes: 3 },
  disconnectedFlag: 0,
});
export const CSLIST_1_6_28 = flagged(62);
export const CSLIST_1_7_25 = flagged(64);
export const CSLIST_2_1 = flagged(68);
export const CSLIST_3_0_38 = flagged(69);

/** "1.6.27" as [1, 6, 27]; a version without numbers as [0, 0, 0]. */
export function versionParts(softwareVersion: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(softwareVersion);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

/** a < b, comparing [major, mid, minor]. */
export function versionBefore(a: [number, number, number], b: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
