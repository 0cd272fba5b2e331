import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generationNamed } from '../../../lib/moosefs/generations/index.js';
import { selfChangesSince } from '../../../lib/moosefs/self-changes.js';

describe('selfChangesSince', () => {
  let dir: string;
  const write = (lines: string[]) =>
    fs.writeFile(path.join(dir, 'changelog.0.mfs'), lines.map((l) => `${l}\n`).join(''));
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'self-changes-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('housekeeping of the generation accounts for the versions past the restore', async () => {
    await write([
      '10: 1700000000|CREATE(1,a,1,438,18,0,0,0):2',
      '11: 1700000001|IDLE()',
      '12: 1700000031|FREEINODES(86400):0,0,0',
    ]);
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 12)).toEqual({
      restoredVersion: 10,
      ops: ['IDLE', 'FREEINODES'],
    });
    expect(await selfChangesSince(dir, generationNamed('3.0'), 10, 12)).toBeUndefined();
  });

  test('a client change, a missing version or no changelog is a real difference', async () => {
    await write(['11: 1700000001|CREATE(1,a,1,438,18,0,0,0):2']);
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 11)).toBeUndefined();
    await write(['12: 1700000001|IDLE()']);
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 12, 0)).toBeUndefined();
    await fs.rm(path.join(dir, 'changelog.0.mfs'));
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 11, 0)).toBeUndefined();
    // Served at or below the restore: nothing to account for.
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 10)).toBeUndefined();
  });

  test('a line the background writer has not written yet is waited for, briefly', async () => {
    await write(['11: 1700000001|IDLE()']);
    setTimeout(() => void fs.appendFile(path.join(dir, 'changelog.0.mfs'), '12: 1700000002|IDLE()\n'), 200);
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 12)).toEqual({
      restoredVersion: 10,
      ops: ['IDLE', 'IDLE'],
    });
  });

  test('an unfinished last line is not a change', async () => {
    await fs.writeFile(path.join(dir, 'changelog.0.mfs'), '11: 1700000001|IDLE()\n12: 17000');
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 12, 0)).toBeUndefined();
    expect(await selfChangesSince(dir, generationNamed('4'), 10, 11)).toEqual({ restoredVersion: 10, ops: ['IDLE'] });
  });
});
