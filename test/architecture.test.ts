import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';

const srcRoot = new URL('../../src/', import.meta.url).pathname;
const relative = (file: string) => path.relative(srcRoot, file);

async function sources(folder = srcRoot): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

interface Import {
  specifier: string;
  /** Erased by the compiler (`import type`, or every name marked `type`): nothing is loaded at run time. */
  typeOnly: boolean;
}

/** What a file imports statically (`import ... from`, `export ... from`, bare `import '...'`). */
async function importsOf(file: string): Promise<Import[]> {
  const text = await readFile(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s(type\s)?(?:([^'"]*?)\sfrom\s)?['"]([^'"]+)['"]/gm)].map((m) => {
    const names = /^\s*\{([^}]*)\}\s*$/
      .exec(m[2] ?? '')?.[1]
      ?.split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    const typeOnly = m[1] !== undefined || (names !== undefined && names.length > 0 && names.every((name) => name.startsWith('type ')));
    return { specifier: m[3]!, typeOnly };
  });
}

async function staticImports(file: string): Promise<string[]> {
  return (await importsOf(file)).map((entry) => entry.specifier);
}

const resolveSource = (file: string, specifier: string): string => path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts');

/**
 * Every source file reachable from `entry` through static imports. With `runtime`, only what is loaded
 * when the code runs (type-only imports are erased), packages and node: built-ins included by name.
 */
async function reachable(entry: string, runtime = false): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (!path.isAbsolute(file)) continue;
    for (const { specifier, typeOnly } of await importsOf(file)) {
      if (specifier.startsWith('.')) {
        if (!(runtime && typeOnly)) queue.push(resolveSource(file, specifier));
      } else if (runtime && !typeOnly) seen.add(specifier);
    }
  }
  return seen;
}

/**
 * The layers, top to bottom: a module imports its own layer or those below, never one above.
 * weights/ and recipe/ are the contracts soup/ and eval/ (and report/, cli/) share; they are made of
 * checkpoint/'s types (Checkpoint, TensorInfo, the dtypes), so they sit right above checkpoint/,
 * which imports neither. The modules at the top of src/ (errors, shell, progress, version...) are the floor.
 */
const LAYERS = ['cli', 'report', 'soup', 'eval', 'data', 'weights|recipe', 'checkpoint', '(root)'];

function layerOf(name: string): number {
  const top = name.includes('/') ? name.slice(0, name.indexOf('/')) : '(root)';
  const layer = LAYERS.findIndex((entry) => entry.split('|').includes(top));
  if (layer === -1) throw new Error(`src/${name} is in no layer: add its folder to LAYERS`);
  return layer;
}

/** Each source file and the source files it imports (type-only imports included: a type is a dependency too). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sources()) {
    const targets = (await staticImports(file)).filter((specifier) => specifier.startsWith('.'));
    graph.set(
      relative(file),
      targets.map((specifier) => relative(resolveSource(file, specifier))),
    );
  }
  return graph;
}

/** The circles of imports: strongly connected components of more than one module (Tarjan's algorithm), or a module importing itself. */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node)!, index.get(next)!));
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component.sort());
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return found;
}

