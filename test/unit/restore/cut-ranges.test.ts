import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChangelogScan } from '../../../lib/moosefs/changelog.js';
import { CUT_CHANGELOG, cutChain, type CutResult } from '../../../lib/restore/cut-files.js';
import { placingScanner } from '../../../lib/restore/restorepoint.js';
import type { RestoreTarget } from '../../../lib/restore/target.js';

/**
 * The cut folded into the placing pass: from the scans made while the files were placed (positions), the applied
 * lines are copied as byte ranges and nothing applied is parsed again. Every case is cut twice, from the same
 * files — once with the placing scans, once line by line (no scans) — and must give the same file and outcome.
 */

/** Changelog text for versions from..to, one second apart, `op(v)` choosing the operation. */
function text(from: number, to: number, op: (v: number) => string = () => 'CREATE(1,f,1,438,18,0,0,0):2'): string {
  let out = '';
  for (let v = from; v <= to; v++) out += `${v}: ${1_000 + v}|${op(v)}\n`;
  return out;
}

const mixed = (v: number) =>
  v === 52 ? 'UNLINK(1,f):5' : v === 55 ? 'SETTRASHTIME(5,0,3600,0):1,0,0' : 'ATTR(5,420,0,0,1,1,0,0)';

type Outcome = { result?: CutResult; error?: string; cut?: string; left: string[] };

describe('the cut from the placing scans (byte ranges) equals the line-by-line cut', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-cutranges-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  /** Write `contents` into a fresh directory; with `scan`, scan each file as placing does (fed in small chunks). */
  async function cut(
    name: string,
    contents: Record<string, string>,
    target: RestoreTarget,
    imageVersion: number,
    scan: boolean,
  ): Promise<Outcome> {
    const dir = path.join(root, name);
    await fs.mkdir(dir);
    const scanned = new Map<string, ChangelogScan>();
    for (const [file, body] of Object.entries(contents)) {
      const bytes = Buffer.from(body, 'latin1');
      await fs.writeFile(path.join(dir, file), bytes);
      if (!scan) continue;
      const scanner = placingScanner(file, target.kind === 'time' ? target.time : undefined);
      // Chunks that split lines, as a pipe's do.
      for (let i = 0; i < bytes.length; i += 7) scanner.push(bytes.subarray(i, i + 7));
      scanned.set(file, scanner.finish());
    }
    const o = { dir, changelogs: Object.keys(contents), imageName: 'metadata.mfs.back', imageVersion, target };
    try {
      const result = await cutChain({ ...o, where: 'snapshot S', scanned: scan ? scanned : undefined });
      const cutText = result.changelog ? await fs.readFile(path.join(dir, CUT_CHANGELOG), 'latin1') : undefined;
      return { result, cut: cutText, left: await fs.readdir(dir) };
    } catch (err) {
      return { error: (err as Error).message, left: (await fs.readdir(dir)).sort() };
    }
  }

  async function both(contents: Record<string, string>, target: RestoreTarget, imageVersion: number) {
    const ranges = await cut('ranges', contents, target, imageVersion, true);
    const lines = await cut('lines', contents, target, imageVersion, false);
    expect(lines.result?.pass ?? 'lines').toBe('lines');
    const { pass: _a, ...r } = ranges.result ?? { pass: undefined };
    const { pass: _b, ...l } = lines.result ?? { pass: undefined };
    expect({ ...ranges, result: r }).toEqual({ ...lines, result: l });
    return ranges;
  }

  const overlapping = {
    'changelog_ml.1.mfs': text(1, 40),
    'changelog_ml_back.0.mfs': text(35, 45),
    'changelog_ml.0.mfs': text(41, 60, mixed),
  };

  test('a version target in the middle of a file, overlapping files, the image in the middle of the first', async () => {
    const r = await both(overlapping, { kind: 'version', version: 50 }, 20);
    expect(r.result!.pass).toBe('ranges');
    expect(r.cut).toBe(text(20, 40) + text(41, 49, mixed));
    expect(r.result!.outcome).toMatchObject({
      targetVersion: 50,
      applied: 30,
      imageTimestamp: 1_019,
      leftOut: { count: 11, deletions: 1, deletionsByOp: { UNLINK: 1 } },
      smallestTrashTime: { value: 3_600, version: 55 },
    });
  });

  test('a target at a file boundary, and one line before it', async () => {
    const files = { 'changelog.1.mfs': text(10, 40), 'changelog.0.mfs': text(41, 60, mixed) };
    for (const version of [41, 40]) {
      const r = await both(files, { kind: 'version', version }, 10);
      expect(r.result!.pass).toBe('ranges');
      expect(r.cut).toBe(text(10, version - 1));
      await fs.rm(root, { recursive: true, force: true });
      await fs.mkdir(root);
    }
  });

  test("the chain's end: newest, or a version target at its end; every line applied, nothing left out", async () => {
    for (const target of [{ kind: 'newest' }, { kind: 'version', version: 61 }] as RestoreTarget[]) {
      const r = await both(overlapping, target, 20);
      expect(r.result!.pass).toBe('ranges');
      expect(r.cut).toBe(text(20, 40) + text(41, 60, mixed));
      expect(r.result!.outcome).toMatchObject({ targetVersion: 61, applied: 41, leftOut: { count: 0 } });
      await fs.rm(root, { recursive: true, force: true });
      await fs.mkdir(root);
    }
  });

  test('a time target: the first later line ends the applied part, in the second file', async () => {
    const r = await both(overlapping, { kind: 'time', time: 1_047, iso: 'T' }, 20);
    expect(r.result!.pass).toBe('ranges');
    expect(r.cut).toBe(text(20, 40) + text(41, 47, mixed));
    expect(r.result!.outcome).toMatchObject({ targetVersion: 48, passedTarget: true, leftOut: { count: 13 } });
  });

  test('a cut last line is never copied and is noted where the line pass notes it', async () => {
    const files = { 'changelog.1.mfs': text(10, 30), 'changelog.0.mfs': text(31, 40) + '41: 1041|CREATE(1,hal' };
    for (const target of [
      { kind: 'newest' },
      { kind: 'version', version: 41 },
      { kind: 'version', version: 35 },
      { kind: 'time', time: 1_038, iso: 'T' },
    ] as RestoreTarget[]) {
      const r = await both(files, target, 12);
      // Refused alike where the cut line is the target's (newest: the chain's end is damaged).
      if (r.result) expect(r.result.pass).toBe('ranges');
      else expect(r.error).toMatch(/changelog\.0\.mfs:11/);
      await fs.rm(root, { recursive: true, force: true });
      await fs.mkdir(root);
    }
  });

  test('a damaged or repeated line inside a step: cut line by line, same result', async () => {
    for (const bad of ['garbage\n', '15: 1015|CREATE(1,f,1,438,18,0,0,0):2\n']) {
      const files = { 'changelog.0.mfs': text(10, 15) + bad + text(16, 30) };
      for (const version of [20, 14]) {
        const r = await both(files, { kind: 'version', version }, 10);
        if (r.result) expect(r.result.pass).toBe('lines');
        await fs.rm(root, { recursive: true, force: true });
        await fs.mkdir(root);
      }
    }
  });

  test('the image alone (target at its version) writes no changelog', async () => {
    const r = await both({ 'changelog.0.mfs': text(5, 20) }, { kind: 'version', version: 10 }, 10);
    expect(r.result!.changelog).toBeUndefined();
    expect(r.left).toEqual([]);
  });
});
