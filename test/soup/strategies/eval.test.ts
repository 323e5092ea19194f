import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import type { EvaluationOptions } from '../../../src/eval/create.js';
import { scoreCheckpoint } from '../../../src/soup/strategies/eval.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';
import { writeFirstValueScorer } from '../../helpers/merge.js';

const dir = await tempDir();
const scorer = await writeFirstValueScorer(path.join(dir, 'score.mjs'));
const evaluation: EvaluationOptions = { evalCmd: `node '${scorer}' {ckpt}`, metric: 'accuracy', batchSize: 512, executor: 'local', retries: 2 };

/** The score of a checkpoint whose weights are [0.625, `second`]. */
async function scored(second: number, allowNonFinite: boolean) {
  const checkpoint = await SafetensorsFile.open(
    await writeSafetensorsFile(path.join(dir, `w${second}.safetensors`), { w: { dtype: 'F32', shape: [2], values: [0.625, second] } }),
  );
  const warnings: string[] = [];
  try {
    return { ...(await scoreCheckpoint(checkpoint, evaluation, { allowNonFinite, warn: (message) => warnings.push(message) })), warnings };
  } finally {
    await checkpoint.close();
  }
}

describe('scoreCheckpoint', () => {
  it('scores one checkpoint as it is, without the CLI, and marks diverged weights unless told not to look', async () => {
    const plain = await scored(1, false);
    assert.deepEqual(plain.document, {
      checkpoint: path.join(dir, 'w1.safetensors'),
      n: null,
      backend: 'command',
      metrics: { accuracy: 0.625 },
      metric: 'accuracy',
      direction: 'maximize',
    });
    assert.equal(plain.data, undefined);
    assert.deepEqual(plain.warnings, []);
    const diverged = await scored(NaN, false);
    assert.deepEqual(diverged.document.diverged, { tensor: 'w', element: 1, value: 'NaN' });
    assert.deepEqual(diverged.warnings, ['wNaN diverged: NaN in w (element 1); it is scored']);
    const allowed = await scored(Infinity, true);
    assert.equal(allowed.document.diverged, undefined);
    assert.deepEqual(allowed.warnings, []);
  });
});
