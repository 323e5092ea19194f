import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withLayerCount } from '../../../src/soup/merge/slices.js';

describe("a sliced merge's config.json", () => {
  it("gets the output's layer count under every key the model uses, other fields kept", () => {
    assert.deepEqual(JSON.parse(withLayerCount('{"model_type": "llama", "num_hidden_layers": 32}', 48)!), { model_type: 'llama', num_hidden_layers: 48 });
    assert.deepEqual(JSON.parse(withLayerCount('{"n_layer": 12, "num_layers": 12}', 6)!), { n_layer: 6, num_layers: 6 });
  });

  it('is left as it is when it names no layer count or is not JSON', () => {
    assert.equal(withLayerCount('{"hidden_size": 8}', 4), undefined);
    assert.equal(withLayerCount('not json', 4), undefined);
  });
});
