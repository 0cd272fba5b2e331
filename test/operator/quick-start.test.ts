import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { Lab } from '../lab/cluster.js';
import { MFS_JOBS_BIN, REPO_ROOT } from '../helpers/cli.js';

/**
 * README.md's quick start, run as written against the lab: the shell commands between
 * `<!-- quick-start -->` and `<!-- /quick-start -->`, with `mfs-jobs` on PATH being this repository's
 * bin/mfs-jobs. Only the lab's addresses and paths differ from a real machine, through the variables the
 * block itself uses (MASTER, MASTER_DATA_PATH, METALOGGER_DATA_PATH, STATE_DIR) and MFS_JOBS_CONFIG.
 * Lines the block marks `lab: skip` are not run: installing the .deb (test/install/deb.test.ts installs
 * and runs it; here its example config is put where it installs it) and `systemctl` (no systemd here;
 * `list-jobs` in the block shows what the daemon would run).
 */
async function quickStartCommands(): Promise<string[]> {
  const readme = await fs.readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('<!-- quick-start -->');
  const end = readme.indexOf('<!-- /quick-start -->');
  if (start < 0 || end < start) throw new Error('README.md: no <!-- quick-start --> … <!-- /quick-start --> block');
  const fences = [...readme.slice(start, end).matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]!);
  if (fences.length === 0) throw new Error('README.md: the quick-start block holds no ```sh fence');
  // Continuation lines (a trailing backslash) make one command, as the shell reads them.
  return fences
    .join('')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

describe('README quick start, as written, on the lab', () => {
  let lab: Lab;
  let bin: string;

  beforeAll(async () => {
    lab = await Lab.start({ sshd: false });
    await lab.makeChanges('quick-start', 10);
    await lab.saveImage();
    bin = path.join(lab.dir, 'bin');
    await fs.mkdir(bin);
    await fs.symlink(MFS_JOBS_BIN, path.join(bin, 'mfs-jobs'));
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  });

  test('every command succeeds and leaves a config the jobs use', async () => {
    const commands = await quickStartCommands();
    expect(commands.some((c) => /^mfs-jobs init /.test(c))).toBe(true);
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      MFS_JOBS_CONFIG: path.join(lab.dir, 'etc', 'config.yaml'),
      MASTER: `127.0.0.1:${lab.master.ports.cl}`,
      MASTER_DATA_PATH: lab.master.dataPath,
      METALOGGER_DATA_PATH: lab.metalogger!.dataPath,
      STATE_DIR: path.join(lab.dir, 'state'),
    };
    // What the skipped install leaves: the package's example config as the config (a conffile), which init
    // replaces without --force (nobody configured anything yet).
    await fs.mkdir(path.dirname(env.MFS_JOBS_CONFIG), { recursive: true, mode: 0o700 });
    await fs.copyFile(path.join(REPO_ROOT, 'examples', 'config.yaml'), env.MFS_JOBS_CONFIG);
    const ran: string[] = [];
    for (const command of commands) {
      if (/#\s*lab: skip\b/.test(command)) continue;
      const res = await execCapture('bash', ['-euo', 'pipefail', '-c', command], { env, timeoutMs: 180_000 });
      expect({ command, code: res.code, output: res.stdout + res.stderr }).toMatchObject({ command, code: 0 });
      ran.push(command);
    }
    expect(ran.map((c) => c.replace(/\s+#.*$/, ''))).toContain('mfs-jobs status');
    const run = await execCapture(MFS_JOBS_BIN, ['run', 'verify'], { env, timeoutMs: 120_000 });
    expect({ code: run.code, out: run.stdout }).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^MFS VERIFY OK/),
    });
  }, 300_000);
});
