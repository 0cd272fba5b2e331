import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../lib/core/config.js';
import { socketFromConfig } from '../../../lib/core/hand-off.js';

/** Nine levels of nine aliases: 9^9 (387 million) strings once expanded ("billion laughs"). */
const BOMB = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat('bcdefghi'.split('').map((l, i) => `${l}: &${l} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`))
  .concat(['stateDir: /var/lib/mfs-jobs', 'daemon: { socket: *i }'])
  .join('\n');

/** A YAML alias bomb in the config root reads (issue #23, "try and record"): refused before it is expanded. */
describe('a YAML alias bomb in the config', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-yaml-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test("loadConfig and the hook's socket lookup refuse it in one line, at once; a few aliases still work", async () => {
    const file = path.join(dir, 'bomb.yaml');
    await fs.writeFile(file, BOMB + '\n');
    const started = Date.now();
    await expect(loadConfig(file)).rejects.toThrow(
      `${file}: not valid YAML: Excessive alias count indicates a resource exhaustion attack`,
    );
    await expect(socketFromConfig(file)).rejects.toThrow(
      'Excessive alias count indicates a resource exhaustion attack',
    );
    expect(Date.now() - started).toBeLessThan(5_000);

    const fine = path.join(dir, 'fine.yaml');
    await fs.writeFile(
      fine,
      'ssh: &ssh { privateKey: /k, knownHosts: /kh }\nmasters:\n  - { name: m1, host: h1, ssh: *ssh }\n  - { name: m2, host: h2, ssh: *ssh }\n',
    );
    const config = await loadConfig(fine);
    expect(config.masters.map((m) => m.ssh?.privateKey)).toEqual(['/k', '/k']);
  });
});
