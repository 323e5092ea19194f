import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll } from '../../../src/checkpoint/discover.js';
import { TfjsCheckpoint } from '../../../src/checkpoint/tfjs.js';
import { readRecipe } from '../../../src/recipe/recipe.js';
import { openIngredients } from '../../../src/soup/ingredients.js';
import { makeGreedySoup } from '../../../src/soup/strategies/greedy-soup.js';
import { prepareOutput, writeOutcome } from '../../../src/soup/write.js';
import { tempDir } from '../../helpers/files.js';

const fixtures = new URL('../../../../fixtures/', import.meta.url).pathname;
const val = path.join(fixtures, 'data', 'val');

describe('makeGreedySoup', () => {
  it('scores the shipped ingredients, grows the soup and returns the recipe and document soup greedy --json reports', async () => {
    const checkpoints = await openIngredients([path.join(fixtures, 'ingredients')]);
    try {
      const out = path.join(await tempDir(), 'soup');
      const output = await prepareOutput(checkpoints, { out });
      const warnings: string[] = [];
      const made = await makeGreedySoup(checkpoints, undefined, output, {
        val,
        metric: 'accuracy',
        backend: 'wasm',
        batchSize: 512,
        executor: 'local',
        retries: 2,
        acceptTies: false,
        prune: true,
        allowNonFinite: false,
        command: ['greedy', 'ingredients', '--val', 'val'],
        warn: (message) => warnings.push(message),
      });
      const chosen = ['lr1e-4-s1', 'lr3e-4-s2', 'lr1e-3-ls-s5', 'lr3e-4-e4-s6'];
      assert.deepEqual(made.document.chosen, chosen, 'the best ingredient first, then each one that raised the score, in the order tried');
      assert.deepEqual(made.record.chosen, chosen);
      assert.deepEqual(warnings, []);
      assert.deepEqual(Object.keys(made.document), [
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
        'evaluationsFromCache',
        'samples',
        'samplesScored',
        'samplesSaved',
      ]);
      const { ingredients, steps, ...rest } = made.document;
      assert.deepEqual(rest, {
        strategy: 'greedy',
        metric: 'accuracy',
        direction: 'maximize',
        backend: 'wasm',
        jobs: 1,
        chosen,
        leftOut: [],
        score: 0.846,
        evaluations: 15,
        evaluationsFromCache: 0,
        samples: 2000,
        samplesScored: 29024,
        samplesSaved: 976,
      });
      assert.deepEqual(
        ingredients.map((ingredient) => [ingredient.name, ingredient.score]),
        [
          ['lr1e-3-ls-s5', 0.8385],
          ['lr1e-3-s4', 0.8155],
          ['lr1e-4-ls-aug-s7', 0.824],
          ['lr1e-4-s1', 0.842],
          ['lr3e-2-s8', 0.819],
          ['lr3e-4-aug-s3', 0.8235],
          ['lr3e-4-e4-s6', 0.8375],
          ['lr3e-4-s2', 0.8395],
        ],
      );
      assert.deepEqual(steps, [
        { candidate: 'lr3e-4-s2', score: 0.8425, accepted: true },
        { candidate: 'lr1e-3-ls-s5', score: 0.845, accepted: true },
        { candidate: 'lr3e-4-e4-s6', score: 0.846, accepted: true },
        { candidate: 'lr1e-4-ls-aug-s7', score: 0.844, accepted: false },
        { candidate: 'lr3e-4-aug-s3', score: 0.84, accepted: false },
        { candidate: 'lr3e-2-s8', score: 0.8075, accepted: false, pruned: true },
        { candidate: 'lr1e-3-s4', score: 0.8455, accepted: false },
      ]);
      assert.deepEqual(made.about, { evaluator: 'tfjs (wasm)', source: 'val (2000 samples)', format: 'tfjs' });

      await writeOutcome(checkpoints, output, made);
      const soup = await TfjsCheckpoint.open(out);
      const recipe = readRecipe(soup)!;
      await soup.close();
      assert.deepEqual(recipe.chosen, chosen);
      assert.equal(recipe.score, 0.846);
      assert.deepEqual(recipe.command, ['greedy', 'ingredients', '--val', 'val']);
    } finally {
      await closeAll(checkpoints);
    }
  });
});
