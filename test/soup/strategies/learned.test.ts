import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { TfjsCheckpoint } from '../../../src/checkpoint/tfjs.js';
import { datasetFromArrays, type Dataset } from '../../../src/data/dataset.js';
import { TfjsEvaluator } from '../../../src/eval/tfjs.js';
import { seededRandom, shuffledIndices } from '../../../src/random.js';
import { AdamW, LEARNED_DEFAULTS, LearnedSoup, learnedMemoryBytes, softmax, trainLearnedSoup } from '../../../src/soup/strategies/learned.js';
import { tempDir } from '../../helpers/files.js';
import { saveTinyModel } from '../../helpers/tfjs.js';

const dir = await tempDir();
const checkpoints = await Promise.all([1, 2, 3].map(async (seed) => TfjsCheckpoint.open((await saveTinyModel(path.join(dir, `run-${seed}`), seed)).folder)));
after(() => Promise.all(checkpoints.map((checkpoint) => checkpoint.close())));

/** 24 samples of 3 features with labels from a fixed rule, so the loss has a real slope. */
function tinyDataset(): Dataset {
  const random = seededRandom(7);
  const n = 24;
  const x = Float32Array.from({ length: n * 3 }, () => random() * 2 - 1);
  const y = Int32Array.from({ length: n }, (_, i) => (x[i * 3]! + 0.5 * x[i * 3 + 1]! > 0 ? 1 : 0));
  return datasetFromArrays({ name: 'tiny', x, y, sampleShape: [3] });
}

const createEvaluator = () =>
  TfjsEvaluator.create({ modelTopology: checkpoints[0]!.modelJson.modelTopology, modelSource: 'model.json', dataset: tinyDataset(), backend: 'cpu' });

/** Central differences of the loss on `samples` as one parameter moves by +-h. */
async function numericGradient(
  soup: LearnedSoup,
  evaluator: TfjsEvaluator,
  samples: number[],
  parameter: Float64Array,
  index: number,
  h = 1e-2,
): Promise<number> {
  const start = parameter[index]!;
  const lossAt = async (value: number): Promise<number> => {
    parameter[index] = value;
    soup.invalidate();
    return (await soup.gradients(evaluator, samples)).loss;
  };
  const slope = ((await lossAt(start + h)) - (await lossAt(start - h))) / (2 * h);
  parameter[index] = start;
  soup.invalidate();
  return slope;
}

