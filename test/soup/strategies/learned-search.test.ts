import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../../src/checkpoint/discover.js';
import type { TensorInfo } from '../../../src/checkpoint/types.js';
import { MixingSpace, loadIngredients, tensorBlocks } from '../../../src/soup/strategies/learned-search.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';

const info = (name: string): TensorInfo => ({ name, shape: [1], dtype: 'F32' }) as TensorInfo;

describe('tensorBlocks', () => {
  it('groups tensors by the layer index in their names, in model order', () => {
    const names = ['embed.weight', 'model.layers.0.attn.weight', 'model.layers.0.mlp.weight', 'model.layers.1.attn.weight', 'lm_head.weight'];
    const blocks = tensorBlocks(names.map(info));
    assert.deepEqual(blocks.labels, ['embed', 'layer 0', 'layer 1', 'lm_head']);
    assert.deepEqual(
      names.map((name) => blocks.of.get(name)),
      [0, 1, 1, 2, 3],
    );
  });

  it('groups by module where names hold no layer index, and joins neighbours into --blocks groups', () => {
    const names = ['dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias', 'dense_3/kernel'];
    assert.deepEqual(tensorBlocks(names.map(info)).labels, ['dense_1', 'dense_2', 'dense_3']);
    const two = tensorBlocks(names.map(info), 2);
    assert.deepEqual(two.labels, ['dense_1 .. dense_2', 'dense_3']);
    assert.deepEqual(
      names.map((name) => two.of.get(name)),
      [0, 0, 0, 0, 1],
    );
    assert.deepEqual(tensorBlocks(names.map(info), 10).labels.length, 3, 'never more groups than blocks');
  });
});

describe('MixingSpace', () => {
  it('mixes sum(alpha * theta) in float64 with softmax alphas, leaving out diverged ingredients', async () => {
    const dir = await tempDir();
    await writeSafetensorsFile(path.join(dir, 'a.safetensors'), {
      w: { dtype: 'F32', shape: [2], values: [1, 2] },
      step: { dtype: 'I32', shape: [1], bytes: new Uint8Array(Int32Array.of(7).buffer) },
    });
    await writeSafetensorsFile(path.join(dir, 'b.safetensors'), {
      w: { dtype: 'F32', shape: [2], values: [3, 6] },
      step: { dtype: 'I32', shape: [1], bytes: new Uint8Array(Int32Array.of(7).buffer) },
    });
    await writeSafetensorsFile(path.join(dir, 'c.safetensors'), {
      w: { dtype: 'F32', shape: [2], values: [Number.NaN, 0] },
      step: { dtype: 'I32', shape: [1], bytes: new Uint8Array(Int32Array.of(7).buffer) },
    });
    const checkpoints = await openAll(await discoverIngredients([dir]));
    try {
      const { thetas, kept, diverged } = await loadIngredients(checkpoints);
      assert.deepEqual(
        kept.map((checkpoint) => checkpoint.name),
        ['a', 'b'],
      );
      assert.deepEqual(diverged, [{ name: 'c', path: path.join(dir, 'c.safetensors'), tensor: 'w', element: 0, value: 'NaN' }]);
      const space = new MixingSpace(kept, thetas, 'ingredient', undefined, ['h-a', 'h-b'], 1);
      assert.equal(space.dimension, 2);
      const mix = space.decode(Float64Array.of(1, 1));
      assert.deepEqual(mix.alphas, [[0.5, 0.5]], 'equal logits: the uniform soup');
      assert.deepEqual([...(await space.weights(mix).floats('w'))], [2, 4]);
      assert.deepEqual(space.weightsByTensor(mix, checkpoints), { w: { a: 0.5, b: 0.5, c: 0 } });
      const skewed = space.decode(Float64Array.of(0, Math.log(3)));
      assert.ok(Math.abs(skewed.alphas[0]![1]! - 0.75) < 1e-15);
      assert.deepEqual([...(await space.weights(skewed).floats('w'))], [2.5, 5]);
      assert.deepEqual([...(await space.weights(mix).bytes('step'))], [7, 0, 0, 0], 'integer tensors from the first ingredient');
      assert.equal(space.key(mix), space.key(space.decode(Float64Array.of(0, 0))), 'the same mix, the same journal key');
      assert.notEqual(space.key(mix), space.key(skewed));
    } finally {
      await closeAll(checkpoints);
    }
  });
});
