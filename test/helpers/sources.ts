import { promises as fs } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './cli.js';

/** The TypeScript sources under `dirs` (relative to the repository), as repository-relative paths. */
export async function tsSources(...dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs) {
    for (const e of await fs.readdir(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) out.push(...(await tsSources(rel)));
      else if (e.name.endsWith('.ts')) out.push(rel);
    }
  }
  return out.sort();
}

/** Every line of `files` matching `pattern`, as `file:line: text`, for a test that forbids a habit. */
export async function linesMatching(
  files: readonly string[],
  pattern: RegExp,
): Promise<{ file: string; line: number; text: string }[]> {
  const hits: { file: string; line: number; text: string }[] = [];
  for (const file of files) {
    const lines = (await fs.readFile(path.join(REPO_ROOT, file), 'utf8')).split('\n');
    lines.forEach((text, i) => {
      if (pattern.test(text)) hits.push({ file, line: i + 1, text: text.trim() });
    });
  }
  return hits;
}
