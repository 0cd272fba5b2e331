import { linesMatching, tsSources } from '../../helpers/sources.js';

/**
 * Durability is a habit, not a feature: every rename, exclusive create, link-or-copy fallback and copy by
 * path goes through lib/core/atomic.ts (atomic and fsynced unless the caller says `durable: false` and
 * why), and everything inside another user's directory through lib/core/dirhandle.ts. A new bare call
 * anywhere else fails here; the few left are listed with the reason.
 */
const OWNERS = ['lib/core/atomic.ts', 'lib/core/dirhandle.ts'];
const BARE = /\.rename\(|O_EXCL|'wx'|"wx"|EXDEV|copyFile\(|\bfs\.link\(/;

const ALLOWED: { file: string; has: string; why: string }[] = [
  {
    file: 'lib/transport/remote.ts',
    has: 'COPYFILE_FICLONE_FORCE',
    why: 'copyLocalFile: a clone or nothing (then a bounded copy through writeNewFile); created exclusively',
  },
  {
    file: 'lib/core/lock.ts',
    has: 'fs.link(pending, file)',
    why: 'taking the lock: link(2) of an fsynced pending file fails when the lock exists',
  },
];

describe('durable writes', () => {
  test('no bare rename, exclusive create, copy or EXDEV fallback outside atomic.ts and dirhandle.ts', async () => {
    const files = (await tsSources('lib', 'jobs', 'bin')).filter((f) => !OWNERS.includes(f));
    const code = (text: string) => !text.startsWith('*') && !text.startsWith('//') && !text.startsWith('/*');
    const hits = (await linesMatching(files, BARE)).filter((h) => code(h.text));
    const bare = hits.filter((h) => !ALLOWED.some((a) => a.file === h.file && h.text.includes(a.has)));
    expect(bare.map((h) => `${h.file}:${h.line}: ${h.text}`)).toEqual([]);
    const stale = ALLOWED.filter((a) => !hits.some((h) => h.file === a.file && h.text.includes(a.has)));
    expect(stale).toEqual([]);
  });
});
