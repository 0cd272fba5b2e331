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
    const uid = o.uid ?? NOBODY;
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-attacker-'));
    await fs.chmod(home, 0o755);
    const log = path.join(home, 'log');
    await fs.writeFile(log, '', { mode: 0o666 });
    await fs.chmod(log, 0o666);
    const script = path.join(home, 'attack.mjs');
    await fs.writeFile(script, ATTACK_SCRIPT, { mode: 0o644 });
    const args = [o.dir, o.match.source, JSON.stringify(o.move), log, String(o.delayMs ?? 0)];
    const as = [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
    const child = spawn('setpriv', [...as, process.execPath, script, ...args], { stdio: 'ignore' });
    const attacker = new DirAttacker(child, log, home);
    const ready = async () => (await fs.readFile(log, 'utf8')).includes('ready\n') || child.exitCode !== null;
    await waitFor('the attacker to watch its directory', ready, 10_000);
    if (child.exitCode !== null) throw new Error(`attacker exited at once: ${await fs.readFile(log, 'utf8')}`);
    return attacker;
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
