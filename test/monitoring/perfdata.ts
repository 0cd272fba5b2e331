/** Nagios plugin guidelines: `'label'=value[UOM];[warn];[crit];[min];[max]`. */
export const PERFDATA_ITEM = /^('[^'=]+'|[^'=\s]+)=(-?[0-9.]+|U)(s|us|ms|%|B|KB|MB|GB|TB|c)?(;(-?[0-9.]*)){0,4}$/;

/** The perfdata items of a plugin's first output line (quoted labels may hold spaces). */
export function perfItems(firstLine: string): string[] {
  const i = firstLine.indexOf('|');
  if (i < 0) return [];
  return [...firstLine.slice(i + 1).matchAll(/('[^']*'|[^'\s=]+)=\S+/g)].map((m) => m[0]);
}
