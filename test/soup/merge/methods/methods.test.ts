import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { breadcrumbs } from '../../../../src/soup/merge/methods/breadcrumbs.js';
import { CounterRandom, dareLinear, dareTies } from '../../../../src/soup/merge/methods/dare.js';
import { linear } from '../../../../src/soup/merge/methods/linear.js';
import { modelStock } from '../../../../src/soup/merge/methods/model-stock.js';
import { METHOD_NAMES } from '../../../../src/soup/merge/methods/registry.js';
import { slerp } from '../../../../src/soup/merge/methods/slerp.js';
import { taskArithmetic } from '../../../../src/soup/merge/methods/task-arithmetic.js';
import { ties } from '../../../../src/soup/merge/methods/ties.js';
import { close, mergeValues } from './helpers.js';

const weights = (...values: number[]) => values.map((weight) => ({ weight }));

describe('the method registry', () => {
  it("lists every method once, under mergekit's names", () => {
    assert.deepEqual(METHOD_NAMES, [
      'linear',
      'task_arithmetic',
      'ties',
      'dare_linear',
      'dare_ties',
      'slerp',
      'model_stock',
      'breadcrumbs',
      'breadcrumbs_ties',
      'della',
      'della_linear',
      'sce',
      'karcher',
      'nuslerp',
      'multislerp',
      'nearswap',
      'arcee_fusion',
      'passthrough',
    ]);
  });
});

describe('linear', () => {
  it('divides the weighted sum by the sum of the weights', () => {
    assert.deepEqual(
      mergeValues(
        linear,
        {
          models: [
            [1, 2],
            [3, 4],
          ],
        },
        { models: weights(1, 3) },
      ),
      [2.5, 3.5],
    );
  });

  it('is the plain weighted sum without normalize', () => {
    assert.deepEqual(
      mergeValues(
        linear,
        {
          models: [
            [1, 2],
            [3, 4],
          ],
        },
        { models: weights(1, 3), global: { normalize: false } },
      ),
      [10, 14],
    );
  });

  it('refuses weights that sum to zero, naming the tensor', () => {
    assert.throws(() => mergeValues(linear, { models: [[1], [3]], name: 'fc.weight' }, { models: weights(1, -1) }), {
      message: 'linear: the weights for tensor "fc.weight" sum to 0, and normalize divides by their sum',
    });
  });
});

describe('the plain weighted mean fast path', () => {
  it('applies to linear merges with one number per weight and normalize on, only', async () => {
    const { plainMeanWeights } = await import('../../../../src/soup/merge/methods/linear.js');
    assert.deepEqual(plainMeanWeights({ weight: 1 }, [{}, { weight: 3 }]), [1, 3]);
    assert.equal(plainMeanWeights({ weight: 1, normalize: false }, [{}, {}]), undefined);
    assert.equal(plainMeanWeights({}, [{ weight: [0, 1] }, { weight: 1 }]), undefined);
    assert.equal(plainMeanWeights({}, [{ weight: [{ filter: 'fc', value: 1 }] }]), undefined);
  });
});

describe('task_arithmetic', () => {
  it('adds lambda times the weighted sum of deltas to the base', () => {
    // deltas [1, 2] and [-1, 0]; 1 * [1, 2] + 0.5 * [-1, 0] = [0.5, 2]; base + 2 * that.
    const merged = mergeValues(
      taskArithmetic,
      {
        base: [1, 1],
        models: [
          [2, 3],
          [0, 1],
        ],
      },
      { models: weights(1, 0.5), global: { lambda: 2 } },
    );
    assert.deepEqual(merged, [2, 5]);
  });

  it('divides by the sum of weights with normalize', () => {
    const merged = mergeValues(taskArithmetic, { base: [0], models: [[2], [4]] }, { models: weights(1, 3), global: { normalize: true } });
    assert.deepEqual(merged, [3.5]);
  });
});

