import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createTempExclusive, fillAndSync, readAt, renameDurable } from '../core/atomic.js';
import { ChainError } from '../core/errors.js';
import { holesBetween, type ChangelogPiece, type Hole } from '../moosefs/chain.js';
import {
  LineSplitter,
  MAX_LINE,
  lineVersion,
  parseChangelogBytes,
  readChangelogLines,
  scanChangelogFile,
  type ChangelogEntry,
  type ChangelogScan,
  type RunPosition,
} from '../moosefs/changelog.js';
import {
  chainSteps,
  checkCut,
  Cutter,
  type ChainStep,
  type CutOutcome,
  type CutRefusal,
  type Damage,
  type RestoreTarget,
} from './target.js';

/**
 * The one pass over a placed restore point's changelogs: the lines from the image's version on, in
 * version order, each either written into the cut changelog (whole lines, as they were) or counted as
 * left out. Works inside a staging directory (or a drill's scratch DATA_PATH) and replaces the placed
 * changelogs by the one cut file, so `mfsmaster -a` / `mfsmetarestore` there replays exactly the target.
 */

/** The cut changelog's name in the restored DATA_PATH: a rotated master changelog, replayed by every generation. */
export const CUT_CHANGELOG = 'changelog.1.mfs';

export class CutRefused extends ChainError {
  constructor(readonly refusal: CutRefusal) {
    super(refusal.subject, refusal.message);
    // Shown as what it is to an operator: a chain that cannot serve the target.
    this.name = 'ChainError';
  }
}

export interface CutResult {
  /** The cut changelog in `dir` (undefined when no line is applied: the image alone is the target). */
  changelog?: string;
  outcome: CutOutcome;
  steps: ChainStep[];
  reached: number;
  newest: number;
  holes: Hole[];
  damage: Damage[];
  /** How the cut was read: `ranges` from the placing scans (no line parsed again), `lines` line by line. */
  pass: 'ranges' | 'lines';
}

const NEWLINE = Buffer.from('\n');

