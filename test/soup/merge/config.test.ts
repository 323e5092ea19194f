import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { mergekitYaml, parseMergeYaml } from '../../../src/soup/merge/config.js';

const recipe = (lines: string[]) => lines.join('\n');
const tiesRecipe = (density: string) =>
  recipe([
    'merge_method: ties',
    'base_model: base.safetensors',
    'models:',
    '  - model: a.safetensors',
    '    parameters: {weight: 1, density: 0.5}',
    '  - model: b.safetensors',
    `    parameters: {weight: 0.5, density: ${density}}`,
    'parameters:',
    '  normalize: true',
    'dtype: bfloat16',
  ]);

describe('mergekit recipes', () => {
  it('reads merge_method, base_model, models, parameters and dtype', () => {
    const config = parseMergeYaml(tiesRecipe('0.3'), 'r.yml');
    assert.equal(config.method.name, 'ties');
    assert.equal(config.base, 'base.safetensors');
    assert.deepEqual(config.models, [
      { model: 'a.safetensors', parameters: { weight: 1, density: 0.5 } },
      { model: 'b.safetensors', parameters: { weight: 0.5, density: 0.3 } },
    ]);
    assert.deepEqual(config.parameters, { normalize: true });
    assert.equal(config.dtype, 'BF16');
  });

  it("leaves the base out of the models when mergekit's recipe lists it there too", () => {
    const config = parseMergeYaml(
      recipe(['merge_method: task_arithmetic', 'base_model: base', 'models:', '  - model: base', '  - model: a', '    parameters: {weight: 1}']),
      'r.yml',
    );
    assert.deepEqual(
      config.models.map((entry) => entry.model),
      ['a'],
    );
  });

  it('averages the base into a linear merge when the recipe lists it or a global weight gives it one, as mergekit does', () => {
    const listed = parseMergeYaml(
      recipe([
        'merge_method: linear',
        'base_model: base',
        'models:',
        '  - model: a',
        '    parameters: {weight: 0.8}',
        '  - model: base',
        '    parameters: {weight: 0.2}',
      ]),
      'r.yml',
    );
    assert.deepEqual(
      listed.models.map((entry) => [entry.model, entry.parameters.weight]),
      [
        ['a', 0.8],
        ['base', 0.2],
      ],
    );
    const global = parseMergeYaml(recipe(['merge_method: linear', 'base_model: base', 'models:', '  - model: a', 'parameters: {weight: 1}']), 'r.yml');
    assert.deepEqual(
      global.models.map((entry) => entry.model),
      ['a', 'base'],
    );
    const unweighted = parseMergeYaml(recipe(['merge_method: linear', 'base_model: base', 'models:', '  - model: a', '    parameters: {weight: 1}']), 'r.yml');
    assert.deepEqual(
      unweighted.models.map((entry) => entry.model),
      ['a'],
    );
  });

  it('names the model and parameter of a value out of range', () => {
    assert.throws(() => parseMergeYaml(tiesRecipe('1.5'), 'r.yml'), { message: 'r.yml: models[1].parameters.density: must be in (0, 1]' });
    assert.throws(() => parseMergeYaml(tiesRecipe('[0.5, 0]'), 'r.yml'), { message: 'r.yml: models[1].parameters.density[1]: must be in (0, 1]' });
    assert.throws(() => parseMergeYaml(tiesRecipe('[{filter: mlp, value: 2}]'), 'r.yml'), {
      message: 'r.yml: models[1].parameters.density[0].value: must be in (0, 1]',
    });
    assert.throws(() => parseMergeYaml(tiesRecipe('high'), 'r.yml'), { message: 'r.yml: models[1].parameters.density: must be a number' });
  });

  it('says which keys are not supported, naming the key', () => {
    assert.throws(() => parseMergeYaml(recipe(['merge_method: linear', 'slices: []']), 'r.yml'), {
      message: 'r.yml: slices: must be a non-empty list of {sources, parameters}',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: linear', 'chat_template: chatml', 'models: []']), 'r.yml'), {
      message: 'r.yml: chat_template: not supported (soup reads merge_method, base_model, models, slices, parameters, dtype, out_dtype, tokenizer_source)',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: linear', 'models:', '  - model: a', '    lora: x']), 'r.yml'), {
      message: 'r.yml: models[0].lora: not supported (a model entry has model and parameters)',
    });
  });

  it('says which method is unknown, which base is missing and which parameter is required', () => {
    assert.throws(() => parseMergeYaml(recipe(['merge_method: frankenstein', 'models: []']), 'r.yml'), {
      message:
        'r.yml: merge_method: "frankenstein" is not supported (soup has linear, task_arithmetic, ties, dare_linear, dare_ties, slerp, model_stock, breadcrumbs, breadcrumbs_ties, della, della_linear, sce, karcher, nuslerp, multislerp, nearswap, arcee_fusion, passthrough)',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: ties', 'models:', '  - model: a']), 'r.yml'), {
      message: 'r.yml: base_model: is required: ties adds to it',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: ties', 'base_model: b', 'models:', '  - model: a']), 'r.yml'), {
      message: 'r.yml: models[0].parameters.weight: is required',
    });
    assert.throws(
      () => parseMergeYaml(recipe(['merge_method: slerp', 'base_model: b', 'models:', '  - model: a', '  - model: c', 'parameters: {t: 0.5}']), 'r.yml'),
      {
        message: 'r.yml: models: slerp takes exactly 1 model besides base_model; got 2',
      },
    );
    assert.throws(() => parseMergeYaml(recipe(['merge_method: model_stock', 'base_model: b', 'models:', '  - model: a']), 'r.yml'), {
      message: 'r.yml: models: model_stock takes at least 2 models besides base_model; got 1',
    });
  });

  it('reads slices with their sources, layer ranges and parameters, and checks them', () => {
    const config = parseMergeYaml(
      recipe([
        'merge_method: slerp',
        'base_model: a',
        'slices:',
        '  - sources: [{model: a, layer_range: [0, 2]}, {model: b, layer_range: [0, 2]}]',
        '    parameters: {t: [0, 1]}',
      ]),
      'r.yml',
    );
    assert.deepEqual(config.slices, [
      {
        sources: [
          { model: 'a', layerRange: [0, 2], parameters: {} },
          { model: 'b', layerRange: [0, 2], parameters: {} },
        ],
        parameters: { t: [0, 1] },
      },
    ]);
    assert.deepEqual(
      config.models.map((entry) => entry.model),
      ['b'],
    );
    assert.throws(() => parseMergeYaml(recipe(['merge_method: passthrough', 'slices:', '  - sources: [{model: a, layer_range: [3, 1]}]']), 'r.yml'), {
      message: 'r.yml: slices[0].sources[0].layer_range: must be [from, to] with whole numbers from < to',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: linear', 'slices:', '  - sources: [{model: a, layer_range: [0, 1]}]']), 'r.yml'), {
      message: 'r.yml: slices[0].sources[0].parameters.weight: is required',
    });
  });

  it("checks the added methods' recipes as mergekit defines them", () => {
    assert.throws(() => parseMergeYaml(recipe(['merge_method: nuslerp', 'models:', '  - model: a', '    parameters: {weight: 1}']), 'r.yml'), {
      message: 'r.yml: models: nuslerp takes exactly 2 models besides base_model; got 1',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: nearswap', 'base_model: b', 'models:', '  - model: a']), 'r.yml'), {
      message: 'r.yml: parameters.t: is required',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: sce', 'base_model: b', 'models:', '  - model: a', 'parameters: {select_topk: 0}']), 'r.yml'), {
      message: 'r.yml: parameters.select_topk: must be in (0, 1]',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: karcher', 'models:', '  - model: a', 'parameters: {max_iter: 2.5}']), 'r.yml'), {
      message: 'r.yml: parameters.max_iter: must be a whole number',
    });
    const karcher = parseMergeYaml(recipe(['merge_method: karcher', 'base_model: b', 'models:', '  - model: a', '  - model: c']), 'r.yml');
    assert.deepEqual(
      karcher.models.map((entry) => entry.model),
      ['a', 'c', 'b'],
    );
    const della = parseMergeYaml(
      recipe(['merge_method: della', 'base_model: b', 'models:', '  - model: a', '    parameters: {weight: 1, density: 0.5, epsilon: 0.1}']),
      'r.yml',
    );
    assert.deepEqual(
      della.models.map((entry) => entry.model),
      ['a'],
    );
  });

  it('refuses parameters the method does not take, and per-model values of global ones', () => {
    assert.throws(() => parseMergeYaml(recipe(['merge_method: linear', 'models:', '  - model: a', '    parameters: {weight: 1, density: 0.5}']), 'r.yml'), {
      message: 'r.yml: models[0].parameters.density: not a parameter of this method (it takes weight, normalize)',
    });
    assert.throws(() => parseMergeYaml(recipe(['merge_method: linear', 'models:', '  - model: a', '    parameters: {weight: 1, normalize: false}']), 'r.yml'), {
      message: 'r.yml: models[0].parameters.normalize: applies to the whole merge: set it in the global parameters',
    });
    assert.throws(
      () =>
        parseMergeYaml(recipe(['merge_method: dare_ties', 'base_model: b', 'models:', '  - model: a', 'parameters: {weight: 1, rescale_mode: l2}']), 'r.yml'),
      {
        message: 'r.yml: parameters.rescale_mode: must be l1 or inverse_density',
      },
    );
  });

  it('reports YAML syntax errors with the file name', () => {
    assert.throws(() => parseMergeYaml('merge_method: [linear', 'r.yml'), {
      message: 'r.yml: not valid YAML at line 1: Flow sequence in block collection must be sufficiently indented and end with a ]',
    });
    assert.throws(() => parseMergeYaml('- 1\n- 2', 'r.yml'), { message: 'r.yml: expected a mapping with merge_method and models' });
  });

  it('writes a recipe mergekit reads back to the same recipe', () => {
    const config = parseMergeYaml(tiesRecipe('0.3'), 'r.yml');
    assert.deepEqual(parse(mergekitYaml(config)), {
      merge_method: 'ties',
      base_model: 'base.safetensors',
      models: [
        { model: 'a.safetensors', parameters: { weight: 1, density: 0.5 } },
        { model: 'b.safetensors', parameters: { weight: 0.5, density: 0.3 } },
      ],
      parameters: { normalize: true },
      dtype: 'bfloat16',
    });
  });

  it('refuses parameters named __proto__ and constructor as unknown, like any other name', () => {
    for (const name of ['__proto__', 'constructor', 'toString']) {
      const text = recipe([
        'merge_method: linear',
        'models:',
        '  - model: a.safetensors',
        `    parameters: {${name}: 1, weight: 1}`,
        '  - model: b.safetensors',
      ]);
      assert.throws(() => parseMergeYaml(text, 'r.yml'), {
        name: 'InputError',
        message: `r.yml: models[0].parameters.${name}: not a parameter of this method (it takes weight, normalize)`,
      });
    }
  });

  it('refuses a YAML alias bomb with exit 2, not as an internal error', () => {
    const lines = ['a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'];
    for (const [name, previous] of [
      ['b', 'a'],
      ['c', 'b'],
      ['d', 'c'],
    ])
      lines.push(`${name}: &${name} [${new Array(10).fill(`*${previous}`).join(', ')}]`);
    lines.push('merge_method: linear');
    assert.throws(() => parseMergeYaml(recipe(lines), 'r.yml'), {
      name: 'InputError',
      message: 'r.yml: not a recipe soup reads: Excessive alias count indicates a resource exhaustion attack',
    });
  });

  it('refuses a recipe longer than 128 KiB before parsing it, and a gradient of more than 10,000 points', () => {
    const long = `merge_method: linear\nparameters:\n  weight: [${new Array(400_000).fill('0.5').join(', ')}]\n`;
    assert.throws(() => parseMergeYaml(long, 'r.yml'), { message: `r.yml: is ${long.length} characters long; a mergekit recipe has at most 131072` });
    const gradient = recipe([
      'merge_method: linear',
      'models:',
      '  - model: a.safetensors',
      `    parameters: {weight: [${new Array(10_001).fill(1).join(',')}]}`,
      '  - model: b.safetensors',
    ]);
    assert.throws(() => parseMergeYaml(gradient, 'r.yml'), {
      message: 'r.yml: models[0].parameters.weight: a gradient of 10001 points; soup takes at most 10000',
    });
  });
});
