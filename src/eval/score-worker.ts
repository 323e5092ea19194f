/**
 * Worker thread entry for parallel scoring: builds its own TF.js model and backend, then scores the
 * ingredients it is given, one at a time, and posts each one's metrics back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { closeAll, openCheckpoint } from '../checkpoint/discover.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { loadDataset } from '../data/dataset.js';
import { SoupError } from '../errors.js';
import { ingredientWeights } from '../weights/candidate.js';
import type { ScoreJob } from './pool.js';
import { TfjsEvaluator } from './tfjs.js';

const job = workerData as ScoreJob;
// The data set opens again here (an image folder's decoded cache is found, not rebuilt).
const dataset = await loadDataset(job.data.target, job.data.flags, { cacheDir: job.data.cacheDir, inMemoryBytes: job.data.inMemoryBytes });
const evaluator = await TfjsEvaluator.create({ ...job.evaluator, dataset });
try {
  for (const { index, ingredient } of job.ingredients) {
    let checkpoint: Checkpoint | undefined;
    try {
      checkpoint = await openCheckpoint(ingredient);
      const evaluation = await evaluator.evaluate(ingredientWeights(checkpoint, job.allowNonFinite));
      parentPort!.postMessage({ index, evaluation });
    } catch (error) {
      // Errors lose their class crossing threads: send what rebuilds a typed error on the other side.
      const soup = error instanceof SoupError ? { exitCode: error.exitCode, hint: error.hint } : undefined;
      parentPort!.postMessage({ index, error: { message: (error as Error).message, soup } });
    } finally {
      if (checkpoint !== undefined) await closeAll([checkpoint]);
    }
  }
} finally {
  await evaluator.dispose();
}
