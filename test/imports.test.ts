// The import graph of the whole tree, type-only imports included: no cycles anywhere, src/ layered
// in one direction, and the plugin's graph free of the daemon's and the CLI's dependencies.
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const TREES = ['cmd', 'src', 'daemon', 'ctl', 'test', 'scripts', 'bench'];

/**
 * src/ from the bottom up: a module may import only modules listed before it. errors and
 * native-call import nothing of ours; defaults is what the plugin's fast path needs.
 */
const SRC_LAYERS = ['errors', 'json-syntax', 'defaults', 'native-call', 'address', 'cni', 'config', 'invocation', 'protocol', 'client', 'plugin'];

/** npm packages the plugin's graph may reach (validation parses addresses with ipaddr.js). */
const PLUGIN_PACKAGES = new Set(['ipaddr.js']);

const STATIC = /^\s*(?:import|export)\s(?:[^;]*?\sfrom\s*)?['"]([^'"]+)['"]/gms;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every module specifier a file names: static imports and re-exports (type-only too) and import(). */
export function specifiersOf(text: string): string[] {
  return [...text.matchAll(STATIC), ...text.matchAll(DYNAMIC)].map((m) => m[1]!);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') && !e.name.endsWith('.d.mts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

interface Graph {
  /** file -> files of ours it imports */
  readonly edges: Map<string, Set<string>>;
  /** file -> npm packages it imports */
  readonly packages: Map<string, Set<string>>;
}

function buildGraph(): Graph {
  // This file is left out: its scanner self-test holds import statements as data.
  const files = TREES.flatMap(sourceFiles).filter((f) => f !== 'test/imports.test.ts');
  const known = new Set(files);
  const edges = new Map<string, Set<string>>();
  const packages = new Map<string, Set<string>>();
  for (const file of files) {
    const ours = new Set<string>();
    const theirs = new Set<string>();
    for (const spec of specifiersOf(readFileSync(join(ROOT, file), 'utf8'))) {
      if (spec.startsWith('.')) {
        const base = join(dirname(file), spec);
        const target = [base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base].find((c) => known.has(c));
        if (target) ours.add(target);
        else if (!/\.(json|node|cjs|go|c)$/.test(spec) && !spec.includes('build/')) throw new Error(`${file} imports ${spec}, which is no file of the tree`);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        theirs.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    edges.set(file, ours);
    packages.set(file, theirs);
  }
  return { edges, packages };
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function cyclesOf(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || edges.get(v)?.has(v)) cycles.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

function reachable(edges: Map<string, Set<string>>, from: string): Set<string> {
  const seen = new Set([from]);
  const todo = [from];
  while (todo.length > 0) for (const w of edges.get(todo.pop()!) ?? []) if (!seen.has(w) && (seen.add(w), true)) todo.push(w);
  return seen;
}

const graph = buildGraph();

describe('the import graph', () => {
  it('finds the imports it must (self-test of the scanner)', () => {
    const text = [
      "import type { A } from './a.js';",
      'import {',
      '  b,',
      "  type C } from '../c.js';",
      "export { d } from './d.js';",
      "export type * from './e.js';",
      "import './side-effect.js';",
      "const f = () => import('./f.js');",
      "// a comment that says import x from 'nowhere' is not an import",
    ].join('\n');
    expect(specifiersOf(text)).toEqual(['./a.js', '../c.js', './d.js', './e.js', './side-effect.js', './f.js']);
    expect(cyclesOf(new Map([['a', new Set(['b'])], ['b', new Set(['a'])], ['c', new Set(['c'])], ['d', new Set()]]))).toEqual([['a', 'b'], ['c']]);
  });

  it('has no cycle, type-only imports included', () => {
    expect(cyclesOf(graph.edges).map((c) => c.join(' <-> '))).toEqual([]);
  });

  it('layers src/ from defaults up to client and plugin', () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph.edges) {
      if (!file.startsWith('src/')) continue;
      const layer = SRC_LAYERS.indexOf(file.slice(4).replace(/\.ts$/, ''));
      if (layer < 0) {
        wrong.push(`${file} has no place in SRC_LAYERS (test/imports.test.ts): add it where its imports allow`);
        continue;
      }
      for (const target of targets) {
        if (!target.startsWith('src/')) wrong.push(`${file} imports ${target}: src/ imports nothing from outside src/`);
        else if (SRC_LAYERS.indexOf(target.slice(4).replace(/\.ts$/, '')) >= layer) wrong.push(`${file} imports ${target}, a layer above it`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('keeps the daemon and the CLI apart', () => {
    const crossings = [...graph.edges].flatMap(([file, targets]) =>
      [...targets]
        .filter((t) => (file.startsWith('daemon/') && t.startsWith('ctl/')) || (file.startsWith('ctl/') && t.startsWith('daemon/')))
        .map((t) => `${file} -> ${t}`),
    );
    expect(crossings).toEqual([]);
  });

  it('keeps the plugin to src/ and ipaddr.js, dynamic imports included', () => {
    const files = [...reachable(graph.edges, 'cmd/reservoir.ts')].filter((f) => f !== 'cmd/reservoir.ts');
    expect(files.filter((f) => !f.startsWith('src/'))).toEqual([]);
    expect(files).toContain('src/plugin.ts');
    const packages = new Set(files.flatMap((f) => [...graph.packages.get(f)!]));
    expect([...packages].filter((p) => !PLUGIN_PACKAGES.has(p))).toEqual([]);
  });
});
