import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CompareDocument } from '../../src/soup/compare-document.js';
import { checkGates } from '../../src/soup/gates.js';

function doc(metric: string, greedyVal: number, bestVal: number, uniformTest = 0.8): CompareDocument {
  return {
    metric,
    backend: 'wasm',
    datasets: ['val', 'test'],
    rows: [
      { name: 'a', kind: 'ingredient', scores: { val: bestVal, test: 0.7 } },
      { name: 'b', kind: 'ingredient', scores: { val: metric === 'loss' ? bestVal + 0.1 : bestVal - 0.1, test: 0.6 } },
      { name: 'uniform soup', kind: 'uniform', scores: { val: 0.7, test: uniformTest } },
      { name: 'greedy soup', kind: 'greedy', scores: { val: greedyVal, test: 0.75 } },
    ],
  };
}

describe('checkGates', () => {
  it('--fail-under passes at or above the value and fails below it, saying by how much', () => {
    assert.deepEqual(checkGates(doc('accuracy', 0.85, 0.84), { failUnder: 0.85 }), [
      { gate: '--fail-under 0.85', passed: true, detail: 'greedy soup scores 0.8500 accuracy on val' },
    ]);
    assert.deepEqual(checkGates(doc('accuracy', 0.8460, 0.84), { failUnder: 0.85 }), [
      { gate: '--fail-under 0.85', passed: false, detail: 'greedy soup scores 0.8460 accuracy on val, 0.0040 worse than 0.85' },
    ]);
  });

  it('--fail-under reads "worse" as higher for loss', () => {
    assert.equal(checkGates(doc('loss', 0.3, 0.4), { failUnder: 0.35 })[0]!.passed, true);
    assert.equal(checkGates(doc('loss', 0.4, 0.5), { failUnder: 0.35 })[0]!.passed, false);
  });

  it('--require-greedy-beats-best accepts a tie and fails when greedy is worse', () => {
    assert.equal(checkGates(doc('accuracy', 0.84, 0.84), { requireGreedyBeatsBest: true })[0]!.passed, true);
    const failed = checkGates(doc('accuracy', 0.83, 0.84), { requireGreedyBeatsBest: true })[0]!;
    assert.equal(failed.passed, false);
    assert.equal(failed.detail, 'greedy soup 0.8300 is 0.0100 worse than the best ingredient a (0.8400) on val');
  });

  it('--baseline --max-drop fails when any soup row drops more than allowed on any data set', () => {
    const before = doc('accuracy', 0.85, 0.84, 0.8);
    const after = doc('accuracy', 0.85, 0.84, 0.79);
    assert.equal(checkGates(after, { baseline: before, maxDrop: 0.02 })[0]!.passed, true);
    const failed = checkGates(after, { baseline: before, maxDrop: 0.005 })[0]!;
    assert.equal(failed.passed, false);
    assert.equal(failed.detail, 'dropped more than 0.005: uniform soup on test: 0.8000 -> 0.7900 (drop 0.0100)');
  });

  it('--baseline ignores ingredient rows and improvements', () => {
    const before = doc('accuracy', 0.80, 0.9);
    const after = doc('accuracy', 0.86, 0.5);
    assert.equal(checkGates(after, { baseline: before })[0]!.passed, true);
  });

  it('asks nothing when no gate is set', () => {
    assert.deepEqual(checkGates(doc('accuracy', 0.8, 0.9), {}), []);
  });
});