describe('the learned soup', () => {
  for (const byModel of [false, true]) {
    it(`has the gradient that finite differences measure, for every logit and beta${byModel ? ' (one weight per ingredient)' : ''}`, async () => {
      const evaluator = await createEvaluator();
      const baseline = evaluator.liveTensors();
      const soup = await LearnedSoup.load(checkpoints, { ...LEARNED_DEFAULTS, byModel });
      assert.equal(soup.logits.length, byModel ? 1 : 4, 'one logit group per tensor, or one for the model');
      // Away from the equal start, so every ingredient's share matters.
      const random = seededRandom(3);
      for (const group of soup.logits) for (let i = 0; i < group.length; i++) group[i] = random() * 2 - 1;
      soup.betaParam[0] = 1.3;
      soup.invalidate();
      const samples = [0, 3, 5, 8, 13, 21, 2, 17];
      const analytic = await soup.gradients(evaluator, samples);
      let largest = 0;
      for (const [g, group] of soup.logits.entries()) {
        for (let i = 0; i < group.length; i++) {
          const numeric = await numericGradient(soup, evaluator, samples, group, i);
          const exact = analytic.logits[g]![i]!;
          largest = Math.max(largest, Math.abs(exact));
          assert.ok(Math.abs(numeric - exact) <= 2e-4 + 1e-2 * Math.abs(exact), `logit ${g}/${i}: ${exact} vs finite differences ${numeric}`);
        }
      }
      assert.ok(largest > 1e-3, `the test needs gradients that are not all zero (largest ${largest})`);
      for (const group of analytic.logits) assert.ok(Math.abs(group.reduce((a, b) => a + b, 0)) < 1e-6, 'softmax logits gradients sum to 0');
      const numericBeta = await numericGradient(soup, evaluator, samples, soup.betaParam, 0);
      assert.ok(Math.abs(numericBeta - analytic.beta) <= 2e-4 + 1e-2 * Math.abs(analytic.beta), `beta: ${analytic.beta} vs ${numericBeta}`);
      assert.equal(evaluator.liveTensors(), baseline, 'taking gradients leaks no tensor');
      await evaluator.dispose();
    });
  }

  it('mixes sum(alpha * theta) per tensor, alphas being the softmax of the logits', async () => {
    const soup = await LearnedSoup.load(checkpoints, LEARNED_DEFAULTS);
    assert.deepEqual(soup.alphas(0), [1 / 3, 1 / 3, 1 / 3], 'every ingredient starts with the same weight');
    soup.logits[1]!.set([0, Math.log(2), Math.log(5)]);
    soup.invalidate();
    const alphas = soup.alphas(1);
    assert.deepEqual(
      alphas.map((a) => Number(a.toFixed(12))),
      [0.125, 0.25, 0.625],
    );
    const name = soup.tensors[1]!.name;
    const thetas = await Promise.all(checkpoints.map((checkpoint) => checkpoint.readFloats(name)));
    const expected = Float32Array.from(thetas[0]!, (_, i) => alphas[0]! * thetas[0]![i]! + alphas[1]! * thetas[1]![i]! + alphas[2]! * thetas[2]![i]!);
    assert.deepEqual(await soup.weights().floats(name), expected);
    assert.deepEqual(soup.coefficients()(name), alphas);
    assert.deepEqual(Object.values(soup.weightsByTensor()[name]!), alphas);
  });

  it('trains deterministically: the same seed gives the same weights and losses, another seed other batches', async () => {
    const evaluator = await createEvaluator();
    const run = async (seed: number) => {
      const soup = await LearnedSoup.load(checkpoints, { ...LEARNED_DEFAULTS, epochs: 2, batchSize: 8, seed });
      const epochs = await trainLearnedSoup(soup, evaluator);
      return { epochs, weights: soup.weightsByTensor(), beta: soup.beta };
    };
    const first = await run(1);
    assert.deepEqual(await run(1), first);
    assert.notDeepEqual((await run(2)).weights, first.weights);
    assert.equal(first.epochs.length, 2);
    assert.ok(first.epochs[1]!.loss < first.epochs[0]!.loss, `the loss goes down: ${first.epochs.map((e) => e.loss)}`);
    await evaluator.dispose();
  });

  it('steps its parameters as torch.optim.AdamW does', () => {
    for (const [weightDecay, expected] of [
      [
        0,
        [
          [0.900000002, -2.099999996],
          [0.9366103542405654, -2.1932179551639353],
          [0.9473774736526891, -2.1345101503860135],
        ],
      ],
      [
        0.5,
        [
          [0.8500000019999999, -1.9999999960000001],
          [0.8441103541405653, -1.993217955363935],
          [0.8126719558456608, -1.8348492528178166],
        ],
      ],
    ] as const) {
      const p = Float64Array.of(1, -2);
      const optimiser = new AdamW([p], { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay });
      for (const [k, g] of [
        [0.5, 0.25],
        [-1, 0.125],
        [0.3, -4],
      ].entries()) {
        optimiser.update([Float64Array.from(g)]);
        // Values printed by torch 1.13's AdamW on float64 parameters.
        for (let i = 0; i < 2; i++)
          assert.ok(Math.abs(p[i]! - expected[k]![i]!) < 1e-12, `step ${k + 1}, weight decay ${weightDecay}: ${p[i]} vs ${expected[k]![i]}`);
      }
    }
  });

  it('shuffles every sample exactly once per epoch, the same way for the same seed', () => {
    const order = shuffledIndices(100, seededRandom(5));
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.notDeepEqual(
      [...order],
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.deepEqual(shuffledIndices(100, seededRandom(5)), order);
  });

  it('counts the memory of every ingredient and three copies of one model', () => {
    const floats = checkpoints[0]!.tensors().reduce((sum, tensor) => sum + tensor.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(floats, 3 * 4 + 4 + 4 * 2 + 2);
    assert.equal(learnedMemoryBytes(checkpoints), (3 + 3) * floats * 4);
  });

  it('has a softmax that sums to 1 and survives large logits', () => {
    assert.deepEqual(softmax([1000, 1000]), [0.5, 0.5]);
    assert.equal(
      softmax([0.3, -2, 5])
        .reduce((a, b) => a + b, 0)
        .toFixed(12),
      '1.000000000000',
    );
  });
});