describe('architecture', () => {
  it('loads TensorFlow.js from exactly one module', async () => {
    const importers = [];
    for (const file of await sources()) if ((await readFile(file, 'utf8')).includes("'@tensorflow/")) importers.push(relative(file));
    assert.deepEqual(importers, ['eval/tfjs.ts']);
  });

  it('loads ONNX Runtime from exactly one module, by a dynamic import that no other module reaches statically', async () => {
    const importers = [];
    for (const file of await sources()) if ((await readFile(file, 'utf8')).includes("'onnxruntime-node'")) importers.push(relative(file));
    assert.deepEqual(importers, ['eval/onnx.ts']);
    assert.doesNotMatch(await readFile(path.join(srcRoot, 'eval', 'onnx.ts'), 'utf8'), /^import (?!type)[^;]*'onnxruntime-node'/m);
    for (const command of ['uniform', 'inspect', 'greedy', 'eval', 'compare']) {
      const files = [...(await reachable(path.join(srcRoot, 'cli', 'commands', `${command}.ts`)))].map(relative);
      assert.ok(!files.includes('eval/onnx.ts'), `${command} reaches eval/onnx.ts statically`);
    }
  });

  it('never loads TensorFlow.js for commands that do not evaluate', async () => {
    for (const command of ['uniform', 'inspect']) {
      const files = [...(await reachable(path.join(srcRoot, 'cli', 'commands', `${command}.ts`)))].map(relative);
      assert.ok(!files.includes('eval/tfjs.ts'), `${command} reaches eval/tfjs.ts`);
    }
    const main = [...(await reachable(path.join(srcRoot, 'cli', 'main.ts')))].map(relative);
    assert.deepEqual(
      main.sort(),
      ['cli/flags.ts', 'cli/main.ts', 'cli/program.ts', 'errors.ts', 'one-line.ts', 'version.ts'],
      '--help loads no command module',
    );
  });

  it('keeps the terminal out of library code', async () => {
    for (const file of await sources()) {
      const name = relative(file);
      if (name.startsWith('cli/') || name.startsWith('report/')) continue;
      const text = await readFile(file, 'utf8');
      assert.doesNotMatch(text, /console\.|process\.(stdout|stderr)|from 'chalk'|from 'cli-progress'|process\.exit/, name);
    }
  });

  it('gives candidates one home below both the strategies and the evaluators', async () => {
    for (const file of await sources(path.join(srcRoot, 'eval'))) {
      assert.deepEqual(
        (await staticImports(file)).filter((specifier) => specifier.includes('/soup/')),
        [],
        relative(file),
      );
    }
    const candidate = (await staticImports(path.join(srcRoot, 'weights', 'candidate.ts'))).filter((specifier) => /\/(soup|eval)\//.test(specifier));
    assert.deepEqual(candidate, []);
  });

  it('points every import down the layers: cli, report, soup, eval, data, weights and recipe, checkpoint, the root modules', async () => {
    const upward: string[] = [];
    for (const [file, targets] of await importGraph()) {
      for (const target of targets) if (layerOf(target) < layerOf(file)) upward.push(`${file} -> ${target}`);
    }
    assert.deepEqual(upward, []);
  });

  it('has no circle of imports', async () => {
    assert.deepEqual(circles(await importGraph()), []);
  });

  it('finds a circle and an import up when there is one', () => {
    const graph = new Map([
      ['checkpoint/writer.ts', ['checkpoint/pytorch/writer.ts', 'errors.ts']],
      ['checkpoint/pytorch/writer.ts', ['checkpoint/writer.ts']],
      ['data/npz.ts', ['data/npz.ts']],
      ['errors.ts', []],
    ]);
    assert.deepEqual(circles(graph), [['checkpoint/pytorch/writer.ts', 'checkpoint/writer.ts'], ['data/npz.ts']]);
    assert.ok(layerOf('report/card.ts') < layerOf('soup/write.ts'));
    assert.ok(layerOf('soup/candidate.ts') < layerOf('eval/pool.ts'));
    assert.ok(layerOf('checkpoint/types.ts') > layerOf('weights/candidate.ts'));
    assert.throws(() => layerOf('misc/thing.ts'), /src\/misc\/thing.ts is in no layer/);
  });

  it('keeps writers and the process spawner out of soup inspect', async () => {
    const loaded = [...(await reachable(path.join(srcRoot, 'cli', 'commands', 'inspect.ts'), true))].map((file) =>
      path.isAbsolute(file) ? relative(file) : file,
    );
    assert.ok(
      loaded.includes('checkpoint/discover.ts') && loaded.includes('node:fs/promises'),
      'the walk follows inspect into the readers and the packages they load',
    );
    assert.deepEqual(loaded.filter((name) => /(^|\/|-)writer?\.ts$|^(node:)?child_process$/.test(name)).sort(), []);
  });
});
