import { promises as fs } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { GENERATION_NAMES } from '../../lib/moosefs/generations/index.js';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * The layout is the architecture (README § Layout): lib/ folders are layers, a lower one never
 * imports a higher one, lib never imports jobs, no job imports another, and no file imports itself
 * back through others. Read from the TypeScript sources, so a new import that breaks a rule fails here.
 */
const LAYER: Record<string, number> = {
  core: 0,
  transport: 1,
  moosefs: 2,
  store: 3,
  backup: 4,
  failover: 4,
  prune: 4,
  verify: 4,
  restore: 4,
  // A drill takes a restore point (lib/restore) into a scratch master.
  drill: 5,
  commands: 5,
  archive: 5,
};

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(rel)));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

async function importsOf(file: string): Promise<string[]> {
  const text = await fs.readFile(path.join(REPO_ROOT, file), 'utf8');
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.[^']+)'/g)].map((m) =>
    path.normalize(path.join(path.dirname(file), m[1]!)).replace(/\.js$/, '.ts'),
  );
}

let graph: Map<string, string[]>;

beforeAll(async () => {
  const files = (await Promise.all(['bin', 'lib', 'jobs', 'bench', 'scripts', 'test'].map(sources))).flat();
  graph = new Map(await Promise.all(files.map(async (f) => [f, await importsOf(f)] as const)));
});

const folderOf = (file: string) => file.split(path.sep)[1]!;

describe('layout', () => {
  test('lib/ holds only folders, each a known layer with a README saying what lives there', async () => {
    expect(graph.size).toBeGreaterThan(100);
    const entries = await fs.readdir(path.join(REPO_ROOT, 'lib'), { withFileTypes: true });
    expect(entries.filter((e) => !e.isDirectory()).map((e) => e.name)).toEqual([]);
    for (const e of entries) {
      expect({ folder: e.name, known: e.name in LAYER }).toEqual({ folder: e.name, known: true });
      await expect(fs.access(path.join(REPO_ROOT, 'lib', e.name, 'README.md'))).resolves.toBeUndefined();
    }
  });

  test('a lib folder imports only lower layers (or itself), never jobs, bin, test or bench', () => {
    const wrong: string[] = [];
    for (const [file, deps] of graph) {
      if (!file.startsWith(`lib${path.sep}`)) continue;
      const from = folderOf(file);
      for (const dep of deps) {
        if (!dep.startsWith(`lib${path.sep}`)) wrong.push(`${file} → ${dep}`);
        else if (folderOf(dep) !== from && !(LAYER[folderOf(dep)]! < LAYER[from]!)) wrong.push(`${file} → ${dep}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('no job imports another job (only the registry imports them all)', () => {
    const wrong = [...graph].flatMap(([file, deps]) =>
      file.startsWith(`jobs${path.sep}`) && file !== path.join('jobs', 'index.ts')
        ? deps.filter((d) => d.startsWith(`jobs${path.sep}`)).map((d) => `${file} → ${d}`)
        : [],
    );
    expect(wrong).toEqual([]);
  });

  test('no import cycle anywhere in the tree', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].join(' → '));
        return;
      }
      state.set(file, 'open');
      for (const dep of graph.get(file) ?? []) visit(dep, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });

  test('version knowledge lives only in lib/moosefs/generations/: no generation name, MFSM magic or listen key elsewhere', async () => {
    const wrong: string[] = [];
    const adapters = path.join('lib', 'moosefs', 'generations') + path.sep;
    for (const file of graph.keys()) {
      if (!(file.startsWith(`lib${path.sep}`) || file.startsWith(`jobs${path.sep}`)) || file.startsWith(adapters))
        continue;
      for (const { line, text } of await stringsIn(file)) {
        const why = versionKnowledge(text);
        // The config schema lists the names an operator may write (core imports no adapter; a unit test keeps both equal).
        const schema = file === path.join('lib', 'core', 'config.ts') && why === 'generation name';
        if (why && !schema) wrong.push(`${file}:${line}: ${why} ${JSON.stringify(text)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('the version-knowledge rule catches what it is meant to', () => {
    const caught = ['3.0', '1.6.5', '4', 'MFSM 2.0', 'x MFSM NEW', 'MATOCU_LISTEN_PORT', 'MATOML_LISTEN_HOST'];
    expect(caught.filter((t) => !versionKnowledge(t))).toEqual([]);
    expect(['3.0.117', 'MATOCL_INFO', 'mfsmaster', '14'].filter((t) => versionKnowledge(t))).toEqual([]);
  });
});

/** Why a string literal is version knowledge (a generation name, an image magic, a listen-port key), or undefined. */
function versionKnowledge(text: string): string | undefined {
  if ((GENERATION_NAMES as readonly string[]).includes(text)) return 'generation name';
  if (text.includes('MFSM ')) return 'image magic';
  if (/\bMATO(?:CL|CS|CU|ML)_LISTEN_(?:HOST|PORT)\b/.test(text)) return 'listen key';
  return undefined;
}

/** Every string literal of a source file (template pieces too; comments are not code), with its line. */
async function stringsIn(file: string): Promise<{ line: number; text: string }[]> {
  const text = await fs.readFile(path.join(REPO_ROOT, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: { line: number; text: string }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) {
      out.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: node.text });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}
