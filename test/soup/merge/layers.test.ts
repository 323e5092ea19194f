import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { layerIndexFor } from '../../../src/soup/merge/layers.js';

const names = ['model.layers.0.w', 'model.layers.1.w', 'blocks_2_w', 'head.w'];

describe('layerIndexFor', () => {
  it("finds layers by mergekit's pattern, or by --layer-pattern, and names the flag when that is no regular expression", () => {
    assert.equal(layerIndexFor(names, undefined).layers, 2);
    assert.equal(layerIndexFor(names, 'blocks_(\\d+)_').layers, 3);
    assert.throws(() => layerIndexFor(names, '('), {
      message: '--layer-pattern: not a regular expression: Invalid regular expression: /(/: Unterminated group',
    });
  });
});
