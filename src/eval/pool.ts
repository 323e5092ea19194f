import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Ingredient } from '../checkpoint/discover.js';
import { SoupError, throwIfAborted, type ExitCode } from '../errors.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { ingredientWeights } from '../soup/greedy.js';
import type { Evaluation, Evaluator } from './evaluator.js';
import type { DatasetSource } from '../data/dataset.js';
import type { TfjsEvaluatorOptions } from './tfjs.js';

/** What one scoring worker needs: the model and data to build its evaluator, and its share of the ingredients. */
export interface ScoreJob {
  /** The evaluator's options without the data set, which cannot cross threads: the worker opens it again from `data`. */
  evaluator: Omit<TfjsEvaluatorOptions, 'dataset'>;
  data: DatasetSource;
  allowNonFinite: boolean;
  ingredients: { index: number; ingredient: Ingredient }[];
}

export function defaultJobs(): number {
  return availableParallelism();
}

/**
 * Scores ingredients on `jobs` worker threads, each with its own TF.js backend (the wasm backend is
 * single-threaded, so one model per core is how scoring uses every core). Returns evaluations in
 * ingredient order; the numbers are those serial scoring gives, as every worker runs the same backend.
 */
export async function scoreInParallel(
  ingredients: readonly Ingredient[],
  evaluator: TfjsEvaluatorOptions,
  options: { jobs: number; allowNonFinite?: boolean; signal?: AbortSignal; onScored?: (index: number) => void },
): Promise<Evaluation[]> {
  throwIfAborted(options.signal);
  const jobs = Math.max(1, Math.min(options.jobs, ingredients.length));
  const shares: ScoreJob['ingredients'][] = Array.from({ length: jobs }, () => []);
  ingredients.forEach((ingredient, index) => shares[index % jobs]!.push({ index, ingredient }));
  const results: Evaluation[] = new Array(ingredients.length);
  const workers: Worker[] = [];
  try {
    await Promise.all(
      shares.map(
        (share) =>
          new Promise<void>((resolve, reject) => {
            const { dataset, ...rest } = evaluator;
            const job: ScoreJob = { evaluator: rest, data: dataset.source, allowNonFinite: options.allowNonFinite ?? false, ingredients: share };
            const worker = new Worker(new URL('./score-worker.js', import.meta.url), { workerData: job });
            workers.push(worker);
            let received = 0;
            worker.on('message', (message: { index: number; evaluation?: Evaluation; error?: { message: string; soup?: { exitCode: ExitCode; hint?: string } } }) => {
              if (message.error !== undefined) {
                const { soup } = message.error;
                reject(soup === undefined ? new Error(message.error.message) : new SoupError(message.error.message, soup.exitCode, soup.hint === undefined ? {} : { hint: soup.hint }));
                return;
              }
              results[message.index] = message.evaluation!;
              options.onScored?.(message.index);
              if (++received === share.length) resolve();
            });
            // An error thrown outside the scoring loop (building the model) arrives as a plain clone.
            worker.on('error', (error: Error & { exitCode?: ExitCode; hint?: string }) =>
              reject(error.exitCode === undefined ? error : new SoupError(error.message, error.exitCode, error.hint === undefined ? {} : { hint: error.hint })),
            );
            worker.on('exit', (code) => {
              if (received < share.length) reject(new Error(`a scoring worker stopped (exit code ${code}) before scoring its ingredients`));
            });
            options.signal?.addEventListener('abort', () => reject(options.signal!.reason instanceof Error ? options.signal!.reason : new Error('aborted')), { once: true });
          }),
      ),
    );
    return results;
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

/** Below this much estimated serial scoring, starting workers (each loads TF.js) costs more than it saves. */
const PARALLEL_THRESHOLD_SECONDS = 1.5;

export interface ScoreAllOptions {
  metric: string;
  /** Worker threads to use; undefined decides from the time the first ingredient takes. */
  jobs?: number | undefined;
  allowNonFinite?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, candidate: string) => void;
}

/**
 * Every ingredient's score: the first one on this thread, then the rest on all cores when that pays
 * (or when --jobs says so), else on this thread too. Returns scores in ingredient order and the
 * number of samples run.
 */
export async function scoreIngredients(
  checkpoints: readonly Checkpoint[],
  evaluator: Evaluator,
  parallel: TfjsEvaluatorOptions | undefined,
  options: ScoreAllOptions,
): Promise<{ scores: number[]; samples: number; jobs: number }> {
  const scores: number[] = [];
  let samples = 0;
  const serial = async (k: number): Promise<void> => {
    const checkpoint = checkpoints[k]!;
    options.onProgress?.(k, checkpoints.length, checkpoint.name);
    const evaluation = await evaluator.evaluate(ingredientWeights(checkpoint, options.allowNonFinite), options.signal);
    scores[k] = evaluation.metrics[options.metric]!;
    samples += evaluation.scored ?? evaluation.n ?? 0;
  };
  const started = performance.now();
  await serial(0);
  const rest = checkpoints.length - 1;
  const firstSeconds = (performance.now() - started) / 1000;
  const jobs = parallel === undefined ? 1 : (options.jobs ?? (firstSeconds * rest > PARALLEL_THRESHOLD_SECONDS ? defaultJobs() : 1));
  if (jobs > 1 && rest > 1) {
    let done = 1;
    const evaluations = await scoreInParallel(
      checkpoints.slice(1).map(({ name, path, format }) => ({ name, path, format })),
      parallel!,
      { jobs, allowNonFinite: options.allowNonFinite ?? false, signal: options.signal, onScored: () => options.onProgress?.(++done, checkpoints.length, 'in parallel') },
    );
    evaluations.forEach((evaluation, i) => {
      scores[i + 1] = evaluation.metrics[options.metric]!;
      samples += evaluation.scored ?? evaluation.n ?? 0;
    });
    return { scores, samples, jobs };
  }
  for (let k = 1; k < checkpoints.length; k++) await serial(k);
  return { scores, samples, jobs: 1 };
}
