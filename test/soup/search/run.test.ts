import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ScoreJournal } from '../../../src/eval/score-cache.js';
import { runSearch, type SearchSpace } from '../../../src/soup/search/run.js';
import { tempDir } from '../../helpers/files.js';

const dir = await tempDir();

/** Points of R^2 as they are, scored by a function of them. */
function plane(score: (x: number[]) => Record<string, number>): {
  space: SearchSpace<number[]>;
  evaluate: (x: number[]) => Promise<{ metrics: Record<string, number> }>;
  calls: () => number;
} {
  let calls = 0;
  return {
    space: { dimension: 2, start: [0, 0], sigma: 1, decode: (point) => [...point], key: (x) => JSON.stringify(x) },
    evaluate: async (x) => {
      calls++;
      return { metrics: score(x) };
    },
    calls: () => calls,
  };
}

describe('runSearch', () => {
  it('scores the start first, then whole generations, and cuts the last one at the budget', async () => {
    const { space, evaluate, calls } = plane((x) => ({ loss: (x[0]! - 1) ** 2 + (x[1]! + 2) ** 2 }));
    const outcome = await runSearch(space, evaluate, { evaluations: 20, population: 6, seed: 1, jobs: 1, objective: 'loss', direction: 'minimize' });
    assert.equal(calls(), 20);
    assert.deepEqual(
      outcome.generations.map((g) => g.evaluations),
      [7, 13, 19, 20],
    );
    assert.deepEqual(outcome.startMetrics, { loss: 5 });
    assert.ok(outcome.metrics.loss! < 5);
    for (const g of outcome.generations) assert.ok(g.bestSoFar <= g.best);
  });

  it('maximises a metric where higher is better (accuracy)', async () => {
    const { space, evaluate } = plane((x) => ({ accuracy: -((x[0]! - 3) ** 2) - x[1]! ** 2 }));
    const outcome = await runSearch(space, evaluate, { evaluations: 200, seed: 2, jobs: 1, objective: 'accuracy', direction: 'maximize' });
    assert.ok(Math.abs(outcome.best[0]! - 3) < 0.05 && Math.abs(outcome.best[1]!) < 0.05, `found ${outcome.best}`);
  });

  it('keeps the earlier of two candidates that tie, so a flat score never moves the winner', async () => {
    const { space, evaluate } = plane(() => ({ accuracy: 0.5 }));
    const outcome = await runSearch(space, evaluate, { evaluations: 30, seed: 3, jobs: 1, objective: 'accuracy', direction: 'maximize' });
    assert.deepEqual(outcome.best, [0, 0], 'the start, scored first');
  });

  it('ranks a NaN score last and never picks it', async () => {
    const { space, evaluate } = plane((x) => ({ loss: x[0]! > 0 ? Number.NaN : -x[0]! }));
    const outcome = await runSearch(space, evaluate, { evaluations: 40, seed: 4, jobs: 1, objective: 'loss', direction: 'minimize' });
    assert.ok(!Number.isNaN(outcome.metrics.loss));
  });

  it('finds the same candidate scoring several at a time as one at a time', async () => {
    const slow = plane((x) => ({ loss: Math.abs(x[0]! - 0.3) + Math.abs(x[1]! - 0.7) }));
    const jittered = async (x: number[]): Promise<{ metrics: Record<string, number> }> => {
      await new Promise((resolve) => setTimeout(resolve, Math.abs(Math.sin(x[0]! * 1000)) * 5));
      return slow.evaluate(x);
    };
    const one = await runSearch(slow.space, jittered, { evaluations: 40, seed: 5, jobs: 1, objective: 'loss', direction: 'minimize' });
    const four = await runSearch(slow.space, jittered, { evaluations: 40, seed: 5, jobs: 4, objective: 'loss', direction: 'minimize' });
    assert.deepEqual(four.best, one.best);
    assert.deepEqual(four.generations, one.generations);
  });

  it('takes every score the journal holds and calls the evaluator only for the rest', async () => {
    const file = path.join(dir, 'journal.jsonl');
    await rm(file, { force: true });
    const first = plane((x) => ({ loss: x[0]! ** 2 + x[1]! ** 2 }));
    let { journal } = await ScoreJournal.open(file);
    const done = await runSearch(first.space, first.evaluate, {
      evaluations: 15,
      population: 7,
      seed: 6,
      jobs: 1,
      objective: 'loss',
      direction: 'minimize',
      journal: { journal, evaluator: 'e' },
    });
    await journal.close();
    ({ journal } = await ScoreJournal.open(file));
    const again = plane((x) => ({ loss: x[0]! ** 2 + x[1]! ** 2 }));
    const longer = await runSearch(again.space, again.evaluate, {
      evaluations: 22,
      population: 7,
      seed: 6,
      jobs: 1,
      objective: 'loss',
      direction: 'minimize',
      journal: { journal, evaluator: 'e' },
    });
    await journal.close();
    assert.equal(done.evaluatorCalls, 15);
    assert.equal(again.calls(), 7, 'only the generation the first run never reached');
    assert.equal(longer.evaluatorCalls, 7);
  });

  it('refuses an objective the scores do not have', async () => {
    const { space, evaluate } = plane(() => ({ accuracy: 1 }));
    await assert.rejects(runSearch(space, evaluate, { evaluations: 5, seed: 0, jobs: 1, objective: 'loss', direction: 'minimize' }), {
      message: '--objective loss: the scores have no "loss" (they have: accuracy)',
    });
  });
});
