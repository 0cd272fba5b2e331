import type { ChangelogScan } from './changelog.js';
import { rollForward, type ChangelogPiece, type RollForward } from './chain.js';
import { restoreFrom, type ImageHeader } from './metadata.js';

/**
 * What `mfsmaster -a` (MooseFS 3.0.117) does with a directory of images and changelogs, as measured
 * in the lab (see test/jobs/verify.test.ts, which proves each rule against the real binary):
 *
 * - it loads the valid image with the highest version (`MFSM NEW` counts: it is the start of a new
 *   filesystem); a garbage or cut image is passed over; none valid → "can't find valid metadata file";
 * - a changelog whose LAST line is cut off, empty or unparsable is ignored as a whole, silently;
 * - inside a changelog, a line that is unparsable or does not go forward ("found garbage at the end of
 *   file … last correct id: N") ends that file: the lines after it are ignored, silently;
 * - the lines left are merged by version; a missing version between the image and the newest line
 *   stops the restore: "hole in change files (entries from … to … are missing)".
 *
 * The two silent rules are why verify must read every line: mfsmaster -a then comes up "fine" at an
 * older version, and the changes after the cut are lost.
 */

/** The scanner keeps at most this many problems per file; past it we cannot know the last line's fate. */
const SCANNER_PROBLEM_CAP = 100;

export interface ImageFacts {
  name: string;
  size: number;
  mtimeMs: number;
  header?: ImageHeader;
  /** Why the image is unusable (garbage, cut, unreadable). */
  error?: string;
}

export interface ChangelogFacts {
  name: string;
  size: number;
  mtimeMs: number;
  scan: ChangelogScan;
}

export interface ImageChoice {
  image?: ImageFacts & { header: ImageHeader };
  /** Images mfsmaster -a would pass over (an in-progress `metadata_ml.tmp` download is not listed). */
  invalid: ImageFacts[];
  /** Valid images with different metaids: mfsmaster -a refuses ("different id number"). */
  metaidConflict?: string[];
}

/** The image mfsmaster -a would load: the valid one with the highest version. */
export function chooseImage(images: readonly ImageFacts[]): ImageChoice {
  const valid = images.filter(
    (i): i is ImageFacts & { header: ImageHeader } => i.header !== undefined && i.error === undefined,
  );
  // A metalogger writes metadata_ml.tmp while it downloads: a cut one there is normal, not damage.
  const invalid = images.filter(
    (i) => !valid.includes(i as ImageFacts & { header: ImageHeader }) && i.name !== 'metadata_ml.tmp',
  );
  const image = [...valid].sort((a, b) => restoreFrom(b.header) - restoreFrom(a.header) || b.mtimeMs - a.mtimeMs)[0];
  const metaids = new Set(valid.filter((i) => !i.header.empty).map((i) => i.header.metaid));
  const metaidConflict =
    metaids.size > 1 ? valid.filter((i) => !i.header.empty).map((i) => `${i.name} (${i.header.metaid})`) : undefined;
  return { image, invalid, metaidConflict };
}

export interface ChangelogUse {
  name: string;
  /** Versions mfsmaster -a takes from this file. */
  pieces: ChangelogPiece[];
  /** Set when mfsmaster -a ignores the whole file. */
  skipped?: string;
  /** Set when mfsmaster -a stops reading the file early (garbage line). */
  cut?: { line: number; afterVersion?: number; reason: string };
}

function lastLineBad(scan: ChangelogScan): boolean {
  if (scan.truncatedLastLine) return true;
  if (scan.problems.length >= SCANNER_PROBLEM_CAP) return true;
  return scan.problems.some((p) => p.line === scan.lines);
}

/** The first `count` versions of a file, in file order (each accepted line is one version). */
function firstVersions(scan: ChangelogScan, count: number, file: string): ChangelogPiece[] {
  const out: ChangelogPiece[] = [];
  let left = count;
  for (const seg of scan.segments) {
    if (left <= 0) break;
    const take = Math.min(left, seg.last - seg.first + 1);
    out.push({ file, first: seg.first, last: seg.first + take - 1 });
    left -= take;
  }
  return out;
}

/** Which versions of one changelog mfsmaster -a would use. */
export function changelogUse(c: ChangelogFacts): ChangelogUse {
  const { scan } = c;
  if (scan.lines === 0) return { name: c.name, pieces: [] };
  if (lastLineBad(scan)) {
    const last = scan.problems.find((p) => p.line === scan.lines);
    return {
      name: c.name,
      pieces: [],
      skipped: `last line ${scan.lines} ${scan.truncatedLastLine ? 'is cut off (no newline at end of file)' : `is not a changelog line (${last?.reason ?? 'unparsable'})`}`,
    };
  }
  const first = scan.problems[0];
  if (!first)
    return { name: c.name, pieces: scan.segments.map((s) => ({ file: c.name, first: s.first, last: s.last })) };
  // Every line before the first problem was accepted, one version each.
  const pieces = firstVersions(scan, first.line - 1, c.name);
  return {
    name: c.name,
    pieces,
    cut: { line: first.line, afterVersion: pieces[pieces.length - 1]?.last, reason: first.reason },
  };
}

export interface RestorePlan {
  choice: ImageChoice;
  /** First version the chosen image needs (undefined without a valid image). */
  startVersion?: number;
  uses: ChangelogUse[];
  /** How far mfsmaster -a gets; undefined without a valid image. */
  roll?: RollForward;
}

/** Everything mfsmaster -a would do with these files, without running it. */
export function planRestore(images: readonly ImageFacts[], changelogs: readonly ChangelogFacts[]): RestorePlan {
  const choice = chooseImage(images);
  const uses = changelogs.map(changelogUse);
  if (!choice.image) return { choice, uses };
  const startVersion = restoreFrom(choice.image.header);
  return {
    choice,
    startVersion,
    uses,
    roll: rollForward(
      startVersion,
      uses.flatMap((u) => u.pieces),
    ),
  };
}

/**
 * The newest version a damaged file holds at or beyond the version where the restore stops: those lines
 * are on disk but mfsmaster -a will not apply them. Undefined when the damage costs nothing (the file
 * is older than the image, or other files hold the same lines).
 */
export function linesLostBeyond(plan: RestorePlan, scan: ChangelogScan): number | undefined {
  const reached = plan.roll?.reached;
  if (reached === undefined || scan.last === undefined) return undefined;
  const newest = Math.max(...scan.segments.map((s) => s.last));
  return newest >= reached ? newest : undefined;
}
