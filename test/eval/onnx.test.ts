import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';

const srcRoot = new URL('../../../src/', import.meta.url).pathname;

async function sources(folder = srcRoot): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

describe('loading ONNX Runtime', () => {
  it('happens in exactly one module, and only from a dynamic import', async () => {
    const importers = [];
    for (const file of await sources()) if ((await readFile(file, 'utf8')).includes("'onnxruntime-node'")) importers.push(path.relative(srcRoot, file));
    assert.deepEqual(importers, ['eval/onnx.ts']);
    const text = await readFile(path.join(srcRoot, 'eval', 'onnx.ts'), 'utf8');
    assert.doesNotMatch(text, /^import (?!type)[^;]*'onnxruntime-node'/m, 'no static value import');
  });

  it('is never reached statically from the CLI, so commands that do not score ONNX models do not load it', async () => {
    for (const file of await sources()) {
      if (file.endsWith(path.join('eval', 'onnx.ts'))) continue;
      const text = await readFile(file, 'utf8');
      assert.doesNotMatch(text, /^import [^;]*'[^']*eval\/onnx\.js'/m, `${path.relative(srcRoot, file)} imports eval/onnx.ts statically`);
    }
  });
});
