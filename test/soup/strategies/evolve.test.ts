import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecipeSpace, parseEvolveYaml } from '../../../src/soup/strategies/evolve.js';

const TEXT = `merge_method: ties
base_model: base.safetensors
models:
  - model: a.safetensors
    parameters:
      weight: {min: 0, max: 2}
      density: [{min: 0.2, max: 1}, 0.5]
  - model: b.safetensors
    parameters:
      weight: [{filter: mlp, value: {min: 0.5, max: 1}}, {value: 1}]
      density: 1
parameters:
  lambda: {min: 0.5, max: 1.5}
`;

describe('evolve recipes', () => {
  it('finds every range, global, per model, in gradients and in filter entries, with its path', () => {
    const recipe = parseEvolveYaml(TEXT, 'search.yml');
    assert.deepEqual(
      recipe.ranges.map(({ path, parameter, min, max }) => ({ path, parameter, min, max })),
      [
        { path: 'parameters.lambda', parameter: 'lambda', min: 0.5, max: 1.5 },
        { path: 'models[0].parameters.weight', parameter: 'weight', min: 0, max: 2 },
        { path: 'models[0].parameters.density[0]', parameter: 'density', min: 0.2, max: 1 },
        { path: 'models[1].parameters.weight[0].value', parameter: 'weight', min: 0.5, max: 1 },
      ],
    );
    assert.equal(recipe.middle.method.name, 'ties');
    assert.deepEqual(recipe.middle.models[0]!.parameters, { weight: 1, density: [0.6, 0.5] });
  });

  it('maps points of the unit cube onto the ranges, clipped, and decodes them into checked recipes', () => {
    const space = new RecipeSpace(parseEvolveYaml(TEXT, 'search.yml'), ['h'], 0);
    assert.deepEqual(space.start, [0.5, 0.5, 0.5, 0.5]);
    const candidate = space.decode(Float64Array.of(0, 1, -3, 0.5));
    assert.deepEqual(candidate.values, [0.5, 2, 0.2, 0.75]);
    assert.deepEqual(candidate.config.parameters, { lambda: 0.5 });
    assert.deepEqual(candidate.config.models[1]!.parameters.weight, [{ filter: 'mlp', value: 0.75 }, { value: 1 }]);
    assert.equal(space.key(candidate), space.key(space.decode(Float64Array.of(-1, 1, -3, 0.5))), 'clipped to the same values, the same key');
    assert.notEqual(space.key(candidate), new RecipeSpace(parseEvolveYaml(TEXT, 'search.yml'), ['other'], 0).key(candidate), 'other ingredients, another key');
  });
});
