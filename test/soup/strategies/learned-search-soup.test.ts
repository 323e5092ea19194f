import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../../src/checkpoint/discover.js';
import type { SearchEvaluationOptions } from '../../../src/soup/search/session.js';
import { checkLearnedSearch, learnedSearchSoup } from '../../../src/soup/strategies/learned-search-soup.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';
import { distanceScorer } from '../../helpers/scorer.js';

const dir = await tempDir();
/** Three runs of one 3-vector and one gone to NaN; the scorer's loss is the distance to 0.2 a + 0.5 b + 0.3 c. */
const runs = path.join(dir, 'runs');
for (const [name, values] of Object.entries({ a: [1, 0, 0], b: [0, 1, 0], c: [0, 0, 1], d: [0, Number.NaN, 0] }))
  await writeSafetensorsFile(path.join(runs, `${name}.safetensors`), { w: { dtype: 'F32', shape: [3], values } });
const evalCmd = await distanceScorer(dir);
const evaluation: SearchEvaluationOptions = { evalCmd, metric: 'loss', batchSize: 512, executor: 'local', retries: 0, jobs: 2 };
const settings = { seed: 0, byModel: false, evaluations: 25, sigma: 1 };

describe('checkLearnedSearch', () => {
  it('refuses settings that disagree, in one line each, and counts the memory the ingredients take', async () => {
    const checkpoints = await openAll(await discoverIngredients([runs]));
    try {
      const memory = { inputs: [runs] };
      assert.deepEqual(checkLearnedSearch(checkpoints, settings, memory), { by: 'ingredient', memoryBytes: 4 * 12 + 3 * 12 });
      assert.throws(() => checkLearnedSearch(checkpoints, { ...settings, byModel: true, by: 'block' }, memory), {
        message: '--by-model and --by block disagree: --by-model is one weight per ingredient (--by ingredient)',
      });
      assert.throws(() => checkLearnedSearch(checkpoints, { ...settings, blocks: 2 }, memory), {
        message: '--blocks groups layers into blocks, which only --by block searches',
      });
      assert.throws(() => checkLearnedSearch(checkpoints.slice(0, 1), settings, memory), {
        message: `a learned soup mixes at least 2 ingredients; ${runs} holds 1`,
      });
    } finally {
      await closeAll(checkpoints);
    }
  });
});

describe('learnedSearchSoup', () => {
  it('leaves the diverged run out, searches the mixing weights near the best mix, and answers a second run from --score-cache', async () => {
    const checkpoints = await openAll(await discoverIngredients([runs]));
    try {
      const run = async (warnings: string[], bars: { ended: number }) =>
        learnedSearchSoup(checkpoints, {
          evaluation: { ...evaluation, scoreCache: path.join(dir, 'scores.jsonl') },
          settings,
          checked: checkLearnedSearch(checkpoints, settings, { inputs: [runs] }),
          command: ['learned', runs],
          warn: (message) => warnings.push(message),
          endProgress: () => bars.ended++,
          signal: new AbortController().signal,
        });
      const warnings: string[] = [];
      const bars = { ended: 0 };
      const made = await run(warnings, bars);
      const doc = made.document;
      assert.deepEqual(warnings, ['d diverged: NaN in w (element 1); left out of the learned soup, it takes no weight']);
      assert.equal(bars.ended, 2, 'one bar for the ingredients, one for the search');
      assert.deepEqual(doc.chosen, ['a', 'b', 'c']);
      assert.deepEqual(doc.leftOut, ['d']);
      assert.deepEqual(doc.diverged, [{ name: 'd', path: path.join(runs, 'd.safetensors'), tensor: 'w', element: 1, value: 'NaN' }]);
      assert.equal(doc.objective, 'loss');
      assert.equal(doc.jobs, 2);
      assert.equal(doc.searchEvaluations, 25);
      assert.equal(doc.evaluations, 29, 'four ingredients and the search');
      assert.equal(doc.evaluationsFromCache, 0);
      assert.equal(doc.weights.w!.d, 0, 'the diverged run takes no weight');
      assert.ok(doc.score < doc.uniformScore, `searched ${doc.score} vs uniform ${doc.uniformScore}`);
      assert.equal(made.scoredWith.dataset, undefined, "the command's own data");
      assert.deepEqual(made.record.command, ['learned', runs]);
      assert.deepEqual(made.record.extra?.diverged, doc.diverged);

      const again = await run([], { ended: 0 });
      assert.equal(again.document.evaluationsFromCache, 25, 'every candidate from the journal');
      assert.equal(again.document.evaluatorCalls, 0);
      assert.deepEqual(again.document.weights, doc.weights, 'the same soup');
    } finally {
      await closeAll(checkpoints);
    }
  });
});
