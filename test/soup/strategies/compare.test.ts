import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { TfjsCheckpoint } from '../../../src/checkpoint/tfjs.js';
import { datasetFromArrays } from '../../../src/data/dataset.js';
import type { Evaluator } from '../../../src/eval/evaluator.js';
import type { CandidateWeights } from '../../../src/weights/candidate.js';
import { MetricAccumulator } from '../../../src/eval/metrics.js';
import { TfjsEvaluator } from '../../../src/eval/tfjs.js';
import { compareSoups } from '../../../src/soup/strategies/compare.js';
import { tempDir } from '../../helpers/files.js';
import { saveTinyModel, type SavedModel } from '../../helpers/tfjs.js';

const dir = await tempDir();
const saved = [await saveTinyModel(path.join(dir, 'a'), 21), await saveTinyModel(path.join(dir, 'b'), 22)];
const checkpoints = await Promise.all(saved.map((s) => TfjsCheckpoint.open(s.folder)));
after(() => Promise.all(checkpoints.map((c) => c.close())));

const x = [
  [1, 0, -1],
  [0.5, 2, 0],
  [-1, -1, 3],
  [2, 1, 1],
];
const dataset = datasetFromArrays({ name: 'tiny', x: Float32Array.from(x.flat()), y: Int32Array.from([0, 1, 1, 0]), sampleShape: [3] });

/** The tiny model's logits computed by hand: relu(x W1 + b1) W2 + b2. */
function logits(model: SavedModel, sample: number[]): number[] {
  const [w1, b1, w2, b2] = ['hidden/kernel', 'hidden/bias', 'logits/kernel', 'logits/bias'].map((name) => model.weights.get(name)!);
  const hidden = Array.from({ length: 4 }, (_, j) =>
    Math.max(
      0,
      sample.reduce((sum, v, i) => sum + v * w1![i * 4 + j]!, b1![j]!),
    ),
  );
  return Array.from({ length: 2 }, (_, k) => hidden.reduce((sum, h, j) => sum + h * w2![j * 2 + k]!, b2![k]!));
}

describe('compareSoups', () => {
  it("scores the ensemble on the mean of the ingredients' logits, as computed by hand", async () => {
    const evaluator = await TfjsEvaluator.create({ modelTopology: checkpoints[0]!.modelJson.modelTopology, modelSource: 'tiny', dataset, backend: 'cpu' });
    const result = await compareSoups(checkpoints, [{ name: 'val', evaluator }], { metric: 'loss', direction: 'minimize' });
    await evaluator.dispose();
    const mean = x.flatMap((sample) => {
      const [la, lb] = [logits(saved[0]!, sample), logits(saved[1]!, sample)];
      return la.map((v, k) => (v + lb[k]!) / 2);
    });
    const expected = new MetricAccumulator(2, false);
    expected.add(mean, dataset.y);
    const ensemble = result.rows.find((row) => row.kind === 'ensemble')!;
    assert.ok(Math.abs(ensemble.scores.val! - expected.result().loss) < 1e-5, `${ensemble.scores.val} vs ${expected.result().loss}`);
    assert.deepEqual(
      result.rows.map((row) => row.kind),
      ['ingredient', 'ingredient', 'uniform', 'greedy', 'ensemble'],
    );
  });

  it('leaves the ensemble out, with a note, when the evaluator returns only metrics', async () => {
    const metricsOnly: Evaluator = {
      description: 'fake',
      metrics: ['accuracy'],
      evaluate: async (candidate: CandidateWeights) => ({ metrics: { accuracy: (await candidate.floats('logits/bias'))[0]! } }),
      dispose: async () => {},
    };
    const result = await compareSoups(
      checkpoints,
      [
        { name: 'val', evaluator: metricsOnly },
        { name: 'test', evaluator: metricsOnly },
      ],
      { metric: 'accuracy', direction: 'maximize' },
    );
    assert.deepEqual(
      result.rows.map((row) => row.kind),
      ['ingredient', 'ingredient', 'uniform', 'greedy'],
    );
    assert.deepEqual(result.notes, ['no ensemble row: it averages model outputs, and --eval-cmd returns only metrics']);
    // Bias values are seed / 10: b (2.2) beats a (2.1), and their mean (2.15) does not beat b.
    const greedy = result.rows.find((row) => row.kind === 'greedy')!;
    assert.deepEqual(greedy.chosen, ['b']);
    assert.ok(Math.abs(result.rows.find((row) => row.kind === 'uniform')!.scores.test! - 2.15) < 1e-6);
    assert.equal(result.evaluations, 2 * 2 + 1 + 2 + 1, 'ingredients on both sets, one greedy step, uniform on both, greedy on test');
  });

  it('scores a diverged ingredient but leaves it out of both soups and the ensemble, saying so', async () => {
    const evaluator = await TfjsEvaluator.create({ modelTopology: checkpoints[0]!.modelJson.modelTopology, modelSource: 'tiny', dataset, backend: 'cpu' });
    const divergence = { tensor: 'hidden/kernel', element: 0, value: 'NaN' };
    const result = await compareSoups(checkpoints, [{ name: 'val', evaluator }], {
      metric: 'loss',
      direction: 'minimize',
      diverged: new Map([[checkpoints[1]!, divergence]]),
    });
    await evaluator.dispose();
    const rows = Object.fromEntries(result.rows.map((row) => [row.name, row]));
    assert.deepEqual(rows.b!.diverged, divergence);
    assert.ok(Number.isFinite(rows.b!.scores.val), 'scored as it is');
    assert.equal(rows.a!.diverged, undefined);
    assert.deepEqual(rows['uniform soup']!.chosen, ['a']);
    for (const soup of ['uniform soup', 'greedy soup', 'ensemble']) assert.deepEqual(rows[soup]!.leftOut, ['b'], soup);
    assert.equal(rows.ensemble!.scores.val, rows.a!.scores.val, 'the ensemble of a alone is a');
    assert.equal(rows['uniform soup']!.scores.val, rows.a!.scores.val, 'the uniform soup of a alone is a');
    assert.deepEqual(result.notes, [
      'b diverged (non-finite weights): scored, but left out of the uniform soup, the greedy soup and the ensemble (--allow-nonfinite keeps it in)',
    ]);
  });
});
