import { parseMasterInfoAnswer } from '../../../lib/moosefs/protocol.js';
import { ProcessError } from '../../../lib/core/errors.js';

/**
 * MATOCL_INFO answers built field by field from the layouts MooseFS documents: 4.59.2's
 * mfscommon/MFSCommunication.h for 68 bytes and up, 1.5.12's MFSCommunication.h and 1.6.4's mfs.cgi
 * for 52 and 60, and mfscli's reading of 137 and 149 (3.0 with freespace; 149 is what 3.0.117 sends).
 */
const BEFORE_2_0 =
  'totalspace:64 availspace:64 trashspace:64 trashnodes:32 sustainedspace:64 sustainednodes:32 allnodes:32 dirnodes:32 filenodes:32 chunks:32 chunkcopies:32 tdcopies:32';
const CPU = 'version:32 memusage:64 syscpu:64 usercpu:64';
const LASTSTORE = 'laststore_ts:32 laststore_duration:32 laststore_status:8';
const STATE = 'state:8 nstate:8 stable:8 sync:8 leaderip:32 state_chg_time:32 meta_version:64';
const V4_META = 'exports_checksum:64 metadata_id:64 last_store_meta_version:64 last_store_meta_checksum:32';
const SPACE_4_10 =
  'totalspace:64 availspace:64 freespace:64 trashspace:64 trashnodes:32 sustainedspace:64 sustainednodes:32 allnodes:32 dirnodes:32 filenodes:32';

const LAYOUTS: Record<number, string> = {
  52: 'totalspace:64 availspace:64 trashspace:64 trashnodes:32 reservedspace:64 reservednodes:32 allnodes:32 chunks:32 tdcopies:32',
  60: 'totalspace:64 availspace:64 trashspace:64 trashnodes:32 reservedspace:64 reservednodes:32 allnodes:32 dirnodes:32 filenodes:32 chunks:32 tdchunks:32',
  68: `version:32 ${BEFORE_2_0}`,
  76: `version:32 memusage:64 ${BEFORE_2_0}`,
  101: `${CPU} ${BEFORE_2_0} ${LASTSTORE}`,
  121: `${CPU} ${BEFORE_2_0} ${LASTSTORE} ${STATE}`,
  129: `${CPU} ${BEFORE_2_0} ${LASTSTORE} ${STATE} exports_checksum:64`,
  137: `${CPU} ${SPACE_4_10} chunks:32 chunkcopies:32 tdcopies:32 ${LASTSTORE} ${STATE} exports_checksum:64`,
  149: `${CPU} ${SPACE_4_10} chunks:32 chunkcopies:32 tdcopies:32 ${LASTSTORE} ${STATE} exports_checksum:64 microseconds_timestamp:64 last_chglog_time:32`,
  173: `${CPU} ${BEFORE_2_0.replace('chunkcopies:32 tdcopies:32', 'copy_chunks:32 ec_chunks:32')} ${LASTSTORE} ${STATE} ${V4_META} all_chunk_copies:64 all_chunk_parts:64 all_chunk_hypothetical_copies:64`,
  181: `${CPU} ${SPACE_4_10} chunks:32 copychunks:32 ec_chunks:32 ${LASTSTORE} ${STATE} ${V4_META} all_chunk_copies:64 all_chunk_parts:64 all_chunk_hypothetical_copies:64`,
  193: `${CPU} ${SPACE_4_10} chunks:32 copychunks:32 ec_chunks:32 ${LASTSTORE} ${STATE} ${V4_META} all_chunk_copies:64 all_chunk_parts:64 all_chunk_hypothetical_copies:64 microseconds_timestamp:64 last_chglog_time:32`,
  205: `${CPU} ${SPACE_4_10} chunks:32 copychunks:32 ec8chunks:32 ec4chunks:32 ${LASTSTORE} ${STATE} ${V4_META} all_chunk_copies:64 all_chunk_ec8_parts:64 all_chunk_ec4_parts:64 all_chunk_hypothetical_copies:64 microseconds_timestamp:64 last_chglog_time:32`,
};

type Field = number | bigint | [major: number, mid: number, minor: number];

/** Every field gets a distinct filler value unless named, so a wrong offset reads a wrong number. */
function infoAnswer(size: number, values: Record<string, Field>): Buffer {
  const fields = LAYOUTS[size]!.split(' ').map((f) => f.split(':') as [string, string]);
  const buf = Buffer.alloc(fields.reduce((n, [, bits]) => n + Number(bits) / 8, 0));
  expect(buf.length).toBe(size);
  let at = 0;
  fields.forEach(([name, bits], i) => {
    const v = values[name] ?? 100 + i;
    if (Array.isArray(v)) {
      buf.writeUInt16BE(v[0], at);
      buf.writeUInt8(v[1], at + 2);
      buf.writeUInt8(v[2], at + 3);
    } else if (bits === '64') buf.writeBigUInt64BE(BigInt(v), at);
    else if (bits === '32') buf.writeUInt32BE(Number(v), at);
    else buf.writeUInt8(Number(v), at);
    at += Number(bits) / 8;
  });
  return buf;
}

