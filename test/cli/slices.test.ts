import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile, type RawTensor } from '../helpers/files.js';

const dir = await tempDir();

/** A three-layer Llama-like model whose every value says which model, layer and tensor it is. */
async function model(name: string, offset: number): Promise<string> {
  const folder = path.join(dir, name);
  const tensor = (value: number, count = 4): RawTensor => ({ dtype: 'F32', shape: [count], values: Array.from({ length: count }, (_, i) => value + i / 10) });
  const tensors: Record<string, RawTensor> = { 'lm_head.weight': tensor(offset + 90), 'model.embed_tokens.weight': tensor(offset + 80) };
  for (let layer = 0; layer < 3; layer++) {
    tensors[`model.layers.${layer}.mlp.weight`] = tensor(offset + layer * 10 + 1);
    tensors[`model.layers.${layer}.norm.weight`] = tensor(offset + layer * 10 + 2, 2);
  }
  tensors['model.norm.weight'] = tensor(offset + 70, 2);
  await writeSafetensorsFile(path.join(folder, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFile(path.join(folder, 'config.json'), `${JSON.stringify({ model_type: 'llama', num_hidden_layers: 3, hidden_size: 4 })}\n`);
  return folder;
}

const a = await model('a', 0);
const b = await model('b', 100);

async function recipe(name: string, lines: string[]): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

async function read(folder: string): Promise<Map<string, number[]>> {
  const checkpoint = await SafetensorsFile.open(path.join(folder, 'model.safetensors'));
  const values = new Map<string, number[]>();
  for (const tensor of checkpoint.tensors())
    values.set(
      tensor.name,
      [...(await checkpoint.readFloats(tensor.name))].map((v) => Number(v.toFixed(4))),
    );
  await checkpoint.close();
  return values;
}

describe('soup merge with slices', () => {
  it("stacks layer ranges with passthrough, renumbering the layers and updating config.json's layer count", async () => {
    const file = await recipe('stack.yml', [
      'merge_method: passthrough',
      'slices:',
      `  - sources: [{model: ${a}, layer_range: [0, 2]}]`,
      `  - sources: [{model: ${b}, layer_range: [1, 3]}]`,
    ]);
    const out = path.join(dir, 'stacked');
    const result = await runSoup(['merge', file, '-o', out, '--quiet']);
    assert.equal(result.code, 0, result.stderr);
    const values = await read(out);
    assert.deepEqual(
      [...values.keys()],
      [
        'model.embed_tokens.weight',
        'model.layers.0.mlp.weight',
        'model.layers.0.norm.weight',
        'model.layers.1.mlp.weight',
        'model.layers.1.norm.weight',
        'model.layers.2.mlp.weight',
        'model.layers.2.norm.weight',
        'model.layers.3.mlp.weight',
        'model.layers.3.norm.weight',
        'lm_head.weight',
        'model.norm.weight',
      ],
    );
    // Embeddings from the first slice's model, layers a0 a1 b1 b2, final norm and head from the last slice's.
    assert.equal(values.get('model.embed_tokens.weight')![0], 80);
    assert.deepEqual(
      ['0', '1', '2', '3'].map((layer) => values.get(`model.layers.${layer}.mlp.weight`)![0]),
      [1, 11, 111, 121],
    );
    assert.equal(values.get('lm_head.weight')![0], 190);
    assert.equal(values.get('model.norm.weight')![0], 170);
    const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8'));
    assert.equal(config.num_hidden_layers, 4);
    assert.match(await readFile(path.join(out, 'mergekit_config.yml'), 'utf8'), /layer_range:\n\s+- 1\n\s+- 3/);
  });

  it('merges the sources of a slice layer by layer, a gradient running over the slice (t = 0 at its first layer, 1 at its last)', async () => {
    const file = await recipe('linear.yml', [
      'merge_method: linear',
      'slices:',
      '  - sources:',
      `      - {model: ${a}, layer_range: [1, 3], parameters: {weight: [0, 1]}}`,
      `      - {model: ${b}, layer_range: [0, 2], parameters: {weight: 1}}`,
    ]);
    const out = path.join(dir, 'linear');
    const result = await runSoup(['merge', file, '-o', out, '--quiet']);
    assert.equal(result.code, 0, result.stderr);
    const values = await read(out);
    // Layer 0: a's layer 1 with weight 0, b's layer 0: 101. Layer 1: (a2 + b1) / 2 = (21 + 111) / 2.
    assert.equal(values.get('model.layers.0.mlp.weight')![0], 101);
    assert.equal(values.get('model.layers.1.mlp.weight')![0], 66);
    // Outside layers t = 0: weight 0 for a.
    assert.equal(values.get('lm_head.weight')![0], 190);
    assert.equal(JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8')).num_hidden_layers, 2);
  });

  it('takes base_model apart in each slice for methods that start from it (slerp from a to b over the slice)', async () => {
    const file = await recipe('slerp.yml', [
      'merge_method: slerp',
      `base_model: ${a}`,
      'slices:',
      `  - sources: [{model: ${a}, layer_range: [0, 3]}, {model: ${b}, layer_range: [0, 3]}]`,
      'parameters: {t: [0, 1]}',
    ]);
    const out = path.join(dir, 'slerp');
    const result = await runSoup(['merge', file, '-o', out, '--quiet']);
    assert.equal(result.code, 0, result.stderr);
    const values = await read(out);
    assert.deepEqual(values.get('model.layers.0.mlp.weight'), [1, 1.1, 1.2, 1.3]);
    assert.deepEqual(values.get('model.layers.2.mlp.weight'), [121, 121.1, 121.2, 121.3]);
  });

  it("refuses a layer range past the model's layers and slices of unequal lengths, naming the slice", async () => {
    const past = await recipe('past.yml', ['merge_method: passthrough', 'slices:', `  - sources: [{model: ${a}, layer_range: [2, 5]}]`]);
    let result = await runSoup(['merge', past, '-o', path.join(dir, 'past')]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `soup: error: ${past}: slices[0].sources[0].layer_range: [2, 5] is not within the 3 layers of ${a}\n`);
    const unequal = await recipe('unequal.yml', [
      'merge_method: linear',
      'slices:',
      `  - sources: [{model: ${a}, layer_range: [0, 2], parameters: {weight: 1}}, {model: ${b}, layer_range: [0, 3], parameters: {weight: 1}}]`,
    ]);
    result = await runSoup(['merge', unequal, '-o', path.join(dir, 'unequal')]);
    assert.equal(result.stderr, `soup: error: ${unequal}: slices[0]: all sources must span the same number of layers (got 2, 3)\n`);
  });
});