describe('ties', () => {
  it('trims to the top-k magnitudes, elects signs by the weighted sum and averages the agreeing deltas', () => {
    // a keeps 3 and 2, b keeps -4 and -2. Elected signs from [1, -4, 2, 0]: +, -, +, + (0 counts as +).
    const merged = mergeValues(
      ties,
      {
        base: [0, 0, 0, 0],
        models: [
          [3, -1, 2, 0.5],
          [-2, -4, 1, 1],
        ],
      },
      { models: weights(1, 1).map((p) => ({ ...p, density: 0.5 })) },
    );
    assert.deepEqual(merged, [3, -4, 2, 0]);
  });

  it('keeps the lower index first among equal magnitudes', () => {
    const merged = mergeValues(ties, { base: [0, 0, 0, 0], models: [[1, -1, 1, -1]] }, { models: [{ weight: 1, density: 0.5 }] });
    assert.deepEqual(merged, [1, -1, 0, 0]);
  });

  it('with opposite signs, keeps the side the weights elect', () => {
    assert.deepEqual(mergeValues(ties, { base: [10], models: [[11], [7]] }, { models: weights(1, 1) }), [7]);
    // 3 * 1 and 1 * -3 sum to 0, which counts as +: only a agrees, divided by its weight 3.
    assert.deepEqual(mergeValues(ties, { base: [10], models: [[11], [7]] }, { models: weights(3, 1) }), [11]);
  });

  it('leaves the base unchanged where every delta is zero', () => {
    assert.deepEqual(
      mergeValues(
        ties,
        {
          base: [1, 2],
          models: [
            [1, 2],
            [1, 2],
          ],
        },
        { models: weights(1, 1) },
      ),
      [1, 2],
    );
  });

  it('scales the result by lambda', () => {
    assert.deepEqual(mergeValues(ties, { base: [1], models: [[3]] }, { models: weights(1), global: { lambda: 0.5 } }), [2]);
  });
});

describe('dare', () => {
  const delta = Array.from({ length: 100_000 }, (_, i) => ((i % 7) - 3) / 4 + 0.1);

  it('draws the same masks for the same seed, tensor and ingredient, and different ones otherwise', () => {
    const run = (seed: number, name = 'w') =>
      mergeValues(dareLinear, { base: delta.map(() => 0), models: [delta], name }, { models: [{ weight: 1, density: 0.5 }], seed });
    assert.deepEqual(run(3), run(3));
    assert.notDeepEqual(run(3), run(4));
    assert.notDeepEqual(run(3), run(3, 'v'));
  });

  it('keeps a fraction of entries within binomial bounds of density', () => {
    const density = 0.3;
    const merged = mergeValues(dareLinear, { base: delta.map(() => 0), models: [delta] }, { models: [{ weight: 1, density }], seed: 11 });
    const kept = merged.filter((value) => value !== 0).length;
    const sd = Math.sqrt(delta.length * density * (1 - density));
    assert.ok(Math.abs(kept - density * delta.length) < 5 * sd, `kept ${kept} of ${delta.length}`);
  });

  it('rescales to the L1 norm of the unmasked delta by default', () => {
    const merged = mergeValues(dareLinear, { base: delta.map(() => 0), models: [delta] }, { models: [{ weight: 1, density: 0.5 }] });
    const l1 = (values: number[]) => values.reduce((sum, value) => sum + Math.abs(value), 0);
    assert.ok(Math.abs(l1(merged) - l1(delta)) < 1e-6 * l1(delta));
  });

  it('divides kept entries by density with rescale_mode: inverse_density', () => {
    const merged = mergeValues(
      dareLinear,
      { base: delta.map(() => 0), models: [delta] },
      { models: [{ weight: 1, density: 0.25 }], global: { rescale_mode: 'inverse_density' } },
    );
    merged.forEach((value, i) => assert.ok(value === 0 || value === delta[i]! / 0.25));
  });

  it('leaves the delta whole at density 1, and elects signs in dare_ties', () => {
    assert.deepEqual(
      mergeValues(
        dareTies,
        {
          base: [0, 0],
          models: [
            [1, -2],
            [-3, 1],
          ],
        },
        { models: weights(1, 1) },
      ),
      [-3, -2],
    );
  });

  it('draws numbers in [0, 1) from a counter that any machine reproduces', () => {
    const random = new CounterRandom(0, 'w', 'a');
    const values = [0, 1, 2, 2 ** 40].map((i) => random.at(i));
    values.forEach((value) => assert.ok(value >= 0 && value < 1));
    assert.deepEqual(
      values,
      [0, 1, 2, 2 ** 40].map((i) => new CounterRandom(0, 'w', 'a').at(i)),
    );
    assert.equal(new Set(values).size, 4);
  });
});

describe('slerp', () => {
  it('interpolates linearly between colinear tensors', () => {
    assert.ok(close(mergeValues(slerp, { base: [1, 2], models: [[2, 4]] }, { global: { t: 0.25 } }), [1.25, 2.5]));
    assert.ok(close(mergeValues(slerp, { base: [1, 2], models: [[-1, -2]] }, { global: { t: 0.5 } }), [0, 0]));
  });

  it('follows the great circle between orthogonal tensors', () => {
    assert.ok(close(mergeValues(slerp, { base: [1, 0], models: [[0, 1]] }, { global: { t: 0.5 } }), [Math.SQRT1_2, Math.SQRT1_2]));
    // Unnormalised inputs: the sine weights apply to the tensors as they are.
    assert.ok(close(mergeValues(slerp, { base: [2, 0], models: [[0, 4]] }, { global: { t: 1 / 3 } }), [2 * Math.sin(Math.PI / 3), 4 * Math.sin(Math.PI / 6)]));
  });

  it('returns the base at t = 0 and the other model at t = 1', () => {
    assert.ok(close(mergeValues(slerp, { base: [1, 0], models: [[0, 3]] }, { global: { t: 0 } }), [1, 0]));
    assert.ok(close(mergeValues(slerp, { base: [1, 0], models: [[0, 3]] }, { global: { t: 1 } }), [0, 3]));
  });
});

