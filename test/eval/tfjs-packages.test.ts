import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as core from '@tensorflow/tfjs-core';
import { loadGradients, useBackend } from '../../src/eval/tfjs.js';

describe('TF.js from its split packages', () => {
  it('gives tensors the chained methods tfjs-layers calls, as the umbrella package would', async () => {
    await useBackend('cpu');
    const x = core.tensor([1, 5, 2, 4], [4]);
    const methods = x as unknown as Record<string, (...args: unknown[]) => core.Tensor>;
    assert.deepEqual(methods.reshape!([2, 2]).shape, [2, 2]);
    assert.deepEqual(methods.as2D!(1, 4).shape, [1, 4]);
    assert.deepEqual(Array.from(methods.mul!(core.scalar(2)).dataSync()), [2, 10, 4, 8]);
    assert.deepEqual(Array.from(methods.argMax!().dataSync()), [1]);
    assert.deepEqual(methods.concat!(x).shape, [8]);
    assert.equal(methods.toInt!().dtype, 'int32');
  });

  it('has gradient functions for every op once gradients are asked for, as the umbrella package registered them', async () => {
    await useBackend('cpu');
    await loadGradients();
    // Sum and Conv2D have no gradient in tfjs-core's or tfjs-layers' own bundles.
    const a = core.variable(
      core.tensor([
        [1, 2],
        [3, 4],
      ]),
    );
    const { value, grads } = core.variableGrads(() => core.sum(core.relu(core.matMul(a, a))));
    assert.equal(value.dataSync()[0], 54);
    assert.deepEqual(Array.from(grads[a.name]!.dataSync()), [7, 11, 9, 13]);
    const x = core.variable(core.ones([1, 4, 4, 1]));
    const conv = core.variableGrads(() => core.mean(core.conv2d(x as core.Tensor4D, core.ones([3, 3, 1, 1]), 1, 'same')));
    assert.deepEqual(conv.grads[x.name]!.shape, [1, 4, 4, 1]);
    core.dispose([a, x, value, conv.value, ...Object.values(grads), ...Object.values(conv.grads)]);
  });
});
