import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './proc.js';

/** The user that plays DATA_PATH's owner (the MooseFS user) in the attacks: `nobody:nogroup`. */
export const NOBODY = 65534;

/**
 * What the attacker does the moment an entry whose name matches appears in the watched directory:
 * - `swap`: rename the entry away (to `.stolen-…`) and put a symlink to `target` under its name;
 * - `plant`: put a symlink to `target` under the name `plant` (beside the entry that appeared).
 */
export type AttackMove = { kind: 'swap'; target: string } | { kind: 'plant'; name: string; target: string };

export interface AttackOptions {
  /** The directory it owns and watches. */
  dir: string;
  /** Names it acts on (once each). */
  match: RegExp;
  move: AttackMove;
  /** Default NOBODY. */
  uid?: number;
  /** Wait this long after seeing a name before acting (0: at once). */
  delayMs?: number;
}

/**
 * A real unprivileged process (setpriv, `nobody` by default) racing a job in a directory it owns: it
 * watches it with inotify (fs.watch) and polls it every millisecond besides, and acts once per name that
 * matches `match`. `moves()` says what it did, from its own log.
 */
export class DirAttacker {
  private constructor(
    private readonly child: ChildProcess,
    private readonly log: string,
    private readonly home: string,
  ) {}

  static async start(o: AttackOptions): Promise<DirAttacker> {
    const args = [o.dir, o.match.source, JSON.stringify(o.move)];
    const { child, log, home } = await spawnAttacker(ATTACK_SCRIPT, args, o.uid ?? NOBODY, String(o.delayMs ?? 0));
    return new DirAttacker(child, log, home);
  }

  /** Names it acted on (`swapped X` / `planted X`), and its failures. */
  async moves(): Promise<{ done: string[]; failed: string[] }> {
    const lines = (await fs.readFile(this.log, 'utf8')).split('\n');
    return {
      done: lines.filter((l) => /^(swapped|planted) /.test(l)),
      failed: lines.filter((l) => l.startsWith('failed ')),
    };
  }

  /** Stop it by its PID and remove its files (its log with them: read moves() first). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.pid) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    await fs.rm(this.home, { recursive: true, force: true });
  }
}

/**
 * `script` run by node as `uid` (setpriv), with `args`, its log file and `last` after them; ready once it
 * logs `ready`. Its home (script and log) is a fresh directory the caller removes.
 */
async function spawnAttacker(script: string, args: string[], uid: number, last: string) {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-attacker-'));
  await fs.chmod(home, 0o755);
  const log = path.join(home, 'log');
  await fs.writeFile(log, '', { mode: 0o666 });
  await fs.chmod(log, 0o666);
  const file = path.join(home, 'attack.mjs');
  await fs.writeFile(file, script, { mode: 0o644 });
  const as = [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const child = spawn('setpriv', [...as, process.execPath, file, ...args, log, last], { stdio: 'ignore' });
  const ready = async () => (await fs.readFile(log, 'utf8')).includes('ready\n') || child.exitCode !== null;
  await waitFor('the attacker to watch its directory', ready, 10_000);
  if (child.exitCode !== null) throw new Error(`attacker exited at once: ${await fs.readFile(log, 'utf8')}`);
  return { child, log, home };
}

/**
 * A real unprivileged process that flips one name of a directory it owns, as fast as it can, between
 * its own regular file and a symlink to `target` (two renames each round, each atomic), so a reader
 * racing it meets the name as either at any step: lstat, open, fstat. `flips()` counts its rounds.
 */
export class NameFlipper {
  private constructor(
    private readonly child: ChildProcess,
    private readonly log: string,
    private readonly home: string,
  ) {}

  static async start(o: { dir: string; name: string; target: string; uid?: number }): Promise<NameFlipper> {
    const { child, log, home } = await spawnAttacker(FLIP_SCRIPT, [o.dir, o.name, o.target], o.uid ?? NOBODY, '');
    return new NameFlipper(child, log, home);
  }

  /** Stop it by its PID; the rounds it flipped (from its log), and its home goes. */
  async stop(): Promise<number> {
    if (this.child.exitCode === null && this.child.pid) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    const rounds = Number(/flipped (\d+)/.exec(await fs.readFile(this.log, 'utf8'))?.[1] ?? 0);
    await fs.rm(this.home, { recursive: true, force: true });
    return rounds;
  }
}

// Synchronous rounds, a yield to the event loop every 200 so SIGTERM's handler can write the count.
const FLIP_SCRIPT = `import fs from 'node:fs'; import path from 'node:path';
const [dir, name, target, log] = process.argv.slice(2);
const at = (n) => path.join(dir, n); let rounds = 0;
fs.linkSync(at(name), at('.flip-file'));
process.on('SIGTERM', () => { fs.appendFileSync(log, 'flipped ' + rounds + '\\n'); process.exit(0); });
const burst = () => {
  for (let i = 0; i < 200; i++, rounds++) {
    fs.symlinkSync(target, at('.flip-link')); fs.renameSync(at('.flip-link'), at(name));
    fs.linkSync(at('.flip-file'), at('.flip-back')); fs.renameSync(at('.flip-back'), at(name));
  }
  setImmediate(burst);
};
fs.appendFileSync(log, 'ready\\n'); burst();
`;

const ATTACK_SCRIPT = `import fs from 'node:fs'; import path from 'node:path';
const [dir, match, moveText, log, delay] = process.argv.slice(2);
const re = new RegExp(match); const move = JSON.parse(moveText);
let n = 0; const done = new Set();
const act = (name) => {
  if (move.kind === 'swap') {
    fs.renameSync(path.join(dir, name), path.join(dir, '.stolen-' + process.pid + '-' + n++));
    fs.symlinkSync(move.target, path.join(dir, name));
    return 'swapped ' + name;
  }
  fs.symlinkSync(move.target, path.join(dir, move.name));
  return 'planted ' + move.name + ' beside ' + name;
};
const sweep = () => {
  let names; try { names = fs.readdirSync(dir); } catch { return; }
  for (const name of names) {
    if (!re.test(name) || done.has(name)) continue;
    done.add(name);
    try { fs.appendFileSync(log, act(name) + '\\n'); }
    catch (e) { fs.appendFileSync(log, 'failed ' + name + ': ' + e.message + '\\n'); }
  }
};
const later = () => (Number(delay) ? setTimeout(sweep, Number(delay)) : sweep());
fs.watch(dir, later); setInterval(later, 1); fs.appendFileSync(log, 'ready\\n');
`;
