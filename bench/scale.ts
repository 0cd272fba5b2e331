/**
 * `--scale 30m` (or `10m,30m`, `1m,10m,30m`): file counts of the scale cases (issue 28). Each adds its image to
 * backup and backup-zstd, and its image + 48 MB changelog tail to verify, promote, restore and (up to 10M) drill: the curve a
 * projection to 100M files is fitted on. Opt-in: a 30M-file master holds several GB of RAM and every
 * mfsmaster -a of it takes a minute.
 */
export function parseScale(text: string | undefined): number[] {
  if (!text) return [];
  return [
    ...new Set(
      text.split(',').map((t) => {
        const m = /^\s*(\d+)\s*([mk]?)\s*$/i.exec(t);
        const n = m ? Number(m[1]) * (m[2]!.toLowerCase() === 'm' ? 1e6 : m[2] ? 1e3 : 1) : NaN;
        if (!(n >= 1000)) throw new Error(`--scale: expected file counts such as 30m or 10m,30m, not "${t}"`);
        return n;
      }),
    ),
  ].sort((a, b) => a - b);
}

/** Promote at more than 10M files: the warm standby only (the cold one adds a 2 GB scp per side and round). */
export const WARM_ONLY_ABOVE_FILES = 10_000_000;
