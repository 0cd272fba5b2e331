import { ChurnWriter, fileInode, layout, leafInode, namespaceChunks } from '../../bench/lines.js';

const createRe = /^(\d+): \d+\|CREATE\((\d+),([^,]+),([12]),\d+,\d+,0,0,0\):(\d+)$/;

describe('bench changelog lines', () => {
  test('the namespace hands out inodes 2, 3, 4 … in CREATE order, as a fresh master does', () => {
    const files = 2 * 100 * 1000 + 1500; // spills into a third top directory and a partial leaf
    const lines = [...namespaceChunks(files, 42n, 1_767_225_600)].join('').trimEnd().split('\n');
    expect(lines).toHaveLength(layout(files).lines);
    expect(lines[0]).toBe('1: 1767225600|SETMETAID(42)');
    // One expect at the end: 200k expect() calls would make this test slow.
    const types = new Map<number, number>([[1, 2]]);
    const wrong: string[] = [];
    let fileCount = 0;
    for (const [i, line] of lines.slice(1).entries()) {
      const [, version, parent, , type, inode] = (createRe.exec(line) ?? []).map(Number);
      const ok =
        version === i + 2 &&
        inode === i + 2 &&
        types.get(parent!) === 2 &&
        (type !== 1 || inode === fileInode(fileCount++));
      if (!ok) wrong.push(line);
      types.set(inode!, type!);
    }
    expect(wrong.slice(0, 3)).toEqual([]);
    expect(fileCount).toBe(files);
    expect(leafInode(200)).toBe(fileInode(200_000) - 1);
  });

  test('churn continues the version sequence and renames a file back before touching its old name again', () => {
    const churn = new ChurnWriter(1000, 1004, 1_767_225_600);
    const text = churn.chunk(200_000);
    const lines = text.trimEnd().split('\n');
    lines.forEach((l, i) => expect(l.startsWith(`${1004 + i}: `)).toBe(true));
    expect(churn.nextVersion).toBe(1004 + lines.length);
    const names = new Map<number, string>();
    for (const l of lines) {
      const m = /MOVE\((\d+),([^,]+),(\d+),([^)]+)\):(\d+)/.exec(l);
      if (!m) continue;
      const ino = Number(m[5]);
      expect(names.get(ino) ?? m[2]).toBe(m[2]);
      names.set(ino, m[4]!);
    }
    expect(names.size).toBeGreaterThan(100);
  });
});
