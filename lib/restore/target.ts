import { DateTime } from 'luxon';
import { z } from 'zod';
import { formatHole, type ChangelogPiece, type Hole } from '../moosefs/chain.js';
import { UsageError } from '../core/errors.js';

/**
 * Pure logic of a point-in-time restore: what the target means, which changelog lines are applied and
 * which are left out, and whether the cut is possible at all. Versions follow lib/moosefs/chain.ts and
 * the real master (measured in test/jobs/restore.test.ts): after line L is applied the master reports
 * version L+1, so the master "at version N" has every line below N applied and none at or after it.
 */
export type RestoreTarget =
  /** `--to-version N`: lines < N applied. */
  | { kind: 'version'; version: number }
  /** `--to-time T`: every line up to the first one later than T (unix seconds) applied. */
  | { kind: 'time'; time: number; iso: string }
  /** No target: everything the restore point holds. */
  | { kind: 'newest' };

/** The `--to-version` / `--to-time` arguments, shared by `restore` and `drill` (flags and help: jobs/index.ts). */
export const TARGET_ARGS = { toVersion: z.string().optional(), toTime: z.string().optional() };

/** An argument as typed (commander gives strings; a daemon hand-off, JSON values). */
const argText = (v: unknown): string =>
  typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v);

/** `--to-version` / `--to-time` from the command line; ISO times without an offset are in `zone`. */
export function parseTarget(args: { toVersion?: string; toTime?: string }, zone = 'UTC'): RestoreTarget {
  if (args.toVersion !== undefined && args.toTime !== undefined)
    throw new UsageError('--to-version', '--to-version and --to-time cannot be combined: a restore has one target');
  if (args.toVersion !== undefined) {
    const text = argText(args.toVersion).trim().replace(/[\s_]/g, '');
    if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
      throw new UsageError(
        '--to-version',
        `--to-version ${JSON.stringify(argText(args.toVersion))}: expected a metadata version (a whole number >= 1, as mfscli -SIM shows it)`,
      );
    return { kind: 'version', version: Number(text) };
  }
  if (args.toTime !== undefined) {
    const text = argText(args.toTime).trim();
    const at = DateTime.fromISO(text, { zone, setZone: true });
    if (!at.isValid)
      throw new UsageError(
        '--to-time',
        `--to-time ${JSON.stringify(text)}: expected an ISO-8601 time such as 2026-12-01T14:01:00Z (${at.invalidExplanation ?? at.invalidReason})`,
      );
    return { kind: 'time', time: at.toMillis() / 1000, iso: at.toUTC().toISO({ suppressMilliseconds: true }) };
  }
  return { kind: 'newest' };
}

export function describeTarget(t: RestoreTarget): string {
  return t.kind === 'version'
    ? `--to-version ${t.version}`
    : t.kind === 'time'
      ? `--to-time ${t.iso}`
      : 'the newest version';
}

/** One run of a chosen file: versions first..last of it are read, in this order. */
export interface ChainStep {
  file: string;
  first: number;
  last: number;
}

/**
 * From `version` on, the files to read, greedily: at each version the piece that reaches furthest
 * (duplicates across files are fine; the first file given wins a tie). `reached` is the first missing version.
 */
export function chainSteps(
  version: number,
  pieces: readonly ChangelogPiece[],
): { steps: ChainStep[]; reached: number } {
  const steps: ChainStep[] = [];
  let next = version;
  for (;;) {
    let best: ChangelogPiece | undefined;
    for (const p of pieces) if (p.first <= next && p.last >= next && (!best || p.last > best.last)) best = p;
    if (!best) return { steps, reached: next };
    steps.push({ file: best.file, first: next, last: best.last });
    next = best.last + 1;
  }
}

export interface ChangeRef {
  version: number;
  /** Unix seconds. */
  timestamp: number;
  op: string;
}

/** One changelog line as the cut needs it. */
export interface CutLine extends ChangeRef {
  /** SETTRASHTIME's trash time as the changelog carries it: seconds in every generation (4.x applies whole hours). */
  trashTime?: number;
}

/**
 * What counts as a deletion among the changes left out: unlinking (to the trash), purging from the trash,
 * and the trash's own emptying — after these a file's chunks live only as long as its trash time.
 */
export const DELETION_OPS: readonly string[] = [
  'UNLINK',
  'PURGE',
  'EMPTYTRASH',
  'TRASH_REMOVE',
  'EMPTYSUSTAINED',
  'EMPTYRESERVED',
];

export interface LeftOut {
  count: number;
  first?: ChangeRef;
  last?: ChangeRef;
  /** The oldest deletion left out: its file's chunks have been in the trash the longest. */
  firstDeletion?: ChangeRef;
  deletions: number;
  deletionsByOp: Record<string, number>;
}