describe('model_stock', () => {
  it('stays at the base when the deltas are orthogonal and reaches the mean when they agree', () => {
    assert.deepEqual(
      mergeValues(modelStock, {
        base: [0, 0],
        models: [
          [1, 0],
          [0, 1],
        ],
      }),
      [0, 0],
    );
    assert.ok(
      close(
        mergeValues(modelStock, {
          base: [0, 0],
          models: [
            [1, 1],
            [2, 2],
          ],
        }),
        [1.5, 1.5],
      ),
    );
  });

  it('moves by t = N cos / (1 + (N - 1) cos) between', () => {
    const cos = Math.SQRT1_2;
    const t = (2 * cos) / (1 + cos);
    assert.ok(
      close(
        mergeValues(modelStock, {
          base: [0, 0],
          models: [
            [1, 0],
            [1, 1],
          ],
        }),
        [t, t * 0.5],
      ),
    );
  });

  it('computes one ratio per row with filter_wise', () => {
    const merged = mergeValues(
      modelStock,
      {
        base: [0, 0, 0, 0],
        models: [
          [1, 0, 1, 1],
          [0, 1, 2, 2],
        ],
        shape: [2, 2],
      },
      { global: { filter_wise: true } },
    );
    assert.ok(close(merged, [0, 0, 1.5, 1.5]), String(merged));
  });
});

describe('breadcrumbs', () => {
  const delta = [10, 5, 4, 3, 2, 1, 0.5, 0.1, 0, 0];

  it('drops the gamma fraction of largest entries and the smallest, keeping a density fraction', () => {
    const merged = mergeValues(breadcrumbs, { base: delta.map(() => 0), models: [delta] }, { models: [{ weight: 1, density: 0.5, gamma: 0.1 }] });
    assert.deepEqual(merged, [0, 5, 4, 3, 2, 1, 0, 0, 0, 0]);
  });

  it('keeps the top where gamma * n rounds to 0, instead of dropping everything as mergekit does', () => {
    const merged = mergeValues(breadcrumbs, { base: delta.map(() => 0), models: [delta] }, { models: [{ weight: 1, density: 0.5 }] });
    assert.deepEqual(merged, [10, 5, 4, 3, 2, 0, 0, 0, 0, 0]);
  });
});

describe('della', () => {
  it('refuses an epsilon that takes density out of (0, 1), naming the ingredient and tensor', async () => {
    const { della } = await import('../../../../src/soup/merge/methods/della.js');
    assert.throws(
      () => mergeValues(della, { base: [0, 0, 0], models: [[1, 2, 3]], name: 'fc.weight' }, { models: [{ weight: 1, density: 0.9, epsilon: 0.15 }] }),
      {
        message: 'della: density 0.9 +/- epsilon 0.15 for a, tensor "fc.weight", leaves (0, 1)',
      },
    );
  });

  it('keeps the largest entries of a row more often than the smallest', async () => {
    const { della } = await import('../../../../src/soup/merge/methods/della.js');
    const width = 1000;
    const delta = Array.from({ length: 20 * width }, (_, i) => (i % width) + 1);
    const merged = mergeValues(
      della,
      { base: delta.map(() => 0), models: [delta], shape: [20, width] },
      { models: [{ weight: 1, density: 0.5, epsilon: 0.4 }], global: { rescale: false } },
    );
    const kept = (from: number, to: number) => merged.filter((value, i) => value !== 0 && i % width >= from && i % width < to).length / (20 * (to - from));
    assert.ok(kept(0, 100) < 0.2 && kept(900, 1000) > 0.8, `${kept(0, 100)} ${kept(900, 1000)}`);
  });
});

describe('ranking by magnitude', () => {
  it('keeps exactly the ranks a stable sort by |delta| gives, ties included', async () => {
    const { keepRanks } = await import('../../../../src/soup/merge/methods/task-vectors.js');
    const fc = (await import('fast-check')).default;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -4, max: 4 }), { minLength: 1, maxLength: 40 }), fc.nat(), fc.nat(), (values, a, b) => {
        const from = a % (values.length + 1);
        const to = from + (b % (values.length - from + 1));
        const order = values.map((_, i) => i).sort((x, y) => Math.abs(values[y]!) - Math.abs(values[x]!) || x - y);
        const expected = new Uint8Array(values.length);
        for (const i of order.slice(from, to)) expected[i] = 1;
        assert.deepEqual(keepRanks(Float64Array.from(values), from, to), expected);
      }),
      { numRuns: 500 },
    );
  });
});
