import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';

const srcRoot = new URL('../../src/', import.meta.url).pathname;

async function sources(folder = srcRoot): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** Module specifiers a file imports statically (`import ... from`, `export ... from`, bare `import '...'`). */
async function staticImports(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s(?:[^'"]*?\sfrom\s)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

/** Every source file reachable from `entry` through static imports. */
async function reachable(entry: string): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of await staticImports(file)) {
      if (specifier.startsWith('.')) queue.push(path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts'));
    }
  }
  return seen;
}

const relative = (file: string) => path.relative(srcRoot, file);

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
    assert.deepEqual(main.sort(), ['cli/main.ts', 'errors.ts', 'one-line.ts', 'version.ts'], '--help loads no command module');
  });

  it('keeps the terminal out of library code', async () => {
    for (const file of await sources()) {
      const name = relative(file);
      if (name.startsWith('cli/') || name.startsWith('report/')) continue;
      const text = await readFile(file, 'utf8');
      assert.doesNotMatch(text, /console\.|process\.(stdout|stderr)|from 'chalk'|from 'cli-progress'|process\.exit/, name);
    }
  });

  it('gives candidates one home that evaluators use without reaching into strategies', async () => {
    for (const file of await sources(path.join(srcRoot, 'eval'))) {
      const fromSoup = (await staticImports(file)).filter((specifier) => specifier.includes('/soup/'));
      assert.deepEqual(fromSoup.filter((specifier) => specifier !== '../soup/candidate.js'), [], relative(file));
    }
    const candidate = (await staticImports(path.join(srcRoot, 'soup', 'candidate.ts'))).filter((specifier) => specifier.includes('/eval/'));
    assert.deepEqual(candidate, []);
  });
});
