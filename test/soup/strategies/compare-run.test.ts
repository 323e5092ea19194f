import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { closeAll } from '../../../src/checkpoint/discover.js';
import { openIngredients } from '../../../src/soup/ingredients.js';
import { planComparison } from '../../../src/soup/strategies/compare-plan.js';
import { runComparison } from '../../../src/soup/strategies/compare-run.js';
import { gateFailure } from '../../../src/soup/strategies/gates.js';

const fixtures = new URL('../../../../fixtures/', import.meta.url).pathname;
const checkpoints = await openIngredients([path.join(fixtures, 'ingredients')], {});
after(() => closeAll(checkpoints));

describe('runComparison', () => {
  it('scores every ingredient, both soups and the ensemble on each data set, and checks the gates, without the CLI', async () => {
    const plan = await planComparison({ test: [`test=${path.join(fixtures, 'data', 'test.npz')}`], metric: 'accuracy', merge: [] });
    const warnings: string[] = [];
    const { document, evaluator } = await runComparison(checkpoints, plan, {
      val: path.join(fixtures, 'data', 'val'),
      metric: 'accuracy',
      batchSize: 512,
      executor: 'local',
      retries: 2,
      acceptTies: false,
      allowNonFinite: false,
      force: false,
      failUnder: 0.85,
      requireGreedyBeatsBest: true,
      command: ['compare'],
      warn: (message) => warnings.push(message),
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual([evaluator, document.backend], ['tfjs (wasm)', 'wasm']);
    assert.deepEqual([document.metric, document.direction, document.datasets, document.notes], ['accuracy', 'maximize', ['val', 'test'], []]);
    const greedy = ['lr1e-4-s1', 'lr3e-4-s2', 'lr1e-3-ls-s5', 'lr3e-4-e4-s6'];
    const ingredient = (name: string, val: number, test: number) => ({ name, kind: 'ingredient', scores: { val, test }, inGreedy: greedy.includes(name) });
    assert.deepEqual(document.rows, [
      ingredient('lr1e-3-ls-s5', 0.8385, 0.8395),
      ingredient('lr1e-3-s4', 0.8155, 0.8175),
      ingredient('lr1e-4-ls-aug-s7', 0.824, 0.809),
      ingredient('lr1e-4-s1', 0.842, 0.8375),
      ingredient('lr3e-2-s8', 0.819, 0.8145),
      ingredient('lr3e-4-aug-s3', 0.8235, 0.8125),
      ingredient('lr3e-4-e4-s6', 0.8375, 0.8305),
      ingredient('lr3e-4-s2', 0.8395, 0.8425),
      { name: 'uniform soup', kind: 'uniform', scores: { val: 0.6435, test: 0.66 }, chosen: checkpoints.map((checkpoint) => checkpoint.name) },
      { name: 'greedy soup', kind: 'greedy', scores: { val: 0.846, test: 0.8405 }, chosen: greedy },
      { name: 'ensemble', kind: 'ensemble', scores: { val: 0.8405, test: 0.8385 } },
    ]);
    assert.deepEqual(document.gates, [
      { gate: '--fail-under 0.85', passed: false, detail: 'greedy soup scores 0.8460 accuracy on val, 0.0040 worse than 0.85' },
      { gate: '--require-greedy-beats-best', passed: true, detail: 'greedy soup 0.8460 vs best ingredient lr1e-4-s1 0.8420 on val' },
    ]);
    const failure = gateFailure(document.gates!)!;
    assert.equal(failure.exitCode, 3);
    assert.equal(failure.message, '1 gate failed: --fail-under 0.85 (greedy soup scores 0.8460 accuracy on val, 0.0040 worse than 0.85)');
  });
});
