import { Readable } from 'node:stream';
import { scanChangelogStream } from '../../lib/moosefs/changelog.js';
import type { ImageHeader } from '../../lib/moosefs/metadata.js';
import type { ChangelogFacts, ImageFacts } from '../../lib/moosefs/restore-model.js';

/** Changelog text in MooseFS's own format, versions `from`..`to`. */
export const changelogLines = (from: number, to: number, ts = 1795575880) =>
  Array.from(
    { length: to - from + 1 },
    (_, i) => `${from + i}: ${ts}|CREATE(1,f${from + i},1,438,18,0,0,0):${from + i + 1}\n`,
  ).join('');

/** A changelog as verify sees it: scanned by the real scanner. */
export async function changelog(name: string, text: string): Promise<ChangelogFacts> {
  const scan = await scanChangelogStream(Readable.from([Buffer.from(text)]), name);
  return { name, size: scan.bytes, mtimeMs: 0, scan };
}

/** Facts about an image: a valid header, or the error that made it unusable. */
export function image(
  name: string,
  version: number,
  o: { metaid?: string; empty?: boolean; error?: string; mtimeMs?: number } = {},
): ImageFacts {
  const header: ImageHeader = {
    magic: o.empty ? 'MFSM NEW' : 'MFSM 2.0',
    version: o.empty ? 0 : version,
    metaid: o.metaid ?? '6B0765A344C26A01',
    empty: o.empty ?? false,
  };
  return { name, size: 4096, mtimeMs: o.mtimeMs ?? 0, ...(o.error ? { error: o.error } : { header }) };
}
