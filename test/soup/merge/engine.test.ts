import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import type { CandidateWeights } from '../../../src/weights/candidate.js';
import { greedySoup } from '../../../src/soup/strategies/greedy.js';
import { Merge, MethodSoup } from '../../../src/soup/merge/engine.js';
import { LayerIndex } from '../../../src/soup/merge/methods/parameters.js';
import { taskArithmetic } from '../../../src/soup/merge/methods/task-arithmetic.js';
import { ties } from '../../../src/soup/merge/methods/ties.js';
import { modelStock } from '../../../src/soup/merge/methods/model-stock.js';
import { tempDir, writeSafetensorsFile, type RawTensor } from '../../helpers/files.js';

const dir = await tempDir();
const opened: SafetensorsFile[] = [];
after(() => Promise.all(opened.map((c) => c.close())));

async function checkpoint(name: string, tensors: Record<string, number[]>, extra: Record<string, RawTensor> = {}): Promise<SafetensorsFile> {
  const raw: Record<string, RawTensor> = Object.fromEntries(
    Object.entries(tensors).map(([key, values]) => [key, { dtype: 'F32', shape: [values.length], values }]),
  );
  const file = await writeSafetensorsFile(path.join(dir, `${name}-${opened.length}.safetensors`), { ...raw, ...extra });
  const result = await SafetensorsFile.open(file);
  opened.push(result);
  return result;
}

const steps = new Uint8Array(new BigInt64Array([7n]).buffer);

describe('Merge', () => {
  it('takes the top-k over the whole model with ties_scope: global, and per tensor by default', async () => {
    const base = await checkpoint('base', { a: [0, 0], b: [0, 0, 0] });
    const model = await checkpoint('m', { a: [4, 1], b: [3, 2, 0.5] });
    const plan = { method: ties, base, models: [model], modelParameters: [{ weight: 1, density: 0.4 }], seed: 0, layers: new LayerIndex(['a', 'b']) };
    const global = new Merge({ ...plan, parameters: { ties_scope: 'global' } });
    // 2 of 5 entries over the model: 4 and 3.
    assert.deepEqual([...(await global.mergeTensor('a'))], [4, 0]);
    assert.deepEqual([...(await global.mergeTensor('b'))], [3, 0, 0]);
    const perTensor = new Merge({ ...plan, parameters: {} });
    // floor(0.4 * 2) = 0 entries of a, floor(0.4 * 3) = 1 of b.
    assert.deepEqual([...(await perTensor.mergeTensor('a'))], [0, 0]);
    assert.deepEqual([...(await perTensor.mergeTensor('b'))], [3, 0, 0]);
  });

  it('copies integer tensors from the base', async () => {
    const base = await checkpoint('base', { w: [0] }, { step: { dtype: 'I64', shape: [1], bytes: steps } });
    const model = await checkpoint('m', { w: [1] }, { step: { dtype: 'I64', shape: [1], bytes: new Uint8Array(8) } });
    const merge = new Merge({
      method: taskArithmetic,
      base,
      models: [model],
      modelParameters: [{ weight: 1 }],
      parameters: {},
      seed: 0,
      layers: new LayerIndex([]),
    });
    assert.deepEqual(await merge.weights().bytes('step'), steps);
    assert.deepEqual([...(await merge.weights().floats('w'))], [1]);
  });

  it('refuses a merge that is not finite, naming the tensor', async () => {
    const base = await checkpoint('base', { w: [0, 0] });
    // Opposite deltas: cos = -1, so model_stock's t = 2 cos / (1 + cos) divides by zero.
    const models = [await checkpoint('p', { w: [1, 0] }), await checkpoint('q', { w: [-1, 0] })];
    const merge = new Merge({ method: modelStock, base, models, modelParameters: [{}, {}], parameters: {}, seed: 0, layers: new LayerIndex([]) });
    await assert.rejects(merge.mergeTensor('w'), { message: `${base.path}: tensor "w": the model_stock merge gives NaN at element 0` });
  });

  it("warns when the models' integer tensors differ", async () => {
    const base = await checkpoint('base', { w: [0] }, { step: { dtype: 'I64', shape: [1], bytes: steps } });
    const model = await checkpoint('m', { w: [1] }, { step: { dtype: 'I64', shape: [1], bytes: new Uint8Array(8) } });
    const warnings: string[] = [];
    const merge = new Merge({
      method: taskArithmetic,
      base,
      models: [model],
      modelParameters: [{ weight: 1 }],
      parameters: {},
      seed: 0,
      layers: new LayerIndex([]),
      onProgress: (event) => {
        if (event.kind === 'warning') warnings.push(event.message);
      },
    });
    await merge.copy('step');
    assert.deepEqual(warnings, [`I64 tensor "step" differs between ingredients (${model.name} differ from ${base.name}); kept ${base.name}'s values`]);
  });

  it('refuses an ingredient holding NaN, naming the file and the tensor', async () => {
    const base = await checkpoint('base', { w: [0] });
    const model = await checkpoint('nan', { w: [NaN] });
    const merge = new Merge({
      method: taskArithmetic,
      base,
      models: [model],
      modelParameters: [{ weight: 1 }],
      parameters: {},
      seed: 0,
      layers: new LayerIndex([]),
    });
    await assert.rejects(merge.mergeTensor('w'), { message: `${model.path}: tensor "w": holds NaN at element 0` });
  });
});