const counts = { allnodes: 7001, dirnodes: 3002, filenodes: 4003 };
const master = { state: 0xff, nstate: 0xff, stable: 0xff, sync: 0xff };

describe('MATOCL_INFO answers', () => {
  test('1.4 (52 bytes) names only its generation and counts all nodes', () => {
    expect(parseMasterInfoAnswer(infoAnswer(52, counts), 'm:9421')).toEqual({
      softwareVersion: '1.4',
      fsObjects: 7001,
      answerBytes: 52,
    });
  });

  test('1.5 (60 bytes, what 1.5.12 sends) names only its generation: it sends no version', () => {
    expect(parseMasterInfoAnswer(infoAnswer(60, counts), 'm:9421')).toEqual({
      softwareVersion: '1.5',
      fsObjects: 7001,
      directories: 3002,
      files: 4003,
      answerBytes: 60,
    });
  });

  test.each([
    [68, [1, 6, 4], '1.6.4'],
    [76, [1, 6, 27], '1.6.27'],
    [101, [1, 7, 25], '1.7.25'],
  ] as const)('%i bytes: version %j is %s, no metadata version before 2.0', (size, version, expected) => {
    const info = parseMasterInfoAnswer(infoAnswer(size, { version: [...version], ...counts }), 'm:9421');
    expect(info).toEqual({
      softwareVersion: expected,
      fsObjects: 7001,
      directories: 3002,
      files: 4003,
      answerBytes: size,
    });
  });

  test.each([
    [121, [2, 0, 2 * 88], '2.0.88'],
    [129, [3, 0, 2 * 90], '3.0.90'],
    [137, [3, 0, 2 * 103 + 1], '3.0.103 PRO'],
    [149, [3, 0, 2 * 117], '3.0.117'],
  ] as const)('%i bytes: version %j is %s, with state and metadata version', (size, version, expected) => {
    const info = parseMasterInfoAnswer(
      infoAnswer(size, { version: [...version], ...counts, ...master, meta_version: 1_000_103 }),
      'm:9421',
    );
    expect(info).toEqual({
      softwareVersion: expected,
      metadataVersion: 1_000_103,
      fsObjects: 7001,
      directories: 3002,
      files: 4003,
      state: 'MASTER',
      answerBytes: size,
    });
  });

  test.each([
    [173, [4, 4, 0], '4.4.0'],
    [181, [4, 10, 3], '4.10.3'],
    [193, [4, 17, 2 * 1], '4.17.1'],
    [205, [4, 59, 2 * 2], '4.59.2'],
    [205, [4, 59, 2 * 2 + 1], '4.59.2 PRO'],
  ] as const)('%i bytes: version %j is %s, with the metadata id', (size, version, expected) => {
    const values = {
      version: [...version] as Field,
      ...counts,
      ...master,
      meta_version: 2n ** 40n + 5n,
      metadata_id: 0x6b0e97dffb775a3bn,
    };
    const info = parseMasterInfoAnswer(infoAnswer(size, values), 'm:9421');
    expect(info).toEqual({
      softwareVersion: expected,
      metadataVersion: 2 ** 40 + 5,
      metaid: '6B0E97DFFB775A3B',
      fsObjects: 7001,
      directories: 3002,
      files: 4003,
      state: 'MASTER',
      answerBytes: size,
    });
  });

  test('a small metadata id keeps its leading zeros', () => {
    const info = parseMasterInfoAnswer(infoAnswer(205, { version: [4, 59, 4], metadata_id: 0xabcn }), 'm:9421');
    expect(info.metaid).toBe('0000000000000ABC');
  });

  test.each([
    [0x01, 'LEADER'],
    [0x03, 'FOLLOWER'],
    [0x05, 'DEPUTY'],
    [0x42, '66'],
  ])('state byte %i reads %s', (state, name) => {
    expect(parseMasterInfoAnswer(infoAnswer(205, { version: [4, 59, 5], state }), 'm:9421').state).toBe(name);
  });

  test('an unknown size is refused, naming the master and the size', () => {
    const act = () => parseMasterInfoAnswer(Buffer.alloc(64), 'mfsmaster.example:9421');
    expect(act).toThrow(ProcessError);
    expect(act).toThrow(
      /master mfsmaster\.example:9421: MATOCL_INFO answer of 64 bytes is not a layout this tool knows/,
    );
  });

  test('an empty answer is refused too', () => {
    expect(() => parseMasterInfoAnswer(Buffer.alloc(0), 'm:9421')).toThrow(/answer of 0 bytes/);
  });

  test('a metadata version beyond exact numbers is refused rather than rounded', () => {
    const data = infoAnswer(149, { version: [3, 0, 234], meta_version: 2n ** 60n });
    expect(() => parseMasterInfoAnswer(data, 'm:9421')).toThrow(/metadata version 1152921504606846976 is too large/);
  });
});
