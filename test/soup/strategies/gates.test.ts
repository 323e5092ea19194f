import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CompareDocument } from '../../../src/soup/strategies/compare-document.js';
import { compareDocumentSchema } from '../../../src/soup/strategies/compare-document.js';
import { checkGates } from '../../../src/soup/strategies/gates.js';

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
    assert.deepEqual(checkGates(doc('accuracy', 0.846, 0.84), { failUnder: 0.85 }), [
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
    const before = doc('accuracy', 0.8, 0.9);
    const after = doc('accuracy', 0.86, 0.5);
    assert.equal(checkGates(after, { baseline: before })[0]!.passed, true);
  });

  it('asks nothing when no gate is set', () => {
    assert.deepEqual(checkGates(doc('accuracy', 0.8, 0.9), {}), []);
  });
});

describe('checkGates with a recorded direction and non-finite scores', () => {
  const sweep: CompareDocument = {
    metric: 'eval_loss',
    direction: 'minimize',
    backend: 'command',
    datasets: ['val'],
    rows: [
      { name: 'nan-run', kind: 'ingredient', scores: { val: NaN }, diverged: { tensor: 'w', element: 0, value: 'NaN' } },
      { name: 'a', kind: 'ingredient', scores: { val: 0.4 } },
      { name: 'b', kind: 'ingredient', scores: { val: 0.3 } },
      { name: 'greedy soup', kind: 'greedy', scores: { val: 0.25 } },
    ],
  };

  it('compares the greedy soup with the best ingredient that did not diverge, lower being better for eval_loss', () => {
    assert.deepEqual(checkGates(sweep, { requireGreedyBeatsBest: true }), [
      { gate: '--require-greedy-beats-best', passed: true, detail: 'greedy soup 0.2500 vs best ingredient b 0.3000 on val' },
    ]);
    assert.equal(checkGates(sweep, { failUnder: 0.3 })[0]!.passed, true, 'a loss of 0.25 is under 0.3');
  });

  it('reads a baseline whose NaN scores JSON wrote as null back as NaN', () => {
    const read = compareDocumentSchema.parse(JSON.parse(JSON.stringify(sweep)));
    assert.ok(Number.isNaN(read.rows[0]!.scores.val));
    assert.equal(read.direction, 'minimize');
    assert.deepEqual(read.rows[0]!.diverged, { tensor: 'w', element: 0, value: 'NaN' });
  });

  it("fails a baseline when a soup's score has become NaN", () => {
    const nan: CompareDocument = { ...sweep, rows: sweep.rows.map((row) => (row.kind === 'greedy' ? { ...row, scores: { val: NaN } } : row)) };
    const [gate] = checkGates(nan, { baseline: sweep });
    assert.equal(gate!.passed, false);
    assert.equal(gate!.detail, 'dropped more than 0: greedy soup on val: 0.2500 -> NaN (drop Infinity)');
  });
});