export interface CutOutcome {
  /** The version the restored master will serve: every line below it applied. */
  targetVersion: number;
  applied: number;
  /** The newest change applied (undefined when only the image is restored). */
  lastApplied?: ChangeRef;
  /** Unix seconds of the line just before the image, when a changelog holds it (the image's own time). */
  imageTimestamp?: number;
  /** A time target: a line later than the target was seen (so the chain did pass the target). */
  passedTarget: boolean;
  leftOut: LeftOut;
  /**
   * The smallest SETTRASHTIME among the lines left out (seconds, as logged), and where. Lines applied are
   * not looked at: what they set is part of the restored state, which the same state reached from another
   * image would not show either (the verdict depends on the state restored, not on the way to it).
   */
  smallestTrashTime?: { value: number; version: number };
}

/**
 * The cut, fed the chain's lines in version order (one streaming pass, constant memory): `accept(line)`
 * says whether the line is applied (written into the cut changelog) or left out.
 */
export class Cutter {
  private applied = 0;
  private lastApplied: ChangeRef | undefined;
  private imageTimestamp: number | undefined;
  private passed = false;
  private readonly leftOut: LeftOut = { count: 0, deletions: 0, deletionsByOp: {} };
  private smallestTrash: { value: number; version: number } | undefined;

  constructor(
    private readonly target: RestoreTarget,
    private readonly imageVersion: number,
  ) {}

  /** A line older than the image (only its timestamp matters: the image's own time). */
  before(line: ChangeRef): void {
    if (line.version === this.imageVersion - 1) this.imageTimestamp = line.timestamp;
  }

  accept(line: CutLine): boolean {
    const apply = this.applies(line);
    const ref: ChangeRef = { version: line.version, timestamp: line.timestamp, op: line.op };
    if (apply) {
      this.applied++;
      this.lastApplied = ref;
      return true;
    }
    const l = this.leftOut;
    l.count++;
    l.first ??= ref;
    l.last = ref;
    const trash = line.trashTime;
    if (trash !== undefined && (!this.smallestTrash || trash < this.smallestTrash.value)) {
      this.smallestTrash = { value: trash, version: line.version };
    }
    if (DELETION_OPS.includes(line.op)) {
      l.firstDeletion ??= ref;
      l.deletions++;
      l.deletionsByOp[line.op] = (l.deletionsByOp[line.op] ?? 0) + 1;
    }
    return false;
  }

  /**
   * `count` lines applied in a row, `last` the last of them: the cut copied them as one byte range, every one
   * before the target (cut-files.ts decided so from the scans).
   */
  acceptRun(count: number, last: ChangeRef): void {
    this.applied += count;
    this.lastApplied = { version: last.version, timestamp: last.timestamp, op: last.op };
  }

  private applies(line: CutLine): boolean {
    if (this.target.kind === 'version') return line.version < this.target.version;
    if (this.target.kind === 'newest') return true;
    // The first line later than the target ends the applied part, even if the clock went back after it.
    if (!this.passed && line.timestamp > this.target.time) this.passed = true;
    return !this.passed;
  }

  result(): CutOutcome {
    return {
      targetVersion: this.lastApplied ? this.lastApplied.version + 1 : this.imageVersion,
      applied: this.applied,
      lastApplied: this.lastApplied,
      imageTimestamp: this.imageTimestamp,
      passedTarget: this.passed,
      leftOut: this.leftOut,
      smallestTrashTime: this.smallestTrash,
    };
  }
}

/** A damaged line met while reading the chain: `file:line`, after the last good version before it. */
export interface Damage {
  file: string;
  line: number;
  afterVersion: number;
}

export interface CutFacts {
  /** For messages: "snapshot 20261201T140000Z" or "metalogger ml1". */
  where: string;
  imageName: string;
  imageVersion: number;
  target: RestoreTarget;
  outcome: CutOutcome;
  /** First version no file holds (from the image on). */
  reached: number;
  /** Newest version any file offers (last line + 1). */
  newest: number;
  holes: Hole[];
  damage: Damage[];
  /** Unix seconds of the newest line read. */
  newestTimestamp?: number;
}

/** Why a cut is refused; `beforeImage`: an older restore point could still serve the target. */
export interface CutRefusal {
  message: string;
  /** The file the refusal is about (image, damaged changelog), for the error's subject. */
  subject: string;
  beforeImage: boolean;
}

const iso = (unix: number) => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');

