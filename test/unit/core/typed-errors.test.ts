import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../../helpers/cli.js';
import { linesMatching, tsSources } from '../../helpers/sources.js';

/**
 * Every error an operator can see is a typed error with a subject (lib/core/errors.ts), so the CLI prints
 * one line naming the file, host or key. A bare `throw new Error(` is allowed only where it cannot reach
 * the operator as it is; each such place is listed here with the reason.
 */
const BARE_ALLOWED: { file: string; starts: string; why: string }[] = [
  {
    file: 'lib/moosefs/version-cover.ts',
    starts: '`version cover:',
    why: 'an internal invariant: callers pass only boundaries',
  },
  { file: 'lib/prune/plan.ts', starts: 'shortened', why: 'a bug check: the plan is refused whole' },
  {
    file: 'lib/transport/remote.ts',
    starts: '`no handle for',
    why: "wrapped by list()'s catch into a TransferError naming the host",
  },
  {
    file: 'lib/transport/remote.ts',
    starts: "'No SFTP connection'",
    why: 'wrapped by the same catch into a TransferError',
  },
  {
    file: 'lib/transport/knownhosts.ts',
    starts: "'malformed SSH host key blob'",
    why: 'caught by acceptNewHostKey, which names host and file',
  },
  {
    file: 'lib/core/output.ts',
    starts: '`metric ',
    why: 'a programming error (an undeclared metric), caught by the unit tests',
  },
];

const ERROR_CLASSES = 'lib/core/errors.ts';

describe('typed errors', () => {
  let files: string[];
  beforeAll(async () => {
    files = await tsSources('lib', 'jobs', 'bin');
  });

  test('no bare `throw new Error(` in lib/, jobs/ or bin/ outside the allow-list (each with its reason)', async () => {
    const hits = await linesMatching(files, /throw new Error\(/);
    const bare = hits.filter(
      (h) => !BARE_ALLOWED.some((a) => a.file === h.file && h.text.includes(`throw new Error(${a.starts}`)),
    );
    expect(bare.map((h) => `${h.file}:${h.line}: ${h.text}`)).toEqual([]);
    // An allow-list entry whose throw is gone goes too.
    const stale = BARE_ALLOWED.filter(
      (a) => !hits.some((h) => h.file === a.file && h.text.includes(`throw new Error(${a.starts}`)),
    );
    expect(stale).toEqual([]);
  });

  test('every error class derives from MfsJobsError (a subject), not from Error itself, outside errors.ts', async () => {
    const own = await linesMatching(files, /class \w+ extends (Error|TypeError|RangeError)\b/);
    expect(own.filter((h) => h.file !== ERROR_CLASSES).map((h) => `${h.file}:${h.line}: ${h.text}`)).toEqual([]);
  });

  test('no message starts with a class name ("ChainError: ..."): the class is for code, the line for people', async () => {
    const named = await linesMatching(
      files,
      /new \w*(Error|Failed|Lost|Refused|Changed)\((?:[^,()]+,\s*)?[`'"][A-Z]\w*(Error|Cover|Failed)\w*:/,
    );
    expect(named.map((h) => `${h.file}:${h.line}: ${h.text}`)).toEqual([]);
  });

  test('every class in errors.ts is thrown somewhere (a declared, never-used error misleads the reader)', async () => {
    const declared = [
      ...(await readFile(path.join(REPO_ROOT, ERROR_CLASSES), 'utf8')).matchAll(
        /export class (\w+) extends MfsJobsError/g,
      ),
    ].map((m) => m[1]!);
    expect(declared.length).toBeGreaterThan(5);
    const used = await linesMatching(
      files.filter((f) => f !== ERROR_CLASSES),
      new RegExp(`\\b(${declared.join('|')})\\b`),
    );
    expect(declared.filter((c) => !used.some((u) => new RegExp(`new ${c}\\(|extends ${c}\\b`).test(u.text)))).toEqual(
      [],
    );
  });
});