describe('greedy selection over a merge method', () => {
  function recordingScore(score: (w: number[]) => number) {
    const seen: number[][] = [];
    const fn = async (candidate: CandidateWeights) => {
      const w = [...(await candidate.floats('w'))];
      seen.push(w);
      return score(w);
    };
    return { fn, seen };
  }

  it('scores each candidate as the method applied to the chosen ingredients plus the candidate', async () => {
    const base = await checkpoint('base', { w: [0] });
    const list = [await checkpoint('a', { w: [0.5] }), await checkpoint('b', { w: [0.25] }), await checkpoint('c', { w: [-0.5] })];
    const soup = new MethodSoup({ method: taskArithmetic, base, parameters: { weight: 1 }, seed: 0, layers: new LayerIndex([]) }, () => ({}));
    const { fn, seen } = recordingScore(([w]) => 1 - (w! - 0.75) ** 2);
    const result = await greedySoup(list, fn, { metric: 'accuracy', direction: 'maximize', soup, single: (c) => soup.weights(c) });
    // Task arithmetic sums the deltas: a + b = 0.75 hits the optimum that a uniform soup (0.375) misses.
    assert.deepEqual(seen, [[0.5], [0.25], [-0.5], [0.75], [0.25]]);
    assert.deepEqual(
      result.soup.chosen.map((c) => c.name.replace(/-\d+$/, '')),
      ['a', 'b'],
    );
    assert.deepEqual(
      result.steps.map((step) => step.accepted),
      [true, false],
    );
    assert.equal(result.score, 1);
  });

  it('scores one ingredient alone under TIES as the base plus its trimmed delta', async () => {
    const base = await checkpoint('base', { w: [1, 1, 1, 1] });
    const list = [await checkpoint('a', { w: [3, 1.5, 0, 1] }), await checkpoint('b', { w: [1, 2, 1, 5] })];
    const soup = new MethodSoup({ method: ties, base, parameters: { weight: 1, density: 0.25 }, seed: 0, layers: new LayerIndex([]) }, () => ({}));
    const { fn, seen } = recordingScore(() => 1);
    await greedySoup(list, fn, { metric: 'accuracy', direction: 'maximize', soup, single: (c) => soup.weights(c), acceptTies: true });
    assert.deepEqual(seen, [
      [3, 1, 1, 1],
      [1, 1, 1, 5],
      [3, 1, 1, 5],
    ]);
  });
});
