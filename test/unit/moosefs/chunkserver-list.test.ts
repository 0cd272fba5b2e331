import { generationNamed } from '../../../lib/moosefs/generations/index.js';
import { parseChunkserverList } from '../../../lib/moosefs/protocol.js';

/**
 * MATOCL_CSERV_LIST records, built the way each version's master writes them (matocsserv.c
 * matocsserv_cservlist_data of 1.5.12, 1.6.4 and 1.6.27; mfscli 3.0's get_chunkservers for later ones),
 * read with the layout the generation adapter gives.
 */
function record(bytes: number, fields: [at: number, value: number[]][]): Buffer {
  const r = Buffer.alloc(bytes, 0xee);
  for (const [at, value] of fields) Buffer.from(value).copy(r, at);
  return r;
}
const ip = (s: string) => s.split('.').map(Number);
const port = (p: number) => [p >> 8, p & 0xff];

describe('chunkserver list: the record layout per generation', () => {
  test('1.5.12: [ip:32 port:16 …] in 50 bytes, no version', () => {
    const data = Buffer.concat([
      record(50, [
        [0, ip('10.0.0.31')],
        [4, port(9422)],
      ]),
      record(50, [
        [0, ip('10.0.0.32')],
        [4, port(9522)],
      ]),
    ]);
    const g = generationNamed('1.5');
    expect(parseChunkserverList(data, g.chunkserverRecord('1.5')!, 'm')).toEqual([
      { ip: '10.0.0.31', port: 9422, disconnected: false },
      { ip: '10.0.0.32', port: 9522, disconnected: false },
    ]);
  });

  test('1.6.4: [version:32 ip:32 port:16 …] in 54 bytes', () => {
    const data = record(54, [
      [0, [0, 1, 6, 4]],
      [4, ip('127.0.0.1')],
      [8, port(9422)],
    ]);
    expect(parseChunkserverList(data, generationNamed('1.6').chunkserverRecord('1.6.4')!, 'm')).toEqual([
      { ip: '127.0.0.1', port: 9422, softwareVersion: '1.6.4', disconnected: false },
    ]);
  });

  test('1.6.27: 54 bytes; a chunkserver the master knew but lost has version 0x01000000', () => {
    const data = Buffer.concat([
      record(54, [
        [0, [0, 1, 6, 27]],
        [4, ip('10.0.0.31')],
        [8, port(9422)],
      ]),
      record(54, [
        [0, [1, 0, 0, 0]],
        [4, ip('10.0.0.32')],
        [8, port(9422)],
      ]),
    ]);
    const listed = parseChunkserverList(data, generationNamed('1.6.5').chunkserverRecord('1.6.27')!, 'm');
    expect(listed.map((c) => [c.ip, c.disconnected])).toEqual([
      ['10.0.0.31', false],
      ['10.0.0.32', true],
    ]);
  });

  test('3.0.117: [flags:8 version:24 ip:32 port:16 …] in 69 bytes; 2.1 in 68', () => {
    const g = generationNamed('3.0');
    expect(g.chunkserverRecord('3.0.117')!.bytes).toBe(69);
    expect(g.chunkserverRecord('2.0.91')!.bytes).toBe(64);
    expect(g.chunkserverRecord('3.0.37')!.bytes).toBe(68);
    const data = record(69, [
      [0, [0]],
      // Since 2.0 the minor byte is minor*2 + a Pro flag, as in the master's own version.
      [1, [3, 0, 234]],
      [4, ip('10.0.0.33')],
      [8, port(9422)],
    ]);
    expect(parseChunkserverList(data, g.chunkserverRecord('3.0.117')!, 'm')).toEqual([
      { ip: '10.0.0.33', port: 9422, softwareVersion: '3.0.117', disconnected: false },
    ]);
  });

  test('an answer that is not whole records is refused, naming the master', () => {
    expect(() =>
      parseChunkserverList(Buffer.alloc(55), generationNamed('1.6').chunkserverRecord('1.6.4')!, 'm:9421'),
    ).toThrow('master m:9421: MATOCL_CSERV_LIST answer of 55 bytes is not a list of 54-byte records');
    expect(generationNamed('4').chunkserverRecord('4.59.2')).toBeUndefined();
  });
});
