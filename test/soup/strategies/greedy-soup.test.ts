import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll } from '../../../src/checkpoint/discover.js';
import { TfjsCheckpoint } from '../../../src/checkpoint/tfjs.js';
import { readRecipe } from '../../../src/recipe/recipe.js';
import { openIngredients } from '../../../src/soup/ingredients.js';
import { makeGreedySoup } from '../../../src/soup/strategies/greedy-soup.js';
import { prepareOutput, writeOutcome } from '../../../src/soup/write.js';
import { oneWeightIngredients, tempDir } from '../../helpers/files.js';
import { halfwayScorer } from '../../helpers/scorer.js';

const fixtures = new URL('../../../../fixtures/', import.meta.url).pathname;
const val = path.join(fixtures, 'data', 'val');
/** soup greedy's defaults, as its flags parse them. */
const defaults = { metric: 'accuracy', batchSize: 512, executor: 'local', retries: 2, acceptTies: false, prune: true, allowNonFinite: false } as const;

describe('makeGreedySoup', () => {
  it('scores the shipped ingredients, grows the soup and returns the recipe and document soup greedy --json reports', async () => {
    const checkpoints = await openIngredients([path.join(fixtures, 'ingredients')]);
    try {
      const out = path.join(await tempDir(), 'soup');
      const output = await prepareOutput(checkpoints, { out });
      const warnings: string[] = [];
      const made = await makeGreedySoup(checkpoints, undefined, output, {
        val,
        ...defaults,
        backend: 'wasm',
        // One thread: without --jobs, whether worker threads pay is measured, and so varies with the machine's load.
        jobs: 1,
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
      assert.deepEqual(made.about, { evaluator: 'tfjs (wasm)', dataset: { name: 'val', n: 2000 }, val, format: 'tfjs' });

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

  it('warns through its callback: a diverged run is scored, left out and recorded, and a second run on the same --score-cache runs nothing', async () => {
    const dir = await tempDir();
    const checkpoints = await oneWeightIngredients(path.join(dir, 'runs'), [0.25, 0.4375, Number.NaN, 0.75]);
    const evalCmd = await halfwayScorer(dir);
    const run = async (name: string) => {
      const warnings: string[] = [];
      const output = await prepareOutput(checkpoints, { out: path.join(dir, `${name}.safetensors`) });
      const made = await makeGreedySoup(checkpoints, undefined, output, {
        evalCmd,
        scoreCache: path.join(dir, 'scores.jsonl'),
        ...defaults,
        command: ['greedy', 'runs'],
        warn: (message) => warnings.push(message),
      });
      await writeOutcome(checkpoints, output, made);
      return { made, warnings };
    };
    try {
      const first = await run('first');
      assert.deepEqual(first.warnings, [
        'c diverged: NaN in w (element 0); it is scored, ranked last and left out of the soup (--allow-nonfinite keeps it in)',
      ]);
      assert.deepEqual(first.made.document.chosen, ['b']);
      assert.deepEqual(first.made.document.leftOut, ['c']);
      assert.deepEqual(first.made.document.ingredients[2], {
        name: 'c',
        path: checkpoints[2]!.path,
        score: Number.NaN,
        diverged: { tensor: 'w', element: 0, value: 'NaN' },
      });
      assert.deepEqual(first.made.record.extra?.diverged, { c: { tensor: 'w', element: 0, value: 'NaN' } });
      assert.deepEqual([first.made.document.evaluations, first.made.document.evaluationsFromCache], [6, 0]);
      assert.deepEqual(first.made.about, { evaluator: `command: ${evalCmd}`, dataset: undefined, val: undefined, format: 'safetensors' });

      const second = await run('second');
      assert.deepEqual(second.made.document.chosen, ['b']);
      assert.deepEqual(second.made.document.steps, first.made.document.steps);
      assert.deepEqual([second.made.document.evaluations, second.made.document.evaluationsFromCache], [6, 6], 'every score came from the journal');
    } finally {
      await closeAll(checkpoints);
    }
  });
});
