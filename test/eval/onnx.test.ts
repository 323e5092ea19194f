import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { OnnxCheckpoint } from '../../src/checkpoint/onnx/reader.js';
import { loadDataset, type Dataset, type InputFit } from '../../src/data/dataset.js';
import { OnnxEvaluator } from '../../src/eval/onnx.js';
import { ingredientWeights } from '../../src/weights/candidate.js';

const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const model = await OnnxCheckpoint.open(path.join(fixtures, 'onnx', 'lr1e-4-s1.onnx'));
after(() => model.close());

describe('OnnxEvaluator', () => {
  it('streams data too large to keep batch by batch from the data set, with the scores of data kept in memory', async () => {
    const dataset = await loadDataset(path.join(fixtures, 'data', 'val'));
    const reads: number[] = [];
    const counted: Dataset = Object.create(dataset, {
      read: {
        value: (start: number, count: number, fit?: InputFit) => {
          reads.push(count);
          return dataset.read(start, count, fit);
        },
      },
    });
    const kept = await OnnxEvaluator.create({ model, data: { kind: 'single', dataset }, batchSize: 300 });
    const streamed = await OnnxEvaluator.create({ model, data: { kind: 'single', dataset: counted }, batchSize: 300, preloadBytes: 0 });
    assert.deepEqual(reads, [], 'nothing is read before a candidate runs');
    const candidate = ingredientWeights(model);
    const [whole, read] = [await kept.evaluate(candidate), await streamed.evaluate(candidate)];
    assert.deepEqual(read.metrics, whole.metrics);
    assert.deepEqual(reads, [300, 300, 300, 300, 300, 300, 200], 'one read per batch');
    assert.equal(read.metrics.accuracy, 0.842, 'the fixture run scores 0.8420 on val, as with TF.js');
    const bound = { metric: 'accuracy', direction: 'maximize' as const, best: 0.95, acceptTies: false };
    const [keptPruned, streamedPruned] = [await kept.evaluate(candidate, undefined, bound), await streamed.evaluate(candidate, undefined, bound)];
    assert.equal(streamedPruned.pruned, true);
    assert.deepEqual(streamedPruned, keptPruned, 'early stopping decides the same on streamed data');
    await Promise.all([kept.dispose(), streamed.dispose()]);
  });
});
