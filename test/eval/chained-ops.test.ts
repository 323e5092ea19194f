import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as core from '@tensorflow/tfjs-core';
import { useBackend } from '../../src/eval/tfjs.js';

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
});
