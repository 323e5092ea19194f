import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { datasetFromArrays, loadDataset } from '../../src/data/dataset.js';
import { InputError } from '../../src/errors.js';
import { TfjsEvaluator } from '../../src/eval/tfjs.js';
import { ingredientWeights } from '../../src/weights/candidate.js';

const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const ingredient = await TfjsCheckpoint.open(path.join(fixtures, 'ingredients', 'lr1e-4-s1'));
const other = await TfjsCheckpoint.open(path.join(fixtures, 'ingredients', 'lr3e-2-s8'));
const val = await loadDataset(path.join(fixtures, 'data', 'val'));
after(() => Promise.all([ingredient.close(), other.close()]));

const create = (backend: 'wasm' | 'cpu', dataset = val) =>
  TfjsEvaluator.create({ modelTopology: ingredient.modelJson.modelTopology, modelSource: 'model.json', dataset, backend, batchSize: 300 });

describe('TfjsEvaluator', () => {
  it('scores a fixture ingredient on the validation set, and wasm and cpu agree', async () => {
    const wasm = await create('wasm');
    assert.equal(wasm.description, 'tfjs (wasm)');
    const onWasm = await wasm.evaluate(ingredientWeights(ingredient));
    await wasm.dispose();
    const cpu = await create('cpu');
    const onCpu = await cpu.evaluate(ingredientWeights(ingredient));
    await cpu.dispose();
    assert.equal(onWasm.n, 2000);
    assert.equal(onWasm.metrics.accuracy, 0.842, 'the accuracy make-fixtures measured with TF.js itself');
    assert.equal(onCpu.metrics.accuracy, onWasm.metrics.accuracy);
    assert.equal(onCpu.metrics.top5, onWasm.metrics.top5);
    assert.ok(Math.abs(onCpu.metrics.loss - onWasm.metrics.loss) < 1e-4, `${onCpu.metrics.loss} vs ${onWasm.metrics.loss}`);
    assert.ok(Math.abs(onCpu.metrics.margin - onWasm.metrics.margin) < 1e-4);
    assert.ok(onWasm.metrics.top5 > onWasm.metrics.accuracy);
    assert.ok(onWasm.metrics.loss > 0 && onWasm.metrics.loss < 1);
  });

  it('streams batches from the data set when its inputs exceed the preload budget, with the same scores and no leak', async () => {
    const preloaded = await create('wasm');
    const expected = await preloaded.evaluate(ingredientWeights(ingredient));
    await preloaded.dispose();
    const streaming = await TfjsEvaluator.create({
      modelTopology: ingredient.modelJson.modelTopology,
      modelSource: 'model.json',
      dataset: val,
      backend: 'wasm',
      batchSize: 300,
      preloadBytes: 0,
    });
    const before = streaming.liveTensors();
    const streamed = await streaming.evaluate(ingredientWeights(ingredient));
    assert.deepEqual(streamed, expected);
    assert.equal(streaming.liveTensors(), before, 'each batch tensor is freed after its prediction');
    await streaming.dispose();
  });

  it('leaks no tensor from one candidate to the next', async () => {
    const evaluator = await create('wasm');
    const baseline = evaluator.liveTensors();
    const first = await evaluator.evaluate(ingredientWeights(ingredient));
    const second = await evaluator.evaluate(ingredientWeights(other));
    const again = await evaluator.evaluate(ingredientWeights(ingredient));
    assert.equal(evaluator.liveTensors(), baseline);
    assert.deepEqual(again, first, 'swapping weights back gives the same scores');
    assert.notEqual(second.metrics.accuracy, first.metrics.accuracy);
    await evaluator.dispose();
  });

  it('stops early only when a candidate cannot beat the bound, and says how far it got', async () => {
    const evaluator = await create('wasm');
    const full = await evaluator.evaluate(ingredientWeights(other));
    const beatable = await evaluator.evaluate(ingredientWeights(other), undefined, {
      metric: 'accuracy',
      direction: 'maximize',
      best: full.metrics.accuracy - 0.01,
      acceptTies: false,
    });
    assert.deepEqual(beatable, { ...full, scored: 2000, pruned: false }, 'a candidate that wins is scored in full');
    const hopeless = await evaluator.evaluate(ingredientWeights(other), undefined, {
      metric: 'accuracy',
      direction: 'maximize',
      best: 0.99,
      acceptTies: false,
    });
    assert.equal(hopeless.pruned, true);
    assert.ok(hopeless.scored! < 2000, `stopped after ${hopeless.scored} samples`);
    assert.ok(hopeless.metrics.accuracy <= 0.99 && hopeless.metrics.accuracy >= full.metrics.accuracy, 'the reported score bounds the true one');
    const lossBound = await evaluator.evaluate(ingredientWeights(other), undefined, { metric: 'loss', direction: 'minimize', best: 0.01, acceptTies: true });
    assert.equal(lossBound.pruned, true);
    assert.ok(lossBound.metrics.loss > 0.01 && lossBound.metrics.loss <= full.metrics.loss);
    const margin = await evaluator.evaluate(ingredientWeights(other), undefined, { metric: 'margin', direction: 'maximize', best: 100, acceptTies: false });
    assert.equal(margin.pruned, false, 'margin has no bound to stop on');
    await evaluator.dispose();
  });

  it("refuses labels outside the model's classes", async () => {
    const bad = datasetFromArrays({
      name: 'val',
      x: await val.read(0, val.n),
      y: Int32Array.from(val.y, (label, i) => (i === 7 ? 10 : label)),
      sampleShape: [28, 28],
    });
    await assert.rejects(create('cpu', bad), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /val: label 10 of sample 7 is outside the model's 10 classes \(0 to 9\)/);
      return true;
    });
  });

  it("refuses samples whose size does not fit the model's input", async () => {
    const bad = datasetFromArrays({ name: 'val', x: (await val.read(0, val.n)).subarray(0, 2000 * 27 * 28), y: val.y, sampleShape: [27, 28] });
    await assert.rejects(create('cpu', bad), /val: samples have shape \[27, 28\], the model expects \[N, 784\]: 756 values per sample vs 784/);
  });

  it('says when a forced backend is not available', async () => {
    await assert.rejects(TfjsEvaluator.create({ modelTopology: ingredient.modelJson.modelTopology, modelSource: 'm', dataset: val, backend: 'node' }), {
      message: /the TF\.js backend "node" is not available \(node: /,
    });
  });
});

