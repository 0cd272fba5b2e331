import type { Hole } from './chain.js';
import type { Segment } from './changelog.js';

/**
 * How many changelog pieces hold each version, for many "would these versions still be held if
 * this file went?" questions in a row: a segment tree over the versions where pieces start and
 * end (range add, range minimum), so each question costs O(log n) instead of a pass over every
 * piece. prune asks it once per candidate file or snapshot.
 */
export class VersionCover {
  /** Sorted boundaries: elementary run i holds versions xs[i] .. xs[i+1]-1. */
  private readonly xs: number[];
  private readonly size: number;
  private readonly min: Int32Array;
  private readonly pending: Int32Array;

  constructor(segments: readonly Segment[]) {
    this.xs = [...new Set(segments.flatMap((s) => [s.first, s.last + 1]))].sort((a, b) => a - b);
    this.size = Math.max(1, this.xs.length - 1);
    this.min = new Int32Array(4 * this.size);
    this.pending = new Int32Array(4 * this.size);
  }

  /** Index of boundary `v` (it must be one of the segments' boundaries given at construction). */
  private at(v: number): number {
    let lo = 0;
    let hi = this.xs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.xs[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    // An internal invariant (callers pass only boundaries), never an operator's input.
    if (this.xs[lo] !== v) throw new Error(`version cover: ${v} is not a boundary`);
    return lo;
  }

  /** One more (delta 1) or one fewer (delta -1) piece holds versions s.first..s.last. */
  add(s: Segment, delta: number): void {
    this.update(1, 0, this.size - 1, this.at(s.first), this.at(s.last + 1) - 1, delta);
  }

  /** Versions in s that no piece holds, as runs (s's boundaries must have been given at construction). */
  uncovered(s: Segment): Hole[] {
    const holes: Hole[] = [];
    this.collect(1, 0, this.size - 1, this.at(s.first), this.at(s.last + 1) - 1, 0, holes);
    return holes;
  }

  private update(node: number, lo: number, hi: number, from: number, to: number, delta: number): void {
    if (to < lo || hi < from) return;
    if (from <= lo && hi <= to) {
      this.min[node]! += delta;
      this.pending[node]! += delta;
      return;
    }
    const mid = (lo + hi) >> 1;
    this.update(2 * node, lo, mid, from, to, delta);
    this.update(2 * node + 1, mid + 1, hi, from, to, delta);
    this.min[node] = Math.min(this.min[2 * node]!, this.min[2 * node + 1]!) + this.pending[node]!;
  }

  /** Walk down only where the minimum is 0: the runs with no piece, merged when adjacent. */
  private collect(node: number, lo: number, hi: number, from: number, to: number, above: number, out: Hole[]): void {
    if (to < lo || hi < from || this.min[node]! + above > 0) return;
    if (lo === hi) {
      const run = { from: this.xs[lo]!, to: this.xs[lo + 1]! - 1 };
      const last = out[out.length - 1];
      if (last && last.to + 1 === run.from) last.to = run.to;
      else out.push(run);
      return;
    }
    const mid = (lo + hi) >> 1;
    const below = above + this.pending[node]!;
    this.collect(2 * node, lo, mid, from, to, below, out);
    this.collect(2 * node + 1, mid + 1, hi, from, to, below, out);
  }
}
