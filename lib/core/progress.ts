/**
 * A transfer progress line for humans watching a terminal (`mfs-jobs run backup` by hand); nothing
 * at all under cron or the daemon, where stderr is a log, not a screen.
 */
export type ProgressFn = (done: number, total: number) => void;

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A progress callback that redraws one stderr line at most 4 times a second, or undefined off a TTY. */
export function terminalProgress(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
): { update: ProgressFn; end: () => void } | undefined {
  if (!stream.isTTY) return undefined;
  const started = Date.now();
  let lastDraw = 0;
  let last = { done: 0, total: 0 };
  const draw = () => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const pct = last.total > 0 ? Math.floor((last.done / last.total) * 100) : 100;
    stream.write(
      `\r${label} ${String(pct).padStart(3)}% ${formatBytes(last.done)}/${formatBytes(last.total)} ${formatBytes(last.done / seconds)}/s\x1b[K`,
    );
  };
  return {
    update: (done, total) => {
      last = { done, total };
      const now = Date.now();
      if (now - lastDraw < 250) return;
      lastDraw = now;
      draw();
    },
    end: () => {
      draw();
      stream.write('\n');
    },
  };
}