/** Undefined when the cut is sound: the target lies within what the restore point holds, gap-free and undamaged. */
export function checkCut(f: CutFacts): CutRefusal | undefined {
  const { target, outcome } = f;
  const what = describeTarget(target);
  const damageBefore = (version: number) =>
    f.damage.find((d) => d.afterVersion + 1 >= f.imageVersion && d.afterVersion + 1 < version);
  const damaged = (d: Damage, version: number): CutRefusal => ({
    subject: d.file,
    beforeImage: false,
    message: `${what}: ${f.where}: ${d.file}:${d.line}: damaged changelog line after version ${d.afterVersion}, before the target version ${version}: nothing written`,
  });
  const hole = (h: Hole): CutRefusal => ({
    subject: f.where,
    beforeImage: false,
    message: `${what} lies beyond a hole in ${f.where}'s changelogs: versions ${formatHole(h)} are missing (the chain from image ${f.imageName} at version ${f.imageVersion} reaches ${f.reached}): nothing written`,
  });
  if (target.kind === 'version') {
    const n = target.version;
    if (n < f.imageVersion) {
      return {
        subject: f.imageName,
        beforeImage: true,
        message: `${what} is older than ${f.where}: its image ${f.imageName} is at version ${f.imageVersion} (use an older restore point): nothing written`,
      };
    }
    const d = damageBefore(n);
    if (d) return damaged(d, n);
    if (n > f.reached) {
      const h = f.holes.find((x) => x.from < n);
      if (h) return hole(h);
      return {
        subject: f.where,
        beforeImage: false,
        message: `${what} is beyond what ${f.where} holds: its newest version is ${f.reached} (image ${f.imageName} at ${f.imageVersion}): nothing written`,
      };
    }
    return undefined;
  }
  if (target.kind === 'time') {
    const nothingApplied = outcome.applied === 0;
    if (nothingApplied && (outcome.imageTimestamp === undefined || outcome.imageTimestamp > target.time)) {
      const first = outcome.leftOut.first;
      return {
        subject: f.imageName,
        beforeImage: true,
        message: `${what} is older than ${f.where}: its image ${f.imageName} is at version ${f.imageVersion}${first ? ` and its first change after the image (version ${first.version}) is from ${iso(first.timestamp)}` : ''} (use an older restore point): nothing written`,
      };
    }
    const d = damageBefore(outcome.targetVersion + (outcome.passedTarget ? 0 : 1));
    if (d) return damaged(d, outcome.targetVersion);
    if (!outcome.passedTarget) {
      const h = f.holes[0];
      if (h) return hole(h);
      const newest = f.newestTimestamp !== undefined ? ` (version ${f.reached - 1} at ${iso(f.newestTimestamp)})` : '';
      return {
        subject: f.where,
        beforeImage: false,
        message: `${what} is after the newest change ${f.where} holds${newest}: it cannot show the metadata at that time (use --to-version ${f.reached} or a newer restore point): nothing written`,
      };
    }
    return undefined;
  }
  const d = damageBefore(f.reached + 1);
  if (d) return damaged(d, f.reached);
  return f.holes[0] ? hole(f.holes[0]) : undefined;
}

export interface TrashCheck {
  /** The trash time compared with, seconds. */
  seconds: number;
  /** Where it comes from, for the output. */
  basis: string;
  /** Set when a deletion left out is older than the trash time: its file may come back without its chunks. */
  warning?: string;
}

/**
 * The restore undoes the deletions left out; a deleted file's chunks live for its trash time from its
 * deletion. So: WARNING when the oldest deletion left out is older than the trash time. No deletion left
 * out, nothing comes back, no warning. The trash time is the generation's default, or a smaller
 * SETTRASHTIME among the changes left out, as the master applies it (`stepSeconds`: 4.x rounds up to hours).
 */
export interface TrashFacts {
  leftOut: LeftOut;
  nowSeconds: number;
  /** CutOutcome.smallestTrashTime: seconds as logged. */
  smallest?: { value: number; version: number };
  stepSeconds: number;
  defaultSeconds: number;
  generation: string;
}

export function checkTrash(o: TrashFacts): TrashCheck {
  const { smallest } = o;
  const applied = smallest ? Math.ceil(smallest.value / o.stepSeconds) * o.stepSeconds : undefined;
  const seconds = applied !== undefined ? Math.min(applied, o.defaultSeconds) : o.defaultSeconds;
  const basis =
    smallest && applied !== undefined && applied <= o.defaultSeconds
      ? `the smallest SETTRASHTIME among the changes left out (version ${smallest.version}: ${smallest.value} s` +
        `${applied !== smallest.value ? `, applied as ${applied} s` : ''})`
      : `the ${o.generation} default trash time (${o.defaultSeconds} s; ` +
        'no smaller SETTRASHTIME among the changes left out)';
  const first = o.leftOut.firstDeletion;
  if (!first) return { seconds, basis };
  const age = o.nowSeconds - first.timestamp;
  if (age <= seconds) return { seconds, basis };
  const at = `version ${first.version} at ${iso(first.timestamp)} (${first.op})`;
  return {
    seconds,
    basis,
    warning:
      `the oldest deletion left out, ${at}, is ${Math.round(age)} s old, more than the trash time ${seconds} s ` +
      `(${basis}): ${o.leftOut.deletions} deletion(s) are undone, and their files may come back without their data`,
  };
}
