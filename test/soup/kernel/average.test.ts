import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addScaled, indexOfNonFinite } from '../../../src/soup/kernel/average.js';

describe('average', () => {
  it('adds scaled arrays into a float64 sum', () => {
    const sum = new Float64Array(3);
    addScaled(sum, Float32Array.from([1, 2, 3]));
    addScaled(sum, Float32Array.from([3, 4, 5]), 2);
    assert.deepEqual([...sum], [7, 10, 13]);
  });

  it('refuses arrays of different lengths', () => {
    assert.throws(() => addScaled(new Float64Array(2), [1, 2, 3]), RangeError);
  });

  it('finds the first NaN or infinity', () => {
    assert.equal(indexOfNonFinite([1, 2, 3]), -1);
    assert.equal(indexOfNonFinite([1, NaN, Infinity]), 1);
    assert.equal(indexOfNonFinite([0, -Infinity]), 1);
  });
});
