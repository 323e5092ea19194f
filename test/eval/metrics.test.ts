import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricAccumulator, improves } from '../../src/eval/metrics.js';

const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} vs ${expected}`);

describe('MetricAccumulator', () => {
  it('computes accuracy, top5, cross-entropy from logits and margin as by hand', () => {
    const metrics = new MetricAccumulator(3, false);
    // Sample 1: label 0, logits [2, 1, 0]: correct, margin 1, loss = log(e^2+e^1+e^0) - 2.
    // Sample 2: label 2, logits [0, 3, 1]: wrong, margin 1 - 3 = -2, loss = log(1+e^3+e^1) - 1.
    metrics.add([2, 1, 0, 0, 3, 1], [0, 2]);
    const result = metrics.result();
    assert.equal(result.accuracy, 0.5);
    assert.equal(result.top5, 1, 'with 3 classes every label is in the top 5');
    close(result.margin, (1 + -2) / 2);
    close(result.loss, (Math.log(Math.E ** 2 + Math.E + 1) - 2 + Math.log(1 + Math.E ** 3 + Math.E) - 1) / 2);
  });

  it('takes the log of probabilities when the model ends in softmax, clipped like Keras', () => {
    const metrics = new MetricAccumulator(2, true);
    metrics.add([0.25, 0.75, 1, 0], [1, 1]);
    const result = metrics.result();
    close(result.loss, (-Math.log(0.75) - Math.log(1e-7)) / 2);
    assert.equal(result.accuracy, 0.5);
  });

  it('counts top-5 hits across batches', () => {
    const metrics = new MetricAccumulator(7, false);
    metrics.add([6, 5, 4, 3, 2, 1, 0], [4]); // fifth best: a top-5 hit
    metrics.add([6, 5, 4, 3, 2, 1, 0], [5]); // sixth best: a miss
    assert.equal(metrics.result().top5, 0.5);
    assert.equal(metrics.count, 2);
  });
});

describe('improves', () => {
  it('is strict unless ties are accepted, and lower is better for loss', () => {
    assert.equal(improves('maximize', 0.9, 0.8, false), true);
    assert.equal(improves('maximize', 0.8, 0.8, false), false);
    assert.equal(improves('maximize', 0.8, 0.8, true), true);
    assert.equal(improves('minimize', 0.3, 0.4, false), true);
    assert.equal(improves('minimize', 0.5, 0.4, true), false);
    assert.equal(improves('maximize', NaN, 0.4, true), false);
  });
});
