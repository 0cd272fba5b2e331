/**
 * Confinement, once: every name that comes from outside (a manifest, an archive, a remote listing)
 * passes `plainNameProblem` before it is joined to a path, hashed or opened, and every outside string
 * printed to a terminal or put into an error passes `printable` / `shownName`.
 */

/** Longest name admitted (ext4, xfs and MooseFS's own names all fit in 255 bytes). */
export const MAX_NAME_BYTES = 255;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `name` is not a plain file name (one path component, no control characters), or undefined. */
export function plainNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'not a string';
  if (name === '' || name === '.' || name === '..') return 'not a file name';
  if (name.includes('/') || name.includes('\\')) return 'contains a path separator';
  if (CONTROL.test(name)) return 'contains a control character';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `longer than ${MAX_NAME_BYTES} bytes`;
  return undefined;
}

/** Control characters and escape sequences made visible: ESC becomes the four characters `\x1b`. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\\]/g, (c) =>
    c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** An outside name as it may appear in a message: printable, at most `max` characters. */
export function shownName(name: unknown, max = 64): string {
  const text = printable(typeof name === 'string' ? name : String(name));
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
