import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricAccumulator, byScore, improves, knownDirection, metricDirection } from '../../src/eval/metrics.js';

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

describe('knownDirection', () => {
  it('minimises the losses and errors that scripts print, with or without eval_, val_ or test_', () => {
    for (const name of [
      'loss',
      'eval_loss',
      'val_loss',
      'test_loss',
      'train_loss',
      'perplexity',
      'eval_perplexity',
      'wer',
      'eval_wer',
      'cer',
      'mse',
      'mae',
      'rmse',
      'error',
      'val_error',
      'eval_ce_loss',
    ]) {
      assert.equal(knownDirection(name), 'minimize', name);
    }
  });

  it('maximises accuracies and overlap scores', () => {
    for (const name of [
      'accuracy',
      'eval_accuracy',
      'top5',
      'margin',
      'f1',
      'eval_f1',
      'f1_macro',
      'bleu',
      'eval_bleu',
      'rouge1',
      'rougeL',
      'eval_rougeLsum',
      'exact_match',
      'eval_exact_match',
      'auc',
      'roc_auc',
      'matthews_correlation',
    ]) {
      assert.equal(knownDirection(name), 'maximize', name);
    }
  });

  it('does not guess for names that do not say', () => {
    for (const name of ['eval_runtime', 'eval_samples_per_second', 'score', 'reward', 'epoch']) assert.equal(knownDirection(name), undefined, name);
  });
});

describe('metricDirection', () => {
  it('follows --maximize and --minimize over the name, and refuses both at once', () => {
    assert.equal(metricDirection('eval_loss'), 'minimize');
    assert.equal(metricDirection('eval_loss', { maximize: true }), 'maximize');
    assert.equal(metricDirection('reward', { maximize: true }), 'maximize');
    assert.equal(metricDirection('eval_runtime', { minimize: true }), 'minimize');
    assert.throws(() => metricDirection('loss', { maximize: true, minimize: true }), {
      message: '--maximize and --minimize contradict each other; pass one of them',
    });
  });

  it('asks for a flag when the name does not say', () => {
    assert.throws(() => metricDirection('reward'), {
      name: 'UsageError',
      message: '--metric reward: soup does not know whether a higher or a lower reward is better',
      hint: 'pass --maximize if higher is better (as for accuracy), or --minimize if lower is better (as for loss)',
    });
  });
});

describe('byScore and improves with non-finite scores', () => {
  it('ranks best first whichever way the metric points, NaN and infinities last', () => {
    assert.deepEqual([0.3, NaN, 0.9, -Infinity, 0.5].sort(byScore('maximize')), [0.9, 0.5, 0.3, NaN, -Infinity]);
    assert.deepEqual([0.3, NaN, 0.9, -Infinity, 0.5].sort(byScore('minimize')), [0.3, 0.5, 0.9, NaN, -Infinity]);
  });

  it('never lets a non-finite score improve, and lets any finite score improve on one', () => {
    assert.equal(improves('minimize', -Infinity, 0.4, false), false, 'a -Infinity loss from a script is the worst, not the best');
    assert.equal(improves('maximize', Infinity, 0.4, false), false);
    assert.equal(improves('maximize', 0.1, NaN, false), true);
  });
});

describe('MetricAccumulator on non-finite outputs', () => {
  it('counts a sample with NaN or infinite logits as wrong, and makes loss and margin NaN', () => {
    const metrics = new MetricAccumulator(3, false);
    // Label 0 with NaN elsewhere would be "argmax 0" if NaN were skipped; label 1 with +Infinity on the label.
    metrics.add([1, NaN, NaN, 0, Infinity, 0, 3, 1, 0], [0, 1, 0]);
    const result = metrics.result();
    assert.equal(result.accuracy, 1 / 3);
    assert.equal(result.top5, 1 / 3);
    assert.ok(Number.isNaN(result.loss));
    assert.ok(Number.isNaN(result.margin));
  });
});
