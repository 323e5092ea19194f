import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../../src/checkpoint/discover.js';
import type { Evaluator } from '../../../src/eval/evaluator.js';
import { ingredientWeights } from '../../../src/weights/candidate.js';
import { searchJobs, withSearchScoring, type SearchEvaluationOptions } from '../../../src/soup/search/session.js';
import { tempDir } from '../../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../../fixtures/', import.meta.url).pathname;
const runs = [path.join(fixtures, 'onnx', 'lr1e-4-s1.onnx'), path.join(fixtures, 'onnx', 'lr3e-4-s2.onnx')];
const evaluation: SearchEvaluationOptions = { val: path.join(fixtures, 'data', 'val'), metric: 'accuracy', batchSize: 512, executor: 'local', retries: 0 };

describe('withSearchScoring', () => {
  it('ranks by the loss, opens --score-cache over the ingredients, warns that --jobs does not apply, and disposes of the evaluator when the search fails', async () => {
    const checkpoints = await openAll(await discoverIngredients(runs));
    try {
      const warnings: string[] = [];
      let barsEnded = 0;
      let seen: { evaluator: Evaluator; objective: string; hashes: string[]; jobs: number } | undefined;
      const hooks = { warn: (message: string) => warnings.push(message), endProgress: () => barsEnded++, signal: new AbortController().signal };
      await assert.rejects(
        withSearchScoring({ ...evaluation, scoreCache: path.join(dir, 'scores.jsonl') }, checkpoints[0]!, checkpoints, hooks, async (scoring) => {
          seen = {
            evaluator: scoring.evaluator,
            objective: scoring.objective,
            hashes: checkpoints.map(scoring.hashOf),
            jobs: searchJobs(scoring.evaluator, 2, hooks.warn),
          };
          throw new Error('the search failed');
        }),
        { message: 'the search failed' },
      );
      assert.equal(seen?.objective, 'loss', 'the loss, smooth where accuracy moves in steps');
      assert.ok(
        seen.hashes.every((hash) => /^[0-9a-f]{64}$/.test(hash)),
        'each ingredient keyed by its SHA-256',
      );
      assert.equal(barsEnded, 1);
      assert.equal(seen.jobs, 1);
      assert.match(warnings.join('\n'), /^--jobs 2 is for --eval-cmd; onnxruntime \(cpu, \d+ threads\) scores one candidate at a time$/);
      await assert.rejects(seen.evaluator.evaluate(ingredientWeights(checkpoints[0]!)), 'the evaluator was disposed of');
      await assert.rejects(
        withSearchScoring({ ...evaluation, objective: 'perplexity' }, checkpoints[0]!, checkpoints, hooks, async () => 0),
        { message: /^--objective: onnxruntime \(cpu, \d+ threads\) measures accuracy, top5, loss, margin, not "perplexity"$/ },
      );
    } finally {
      await closeAll(checkpoints);
    }
  });
});