/** SETTRASHTIME(inode,uid,trashtime,smode): the trash time is its third argument. */
function trashTimeOf(op: string, args: string): number | undefined {
  if (op !== 'SETTRASHTIME') return undefined;
  const value = Number(args.split(',')[2]);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * Cut the chain of `changelogs` (in `dir`) rolling an image of `imageVersion` forward at `target`. On a
 * refusal (target outside the chain, in a hole, behind a damaged line) throws CutRefused and leaves `dir`
 * as it was; otherwise removes the placed changelogs and leaves `CUT_CHANGELOG` in their place.
 */
export async function cutChain(o: {
  dir: string;
  changelogs: readonly string[];
  imageName: string;
  imageVersion: number;
  target: RestoreTarget;
  where: string;
  signal?: AbortSignal;
  /** Scans of these files made when they were placed (unchanged since): not read a second time. */
  scanned?: ReadonlyMap<string, ChangelogScan>;
}): Promise<CutResult> {
  const pieces: ChangelogPiece[] = [];
  let newestTimestamp: number | undefined;
  for (const name of o.changelogs) {
    const scan = o.scanned?.get(name) ?? (await scanChangelogFile(path.join(o.dir, name)));
    pieces.push(...scan.segments.map((s) => ({ ...s, file: name })));
    if (scan.lastTimestamp !== undefined) newestTimestamp = Math.max(newestTimestamp ?? 0, scan.lastTimestamp);
  }
  const { steps, reached } = chainSteps(o.imageVersion, pieces);
  const newest = pieces.reduce((max, p) => Math.max(max, p.last + 1), o.imageVersion);
  const holes = newest > reached ? holesBetween(reached, newest - 1, pieces) : [];
  const cutter = new Cutter(o.target, o.imageVersion);
  const damage: Damage[] = [];
  const { tmp, handle } = await createTempExclusive(path.join(o.dir, CUT_CHANGELOG));
  let written = 0;
  let pass: CutResult['pass'] = 'lines';
  await fillAndSync(
    handle,
    tmp,
    async () => {
      const plan = rangePlan(o, steps, reached);
      if (plan) pass = 'ranges';
      written = plan
        ? await cutByRanges(o, plan, cutter, damage, handle)
        : await cutByLines(o, steps, cutter, damage, handle);
    },
    // Staging or a drill's scratch: a crash discards it; restore's DirHandle.place syncs what it places.
    { durable: false },
  );
  const outcome = cutter.result();
  // Damage before the image's version costs nothing: those lines are never applied.
  const relevant = damage.filter((d) => d.afterVersion + 1 >= o.imageVersion);
  const refusal = checkCut({
    where: o.where,
    imageName: o.imageName,
    imageVersion: o.imageVersion,
    target: o.target,
    outcome,
    reached,
    newest,
    holes,
    damage: relevant,
    newestTimestamp,
  });
  if (refusal) {
    await fs.rm(tmp, { force: true });
    throw new CutRefused(refusal);
  }
  for (const name of o.changelogs) await fs.rm(path.join(o.dir, name), { force: true });
  let changelog: string | undefined;
  if (written > 0) {
    changelog = CUT_CHANGELOG;
    await renameDurable(tmp, path.join(o.dir, CUT_CHANGELOG), { durable: false });
  } else {
    await fs.rm(tmp, { force: true });
  }
  return { changelog, outcome, steps, reached, newest, holes, damage: relevant, pass };
}

type CutInput = Parameters<typeof cutChain>[0];

/**
 * The cut read line by line (every line parsed): for restore points placed without positions (a DATA_PATH
 * source) and for chains whose runs are not clean byte ranges (a damaged, repeated or too long line inside).
 */
async function cutByLines(
  o: CutInput,
  steps: ChainStep[],
  cutter: Cutter,
  damage: Damage[],
  handle: fs.FileHandle,
): Promise<number> {
  let written = 0;
  const buffered: Buffer[] = [];
  const flush = async () => {
    if (buffered.length) await handle.write(Buffer.concat(buffered.splice(0)));
  };
  // The first file read also gives the image's own time (its line imageVersion-1), when it holds it.
  const first = steps[0]?.file ?? o.changelogs[0];
  const runs = steps.length ? steps : first ? [{ file: first, first: o.imageVersion, last: o.imageVersion - 1 }] : [];
  for (const [i, step] of runs.entries()) {
    let next = step.first;
    let lineNo = 0;
    // A cut last line counts as any other: the run (from the scan) never reaches it.
    const onLine = (raw: Buffer, line: ChangelogEntry | undefined): boolean => {
      lineNo++;
      if (!line) {
        // A damaged line inside the run read from this file, or right after it (where the run stopped).
        if (next > step.first) damage.push({ file: step.file, line: lineNo, afterVersion: next - 1 });
        return next <= step.last;
      }
      const { version, timestamp, op } = line;
      if (version < next) {
        if (i === 0) cutter.before({ version, timestamp, op });
        return true;
      }
      if (next > step.last) return false;
      if (version !== next) return true;
      if (cutter.accept({ version, timestamp, op, trashTime: trashTimeOf(op, line.args) })) {
        buffered.push(raw, NEWLINE);
        written++;
      }
      next++;
      return true;
    };
    await readChangelogLines(path.join(o.dir, step.file), onLine, { flush, signal: o.signal });
    // The scan promised these versions in this file: reading them again must find every one.
    if (steps.length && next !== step.last + 1) throw changed(o, step, next);
  }
  await flush();
  return written;
}

function changed(o: CutInput, step: ChainStep, next: number): ChainError {
  return new ChainError(
    step.file,
    `${o.where}: ${step.file}: expected changelog lines ${step.first}..${step.last}, found up to ${next - 1} (the file changed while restoring?)`,
  );
}

/** A chain step inside one clean run of its file: its lines are one byte range, each line once, in order. */
interface RangeStep extends ChainStep {
  run: RunPosition;
  /** Damage right after the step (a cut or damaged line where its run stops), as the line pass finds it. */
  after?: Damage;
}

interface RangePlan {
  steps: RangeStep[];
  /** The first version not applied (exclusive end of the applied lines). */
  boundary: number;
}

/** Damage the line pass notes: lines that do not parse (a too long line makes positions inexact: no plan). */
const DAMAGE_KINDS: readonly string[] = ['unparsable', 'damaged', 'cut-last-line'];

/**
 * The cut as byte ranges, decided from the placing scans alone (no file read again): every step lies in one run
 * of its file with no problem line between its lines, and the applied part ends at a known line (a version
 * target, the chain's end, or a time target's first later line within its step). Undefined: cut line by line.
 */
function rangePlan(o: CutInput, steps: ChainStep[], reached: number): RangePlan | undefined {
  if (!steps.length) return undefined;
  const planned: RangeStep[] = [];
  for (const step of steps) {
    const pos = o.scanned?.get(step.file)?.positions;
    if (!pos?.exact || pos.problemsAfter.length >= MAX_PROBLEMS_SEEN) return undefined;
    const run = pos.runs.find((r) => r.first <= step.first && step.last <= r.last);
    if (!run) return undefined;
    const scan = o.scanned!.get(step.file)!;
    let after: Damage | undefined;
    for (const [i, v] of pos.problemsAfter.entries()) {
      if (v === undefined || v < step.first || v > step.last) continue;
      if (v < step.last) return undefined;
      const problem = scan.problems[i]!;
      if (!after && DAMAGE_KINDS.includes(problem.kind))
        after = { file: step.file, line: problem.line, afterVersion: v };
    }
    planned.push({ ...step, run, after });
  }
  const t = o.target;
  if (t.kind === 'newest') return { steps: planned, boundary: reached };
  if (t.kind === 'version') return { steps: planned, boundary: Math.max(o.imageVersion, Math.min(t.version, reached)) };
  for (const step of planned) {
    const passed = o.scanned!.get(step.file)!.positions!.passed;
    if (!passed || passed.version > step.last) continue;
    // Later than the target before this step's lines (or before the image): the line pass decides.
    if (passed.version < step.first) return undefined;
    return { steps: planned, boundary: passed.version };
  }
  return { steps: planned, boundary: reached };
}

/** The scanner keeps at most this many problems: with as many, one inside a step may be unrecorded. */
const MAX_PROBLEMS_SEEN = 100;

/** Offset of the accepted line `version` inside `run` of `file` (a run's ends are known; else found by reading). */
async function offsetOf(file: fs.FileHandle, run: RunPosition, version: number): Promise<number> {
  if (version === run.first) return run.start;
  if (version === run.last) return run.lastStart;
  let found: number | undefined;
  await readLines(file, run.start, run.end, (buf, from, to, at) => {
    if (lineVersion(buf, from) !== version || !parseChangelogBytes(buf, from, to)) return true;
    found = at;
    return false;
  });
  if (found === undefined) throw new ChainError(String(version), `changelog line ${version} not found in its run`);
  return found;
}

/** Lines of `file` in [start, end): `onLine(buf, from, to, offset)` until it returns false. */
async function readLines(
  file: fs.FileHandle,
  start: number,
  end: number,
  onLine: (buf: Buffer, from: number, to: number, offset: number) => boolean,
): Promise<void> {
  let at = start;
  let going = true;
  const splitter = new LineSplitter((buf, from, to) => {
    if (going) going = onLine(buf, from, to, at);
    at += to - from + 1;
  });
  for (let pos = start; pos < end && going;) {
    const chunk = await readAt(file, pos, Math.min(1 << 20, end - pos));
    if (!chunk.length) break;
    splitter.push(chunk);
    pos += chunk.length;
  }
}

/** The parsed line at `offset` (a whole line: at most MAX_LINE bytes). */
async function lineAt(file: fs.FileHandle, offset: number, end: number): Promise<ChangelogEntry | undefined> {
  let entry: ChangelogEntry | undefined;
  await readLines(file, offset, Math.min(end, offset + MAX_LINE + 1), (buf, from, to) => {
    entry = parseChangelogBytes(buf, from, to);
    return false;
  });
  return entry;
}

/**
 * The cut by the plan: each step's applied lines copied as one byte range (not parsed again: the placing scan
 * checked them), the lines left out parsed for the outcome (what is deleted after the target), the image's own
 * time and the last applied line read alone.
 */
async function cutByRanges(
  o: CutInput,
  plan: RangePlan,
  cutter: Cutter,
  damage: Damage[],
  out: fs.FileHandle,
): Promise<number> {
  const { boundary } = plan;
  const handles = new Map<string, fs.FileHandle>();
  const open = async (name: string) => {
    let h = handles.get(name);
    if (!h) handles.set(name, (h = await fs.open(path.join(o.dir, name), 'r')));
    return h;
  };
  try {
    const first = plan.steps[0]!;
    const firstFile = await open(first.file);
    const pos = o.scanned!.get(first.file)!.positions!;
    const before = pos.runs.find((r) => r.first <= o.imageVersion - 1 && o.imageVersion - 1 <= r.last);
    if (before) {
      const line = await lineAt(firstFile, await offsetOf(firstFile, before, o.imageVersion - 1), before.end);
      if (line) cutter.before(line);
    }
    const applied = boundary - o.imageVersion;
    let written = 0;
    for (const step of plan.steps) {
      if (o.signal?.aborted) throw o.signal.reason;
      const file = await open(step.file);
      const lastApplied = Math.min(step.last, boundary - 1);
      if (lastApplied >= step.first) {
        const start = await offsetOf(file, step.run, step.first);
        const end = lastApplied === step.run.last ? step.run.end : await offsetOf(file, step.run, lastApplied + 1);
        await copyRange(file, start, end, out);
        written += lastApplied - step.first + 1;
        if (lastApplied === boundary - 1) {
          const line = await lineAt(file, await offsetOf(file, step.run, lastApplied), step.run.end);
          if (!line) throw changed(o, step, lastApplied);
          cutter.acceptRun(applied, line);
        }
      }
      if (step.last >= boundary) {
        // Left out: parsed for the outcome only, never written.
        let next = Math.max(step.first, boundary);
        const from = await offsetOf(file, step.run, next);
        await readLines(file, from, step.run.end, (buf, a, b) => {
          const line = parseChangelogBytes(buf, a, b);
          if (!line || line.version !== next) return false;
          cutter.accept({ ...line, trashTime: trashTimeOf(line.op, line.args) });
          next++;
          return next <= step.last;
        });
        if (next !== step.last + 1) throw changed(o, step, next);
      }
      if (step.after) damage.push(step.after);
    }
    if (written !== applied)
      throw new ChainError(o.where, `${o.where}: the cut wrote ${written} lines, expected ${applied}`);
    return written;
  } finally {
    for (const h of handles.values()) await h.close();
  }
}

/** Bytes [start, end) of `from` appended to `to`. */
async function copyRange(from: fs.FileHandle, start: number, end: number, to: fs.FileHandle): Promise<void> {
  for (let pos = start; pos < end;) {
    const chunk = await readAt(from, pos, Math.min(4 << 20, end - pos));
    if (!chunk.length) throw new ChainError(String(pos), `changelog ended at byte ${pos}, expected ${end}`);
    await to.write(chunk);
    pos += chunk.length;
  }
}