describe('scoring on worker threads', () => {
  it('gives exactly the scores of serial scoring', async () => {
    const { scoreInParallel } = await import('../../src/eval/pool.js');
    const { discoverIngredients } = await import('../../src/checkpoint/discover.js');
    const ingredients = await discoverIngredients([path.join(fixtures, 'ingredients')]);
    const options = { modelTopology: ingredient.modelJson.modelTopology, modelSource: 'model.json', dataset: val, backend: 'wasm' as const, batchSize: 512 };
    const parallel = await scoreInParallel(ingredients, options, { jobs: 2 });
    const serialEvaluator = await TfjsEvaluator.create(options);
    for (const [k, found] of ingredients.entries()) {
      const checkpoint = await TfjsCheckpoint.open(found.path);
      const serial = await serialEvaluator.evaluate(ingredientWeights(checkpoint));
      await checkpoint.close();
      assert.deepEqual(parallel[k], serial, found.name);
    }
    await serialEvaluator.dispose();
  });

  it('reports an ingredient that fails in a worker as the same typed error', async () => {
    const { scoreInParallel } = await import('../../src/eval/pool.js');
    const options = { modelTopology: ingredient.modelJson.modelTopology, modelSource: 'model.json', dataset: val, backend: 'wasm' as const };
    await assert.rejects(scoreInParallel([{ name: 'gone', path: path.join(fixtures, 'no-such-run'), format: 'tfjs' }], options, { jobs: 2 }), {
      name: 'SoupError',
      message: /no-such-run\/model\.json: no such file or directory/,
    });
  });
});
