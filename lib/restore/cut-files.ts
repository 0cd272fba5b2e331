import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createTempExclusive, fillAndSync, fsyncDir, renameDurable } from '../core/atomic.js';
import { ChainError } from '../core/errors.js';
import { holesBetween, type ChangelogPiece, type Hole } from '../moosefs/chain.js';
import {
  readChangelogLines,
  scanChangelogFile,
  type ChangelogEntry,
  type ChangelogScan,
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
  await fillAndSync(handle, tmp, async () => {
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
      if (steps.length && next !== step.last + 1)
        throw new ChainError(
          step.file,
          `${o.where}: ${step.file}: expected changelog lines ${step.first}..${step.last}, found up to ${next - 1} (the file changed while restoring?)`,
        );
    }
    await flush();
  });
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
    await renameDurable(tmp, path.join(o.dir, CUT_CHANGELOG));
  } else {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDir(o.dir);
  return { changelog, outcome, steps, reached, newest, holes, damage: relevant };
}
