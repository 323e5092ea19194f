import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runSoup } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';
import { checkWithOnnx } from '../helpers/onnx.js';

/** Models exported by Debian's torch exactly as users export them (test/helpers/torch_export.py). */
const dir = await tempDir('soup-torch-onnx-');
execFileSync('/usr/bin/python3', [fileURLToPath(new URL('../../../test/helpers/torch_export.py', import.meta.url)), dir], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
const at = (name: string): string => path.join(dir, name);

describe('models exported by torch.onnx.export', () => {
  it('refuses the default export of a Conv+BatchNorm network, whose BatchNorm was folded into the Conv weights', async () => {
    const result = await runSoup(['uniform', at('fused-a.onnx'), at('fused-b.onnx'), '-o', at('fused-soup.onnx')]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^soup: error: .*fused-a\.onnx: has Conv weights with BatchNorm folded in \(onnx::Conv_\d+, onnx::Conv_\d+, and no BatchNormalization node\)/,
    );
  });

  it('soups exports that keep the state-dict names, and scores the state dict itself through one of them', async () => {
    const soup = at('kept-soup.onnx');
    const souped = await runSoup(['uniform', at('kept-a.onnx'), at('kept-b.onnx'), '-o', soup]);
    assert.equal(souped.code, 0, souped.stderr);
    checkWithOnnx(soup);
    const result = await runSoup(['eval', at('a.safetensors'), '--val', at('data.npz'), '--model', at('kept-b.onnx'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { metrics: { accuracy: number } }).metrics.accuracy, 1, "the labels are model a's own predictions");
    assert.equal(
      result.stderr,
      `soup: warning: 1 tensor(s) of ${at('a.safetensors')} are not used by ${at('kept-b.onnx')} and are ignored when scoring: bn.num_batches_tracked\n`,
    );
  });

  it('greedy-soups torch.save state dicts scored through one ONNX export, and writes a .pt that torch loads', async () => {
    const out = at('greedy-soup.pt');
    const result = await runSoup(['greedy', at('runs'), '--val', at('data.npz'), '--model', at('kept-a.onnx'), '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout) as { backend: string; ingredients: { name: string; score: number }[]; chosen: string[]; score: number };
    assert.match(doc.backend, /^onnxruntime \(cpu, \d+ threads?\)$/);
    assert.deepEqual(
      doc.ingredients.map((ingredient) => [ingredient.name, ingredient.score]).find(([name]) => name === 'a'),
      ['a', 1],
      'model a scores its own predictions perfectly',
    );
    assert.equal(doc.chosen[0], 'a');
    const loaded = execFileSync('/usr/bin/python3', ['-c', 'import sys, torch; sd = torch.load(sys.argv[1], weights_only=True); print(sorted(sd))', out], {
      encoding: 'utf8',
    });
    assert.match(loaded, /'bn\.num_batches_tracked', 'bn\.running_mean'/);
  });
});
