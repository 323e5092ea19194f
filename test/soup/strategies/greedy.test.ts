import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import type { CandidateWeights } from '../../../src/weights/candidate.js';
import { greedySoup } from '../../../src/soup/strategies/greedy.js';
import { oneWeightIngredients, tempDir } from '../../helpers/files.js';

const dir = await tempDir();
const opened: SafetensorsFile[] = [];
after(() => Promise.all(opened.map((c) => c.close())));

/** Ingredients named a, b, c... each holding one weight w with the given value. */
async function ingredients(values: number[]): Promise<SafetensorsFile[]> {
  const list = await oneWeightIngredients(path.join(dir, `set-${opened.length}`), values);
  opened.push(...list);
  return list;
}

/** A fake evaluator: the score is a function of the candidate's single weight; it records every call. */
function fakeScore(score: (w: number) => number) {
  const calls: number[] = [];
  const fn = async (candidate: CandidateWeights) => {
    const w = (await candidate.floats('w'))[0]!;
    calls.push(w);
    return score(w);
  };
  return { fn, calls };
}

describe('greedySoup', () => {
  it('scores every ingredient, starts from the best and keeps only strict improvements', async () => {
    // Values exact in float32, so every score below is exact too.
    const list = await ingredients([0.25, 0.4375, 0.625, 0.75]);
    const { fn, calls } = fakeScore((w) => 1 - Math.abs(w - 0.5));
    const result = await greedySoup(list, fn, { metric: 'accuracy', direction: 'maximize' });
    assert.deepEqual(result.scores, [0.75, 0.9375, 0.875, 0.75]);
    // Order: b (0.9375), c (0.875), then the tie a/d (0.75) by name.
    assert.deepEqual(
      result.steps.map((s) => [s.candidate, s.score, s.accepted]),
      [
        ['c', 0.96875, true],
        ['a', 0.9375, false],
        ['d', Math.fround(1 - Math.abs(Math.fround((0.4375 + 0.625 + 0.75) / 3) - 0.5)), false],
      ],
    );
    assert.deepEqual(
      result.soup.chosen.map((c) => c.name),
      ['b', 'c'],
    );
    assert.equal(result.score, 0.96875);
    assert.equal(calls.length, 4 + 3, 'one evaluation per ingredient and exactly one per step');
    assert.equal(result.evaluations, 7);
    assert.equal(calls[4], 0.53125, 'the first step scores the mean of b and c');
  });

  it('rejects a tie unless ties are accepted', async () => {
    const list = await ingredients([1, 3, 5]);
    // Scores: a 0.5, b 0.9, c 0.5. The soup b + a has mean 2, and b + a + c mean 3: both tie with b alone.
    const score = (w: number) => (w === 3 || w === 2 ? 0.9 : 0.5);
    const strict = await greedySoup(list, fakeScore(score).fn, { metric: 'accuracy', direction: 'maximize' });
    assert.deepEqual(
      strict.soup.chosen.map((c) => c.name),
      ['b'],
    );
    assert.deepEqual(
      strict.steps.map((s) => s.accepted),
      [false, false],
    );
    const ties = await greedySoup(list, fakeScore(score).fn, { metric: 'accuracy', direction: 'maximize', acceptTies: true });
    assert.deepEqual(
      ties.soup.chosen.map((c) => c.name),
      ['b', 'a', 'c'],
    );
  });

  it('minimises loss', async () => {
    const list = await ingredients([0.2, 0.6]);
    const result = await greedySoup(list, fakeScore((w) => Math.abs(w - 0.4)).fn, { metric: 'loss', direction: 'minimize' });
    assert.deepEqual(
      result.soup.chosen.map((c) => c.name),
      ['a', 'b'],
      'a has the lower loss and starts; their mean hits 0.4',
    );
    assert.ok(result.score < 1e-6);
  });

  it('averages the soup exactly as the mean of its chosen ingredients', async () => {
    const list = await ingredients([1, 2, 4]);
    const result = await greedySoup(list, fakeScore(() => 1).fn, { metric: 'accuracy', direction: 'maximize', acceptTies: true });
    assert.deepEqual([...(await result.soup.weights().floats('w'))], [7 / 3].map(Math.fround));
  });

  it('refuses an ingredient with a NaN weight, naming file and tensor', async () => {
    const list = await ingredients([1, NaN]);
    await assert.rejects(
      greedySoup(list, fakeScore(() => 1).fn, { metric: 'accuracy', direction: 'maximize' }),
      /b\.safetensors: tensor "w": holds NaN at element 0/,
    );
  });
});

