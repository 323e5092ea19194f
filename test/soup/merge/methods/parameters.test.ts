import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ties } from '../../../../src/soup/merge/methods/ties.js';
import { LayerIndex, interpolateGradient, resolveParameters, resolveValue } from '../../../../src/soup/merge/methods/parameters.js';

const names = [
  'model.embed_tokens.weight',
  'model.layers.0.self_attn.q_proj.weight',
  'model.layers.1.mlp.up_proj.weight',
  'model.layers.2.mlp.up_proj.weight',
  'lm_head.weight',
];
const layers = new LayerIndex(names);

describe('parameter values', () => {
  it('finds the layer index in Hugging Face names and counts the layers', () => {
    assert.equal(layers.layers, 3);
    assert.equal(layers.position('model.layers.1.mlp.up_proj.weight'), 0.5);
    assert.equal(layers.position('model.layers.2.mlp.up_proj.weight'), 1);
  });

  it('interpolates a gradient over the layers, tensors outside layers taking the first value', () => {
    assert.equal(resolveValue([0, 1], 'model.layers.1.mlp.up_proj.weight', layers), 0.5);
    assert.equal(resolveValue([0, 1, 0], 'model.layers.1.mlp.up_proj.weight', layers), 1);
    assert.equal(resolveValue([0.2, 1], 'lm_head.weight', layers), 0.2);
    assert.equal(interpolateGradient([0, 10, 20, 30], 0.5), 15);
    assert.equal(interpolateGradient([3], 0.7), 3);
  });

  it('takes the first filter entry that is absent, "*" or a substring of the name', () => {
    const value = [{ filter: 'self_attn', value: 0.3 }, { filter: 'mlp', value: [0, 1] }, { value: 0.9 }];
    assert.equal(resolveValue(value, 'model.layers.0.self_attn.q_proj.weight', layers), 0.3);
    assert.equal(resolveValue(value, 'model.layers.2.mlp.up_proj.weight', layers), 1);
    assert.equal(resolveValue(value, 'lm_head.weight', layers), 0.9);
    assert.equal(resolveValue([{ filter: '*', value: 0.4 }], 'lm_head.weight', layers), 0.4);
    assert.equal(resolveValue([{ filter: 'mlp', value: 0.4 }], 'lm_head.weight', layers), undefined);
  });

  it('finds the layer index as mergekit does, at the first ".N." of the name, counting layers per stack', () => {
    const net = new LayerIndex(['net.0.weight', 'net.2.weight', 'net.4.weight', 'head.weight']);
    assert.equal(net.position('net.2.weight'), 0.5);
    assert.equal(resolveValue([0, 1], 'net.4.weight', net), 1);
    assert.equal(resolveValue([0, 1], 'head.weight', net), 0);
    const stacks = new LayerIndex(['encoder.layer.0.w', 'encoder.layer.1.w', 'decoder.layer.0.w', 'decoder.layer.1.w', 'decoder.layer.2.w']);
    assert.equal(stacks.position('encoder.layer.1.w'), 1);
    assert.equal(stacks.position('decoder.layer.1.w'), 0.5);
  });

  it("gives a gradient's last value on a model of one layer, as mergekit's planner (t = 1)", () => {
    const one = new LayerIndex(['model.layers.0.mlp.weight', 'lm_head.weight']);
    assert.equal(resolveValue([0.2, 0.9], 'model.layers.0.mlp.weight', one), 0.9);
    assert.equal(resolveValue([0.2, 0.9], 'lm_head.weight', one), 0.2);
  });

  it('says which parameter is missing for which model and tensor when no filter entry matches and nothing else applies', () => {
    assert.throws(() => resolveParameters(ties.parameters, {}, [{ weight: [{ filter: 'mlp', value: 1 }] }], 'lm_head.weight', layers, ['run-a']), {
      message: 'missing required parameter weight for run-a.lm_head.weight: no filter entry matches this tensor and no value applies to every tensor',
    });
  });

  it('reads the layer index where --layer-pattern says', () => {
    const custom = new LayerIndex(['enc.block3.w', 'enc.block0.w', 'enc.block1.w', 'enc.block2.w'], /block(\d+)/);
    assert.equal(custom.layers, 4);
    assert.equal(resolveValue([0, 3], 'enc.block2.w', custom), 2);
  });

  it('lets per-model values beat global ones, which beat defaults', () => {
    const resolved = resolveParameters(ties.parameters, { density: 0.5, weight: 1 }, [{ density: 0.2 }, {}], 'lm_head.weight', layers);
    assert.deepEqual(resolved.models, [
      { weight: 1, density: 0.2 },
      { weight: 1, density: 0.5 },
    ]);
    assert.deepEqual(resolved.global, { lambda: 1, normalize: true, rescale: false, int8_mask: false, ties_scope: 'tensor' });
  });

  it("falls back to the global value where a model's filter list has no entry for the tensor", () => {
    const resolved = resolveParameters(ties.parameters, { weight: 1, density: 0.5 }, [{ density: [{ filter: 'mlp', value: 0.1 }] }], 'lm_head.weight', layers);
    assert.equal(resolved.models[0]!.density, 0.5);
  });

  it('counts the layers of a model with 300,000 tensor names', () => {
    const names = Array.from({ length: 300_000 }, (_, i) => `model.layers.${i % 48}.mlp.w${i}`);
    assert.equal(new LayerIndex(names).layers, 48);
  });
});
