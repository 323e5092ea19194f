import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../../src/checkpoint/discover.js';
import type { EvaluationOptions } from '../../../src/eval/create.js';
import { readRecipe } from '../../../src/recipe/recipe.js';
import { LEARNED_DEFAULTS, learnedMemoryBytes } from '../../../src/soup/strategies/learned.js';
import { checkLearnedIngredients, learnedSoup } from '../../../src/soup/strategies/learned-soup.js';
import { prepareOutput, writeOutcome } from '../../../src/soup/write.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../../fixtures/', import.meta.url).pathname;
const val = path.join(fixtures, 'data', 'val');

/** Two of the shipped TF.js runs, scored on the shipped validation set. */
const runs = path.join(dir, 'runs');
for (const run of ['lr1e-4-s1', 'lr3e-4-s2']) await cp(path.join(fixtures, 'ingredients', run), path.join(runs, run), { recursive: true });

const evaluation: EvaluationOptions = { val, metric: 'accuracy', backend: 'wasm', batchSize: 512, executor: 'local', retries: 0 };

describe('checkLearnedIngredients', () => {
  it('leaves a diverged ingredient out of the mix with one warning, and refuses when fewer than two are left', async () => {
    const sweep = path.join(dir, 'sweep');
    for (const [name, values] of Object.entries({ a: [1, 2], b: [3, 4], c: [Number.NaN, 0] }))
      await writeSafetensorsFile(path.join(sweep, `${name}.safetensors`), { w: { dtype: 'F32', shape: [2], values } });
    const checkpoints = await openAll(await discoverIngredients([sweep]));
    try {
      const warnings: string[] = [];
      const options = { model: 'model.json', allowNonFinite: false, inputs: [sweep], warn: (message: string) => warnings.push(message) };
      const checked = await checkLearnedIngredients(checkpoints, options);
      assert.deepEqual(
        checked.mixed.map((checkpoint) => checkpoint.name),
        ['a', 'b'],
      );
      assert.deepEqual([...checked.diverged.values()], [{ tensor: 'w', element: 0, value: 'NaN' }]);
      assert.equal(checked.memoryBytes, learnedMemoryBytes(checked.mixed));
      assert.deepEqual(warnings, ['c diverged: NaN in w (element 0); it is scored, ranked last and left out of the soup (--allow-nonfinite keeps it in)']);
      await assert.rejects(checkLearnedIngredients(checkpoints.slice(1), options), {
        message: 'a learned soup mixes at least 2 ingredients; only 1 of the 2 did not diverge (c hold non-finite weights)',
      });
      await assert.rejects(checkLearnedIngredients(checkpoints, { ...options, searchOnly: '--population' }), {
        message: `--population belongs to the gradient-free search (ONNX models, --eval-cmd); ${checkpoints[0]!.path} is a TF.js model, trained by gradient descent`,
      });
      await assert.rejects(checkLearnedIngredients(checkpoints, { ...options, maxMemory: 8 }), {
        message: "the learned soup holds every ingredient's weights in memory: 2 ingredients need 40 B, more than --max-memory 8 B",
      });
    } finally {
      await closeAll(checkpoints);
    }
  });
});

describe('learnedSoup', () => {
  it('trains the mixing weights from the uniform soup and returns the soup, its recipe and its document', async () => {
    const checkpoints = await openAll(await discoverIngredients([runs]));
    try {
      const warnings: string[] = [];
      let barsEnded = 0;
      const checked = await checkLearnedIngredients(checkpoints, { allowNonFinite: false, inputs: [runs], warn: (message) => warnings.push(message) });
      const output = await prepareOutput(checkpoints, { out: path.join(dir, 'learned.safetensors') });
      const params = { ...LEARNED_DEFAULTS, epochs: 1, batchSize: 500 };
      const made = await learnedSoup(checked, output, {
        evaluation,
        params: { ...params, metric: 'ignored' } as typeof params,
        command: ['learned', runs],
        warn: (message) => warnings.push(message),
        endProgress: () => barsEnded++,
        signal: new AbortController().signal,
      });
      const doc = made.document;
      assert.deepEqual(Object.keys(doc), [
        'strategy',
        'metric',
        'direction',
        'backend',
        'jobs',
        'ingredients',
        'steps',
        'chosen',
        'leftOut',
        'score',
        'evaluations',
        'uniformScore',
        'weights',
        'beta',
        'epochs',
        'hyperparameters',
        'samples',
        'memoryBytes',
      ]);
      assert.deepEqual(doc.chosen, ['lr1e-4-s1', 'lr3e-4-s2']);
      assert.equal(doc.evaluations, 4, 'both ingredients, the uniform soup and the trained one');
      assert.equal(doc.samples, 2000);
      assert.deepEqual(doc.hyperparameters, params, 'only the settings, in their order');
      assert.equal(doc.epochs.length, 1);
      assert.ok(doc.score >= 0 && doc.score <= 1 && doc.uniformScore >= 0 && doc.uniformScore <= 1);
      for (const alphas of Object.values(doc.weights)) assert.ok(Math.abs(alphas['lr1e-4-s1']! + alphas['lr3e-4-s2']! - 1) < 1e-12, 'a convex mix');
      assert.equal(barsEnded, 1, 'the bar ends once scoring and training are over');
      assert.deepEqual(made.scoredWith, { evaluator: 'tfjs (wasm)', dataset: made.scoredWith.dataset });
      assert.equal(made.scoredWith.dataset?.n, 2000);
      assert.deepEqual(warnings, []);
      const written = await writeOutcome(checkpoints, output, made);
      const [soup] = await openAll(await discoverIngredients([written.path]));
      try {
        const recipe = readRecipe(soup!)!;
        assert.equal(recipe.strategy, 'learned');
        assert.deepEqual(recipe.chosen, doc.chosen);
        assert.equal(recipe.score, doc.score);
        assert.deepEqual(recipe.weights, doc.weights);
        assert.deepEqual(recipe.command, ['learned', runs]);
      } finally {
        await soup!.close();
      }
    } finally {
      await closeAll(checkpoints);
    }
  });
});