describe('greedySoup with diverged ingredients', () => {
  it('scores an excluded ingredient, ranks it last and builds no candidate holding it', async () => {
    const list = await ingredients([0.25, NaN, 0.75]);
    // NaN scores 0 here: a diverged run's accuracy, better than nothing, yet never souped.
    const { fn, calls } = fakeScore((w) => (Number.isNaN(w) ? 0.99 : 1 - Math.abs(w - 0.5)));
    const result = await greedySoup(list, fn, { metric: 'accuracy', direction: 'maximize', exclude: new Set([list[1]!]), acceptTies: true });
    assert.equal(result.scores[1], 0.99, 'scored as it is');
    assert.deepEqual(
      result.leftOut.map((c) => c.name),
      ['b'],
    );
    assert.deepEqual(
      result.steps.map((s) => s.candidate),
      ['c'],
      'one step: a starts, c is tried, b never',
    );
    assert.equal(calls.length, 3 + 1);
    assert.ok(
      calls.slice(3).every((w) => Number.isFinite(w)),
      'no candidate holds NaN',
    );
    assert.deepEqual(
      result.soup.chosen.map((c) => c.name),
      ['a', 'c'],
    );
  });

  it('ranks a NaN score last whichever way the metric points, and never keeps a step that scores NaN', async () => {
    const list = await ingredients([0.1, 0.7, 0.3]);
    // The loss is w, except that b (0.7) and the soup a + b (0.4) make the script print NaN.
    const score = (w: number) => (w > 0.35 ? NaN : w);
    const result = await greedySoup(list, fakeScore(score).fn, { metric: 'eval_loss', direction: 'minimize' });
    assert.deepEqual(
      result.steps.map((s) => [s.candidate, s.accepted]),
      [
        ['c', false],
        ['b', false],
      ],
      'a starts, c is tried before the NaN-scored b',
    );
    assert.deepEqual(
      result.soup.chosen.map((c) => c.name),
      ['a'],
    );
  });

  it('refuses when every ingredient diverged', async () => {
    const list = await ingredients([NaN, Infinity]);
    await assert.rejects(greedySoup(list, fakeScore(() => 0).fn, { metric: 'accuracy', direction: 'maximize', exclude: new Set(list) }), {
      message: `${list[0]!.path}: every ingredient diverged (non-finite weights): there is nothing to soup`,
      hint: 'soup finite runs, or pass --allow-nonfinite to soup these anyway',
    });
  });
});

describe('greedySoup with early stopping', () => {
  /**
   * A fake evaluator over 50 samples: sample i is right when a hash of (candidate weight, i) falls
   * below a rate that peaks at w = 0.5. With a bound it stops, batch by batch, as soon as the
   * candidate cannot beat it, the way the TF.js evaluator does.
   */
  function batchScorer(stopEarly: boolean) {
    return async (candidate: CandidateWeights, _label: string, bound?: { best: number; acceptTies: boolean }) => {
      const w = (await candidate.floats('w'))[0]!;
      const n = 50;
      let correct = 0;
      for (let start = 0; start < n; start += 7) {
        for (let i = start; i < Math.min(n, start + 7); i++) {
          const hash = Math.abs(Math.sin(w * 7919 + i * 104729)) % 1;
          if (hash < 1 - Math.abs(w - 0.5)) correct++;
        }
        const seen = Math.min(n, start + 7);
        const reachable = (correct + n - seen) / n;
        if (stopEarly && bound !== undefined && seen < n && !(reachable > bound.best || (bound.acceptTies && reachable === bound.best))) {
          return { score: reachable, pruned: true, scored: seen, total: n };
        }
      }
      return { score: correct / n, scored: n, total: n };
    };
  }

  it('makes exactly the decisions of full scoring, on random sweeps', async () => {
    const fc = (await import('fast-check')).default;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 7 }), fc.boolean(), async (values, acceptTies) => {
        const list = await ingredients(values.map(Math.fround));
        const full = await greedySoup(list, batchScorer(false), { metric: 'accuracy', direction: 'maximize', acceptTies });
        const pruned = await greedySoup(list, batchScorer(true), { metric: 'accuracy', direction: 'maximize', acceptTies });
        assert.deepEqual(
          pruned.soup.chosen.map((c) => c.name),
          full.soup.chosen.map((c) => c.name),
        );
        assert.deepEqual(
          pruned.steps.map((s) => s.accepted),
          full.steps.map((s) => s.accepted),
        );
        assert.equal(pruned.score, full.score);
        assert.equal(pruned.samplesScored + pruned.samplesSaved, full.samplesScored);
        for (const [i, step] of pruned.steps.entries()) if (step.pruned) assert.ok(step.score >= full.steps[i]!.score, 'a pruned score bounds the full one');
      }),
      { numRuns: 40 },
    );
  });
});
