import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Ingredient } from '../checkpoint/discover.js';
import { SoupError, throwIfAborted, type ExitCode } from '../errors.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { ingredientWeights } from '../weights/candidate.js';
import { remembersScores, type Evaluation, type Evaluator } from './evaluator.js';
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
            worker.on(
              'message',
              (message: { index: number; evaluation?: Evaluation; error?: { message: string; soup?: { exitCode: ExitCode; hint?: string } } }) => {
                if (message.error !== undefined) {
                  const { soup } = message.error;
                  reject(
                    soup === undefined
                      ? new Error(message.error.message)
                      : new SoupError(message.error.message, soup.exitCode, soup.hint === undefined ? {} : { hint: soup.hint }),
                  );
                  return;
                }
                results[message.index] = message.evaluation!;
                options.onScored?.(message.index);
                if (++received === share.length) resolve();
              },
            );
            // An error thrown outside the scoring loop (building the model) arrives as a plain clone.
            worker.on('error', (error: Error & { exitCode?: ExitCode; hint?: string }) =>
              reject(error.exitCode === undefined ? error : new SoupError(error.message, error.exitCode, error.hint === undefined ? {} : { hint: error.hint })),
            );
            worker.on('exit', (code) => {
              if (received < share.length) reject(new Error(`a scoring worker stopped (exit code ${code}) before scoring its ingredients`));
            });
            options.signal?.addEventListener('abort', () => reject(options.signal!.reason instanceof Error ? options.signal!.reason : new Error('aborted')), {
              once: true,
            });
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

/** How a batch of evaluations is going, for progress displays of long (external) evaluations. */
export interface ScoringStatus {
  /** Evaluations under way right now. */
  running: number;
  /** Mean seconds per finished evaluation, once one has finished. */
  secondsEach?: number;
}

export interface ScoreAllOptions {
  metric: string;
  /** Worker threads to use, or evaluations run at once by a concurrent evaluator (--eval-cmd); undefined decides from the time the first ingredient takes. */
  jobs?: number | undefined;
  allowNonFinite?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, candidate: string, status?: ScoringStatus) => void;
}

/**
 * Runs task(0) ... task(count - 1), at most `jobs` at a time. The first failure (or Ctrl-C) stops the
 * others through their signal, and is thrown only once every task has finished cleaning up, so no
 * process or temporary checkpoint outlives the call.
 */
export async function runConcurrently(
  count: number,
  jobs: number,
  task: (index: number, signal: AbortSignal) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  throwIfAborted(signal);
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < count && !stop.signal.aborted) {
      const index = next++;
      try {
        await task(index, stop.signal);
      } catch (error) {
        failure ??= { error };
        stop.abort(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, count)) }, lane));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  throwIfAborted(signal);
  if (failure !== undefined) throw failure.error;
}

/** Scores every ingredient with an evaluator that takes several candidates at once, `jobs` at a time. */
async function scoreConcurrently(
  checkpoints: readonly Checkpoint[],
  evaluator: Evaluator,
  jobs: number,
  options: ScoreAllOptions,
): Promise<{ scores: number[]; samples: number; jobs: number }> {
  const scores: number[] = new Array(checkpoints.length);
  let samples = 0;
  let running = 0;
  let done = 0;
  let seconds = 0;
  const status = (): ScoringStatus => ({ running, ...(done > 0 ? { secondsEach: seconds / done } : {}) });
  await runConcurrently(
    checkpoints.length,
    jobs,
    async (k, signal) => {
      const checkpoint = checkpoints[k]!;
      running++;
      options.onProgress?.(done, checkpoints.length, checkpoint.name, status());
      const started = performance.now();
      try {
        const evaluation = await evaluator.evaluate(ingredientWeights(checkpoint, options.allowNonFinite), signal);
        scores[k] = evaluation.metrics[options.metric]!;
        samples += evaluation.scored ?? evaluation.n ?? 0;
        seconds += (performance.now() - started) / 1000;
        done++;
      } finally {
        running--;
      }
      options.onProgress?.(done, checkpoints.length, checkpoint.name, status());
    },
    options.signal,
  );
  return { scores, samples, jobs: Math.min(jobs, checkpoints.length) };
}

/**
 * Every ingredient's score. An evaluator that runs external commands takes --jobs of them at once.
 * Otherwise the first one is scored on this thread, then the rest on all cores when that pays
 * (or when --jobs says so), else on this thread too. Returns scores in ingredient order and the
 * number of samples run.
 */
export async function scoreIngredients(
  checkpoints: readonly Checkpoint[],
  evaluator: Evaluator,
  parallel: TfjsEvaluatorOptions | undefined,
  options: ScoreAllOptions,
): Promise<{ scores: number[]; samples: number; jobs: number }> {
  if (!remembersScores(evaluator)) return scoreEvery(checkpoints, evaluator, parallel, options);
  // Scores in the journal are taken as they are; only the others are measured (on workers too).
  const known = checkpoints.map((checkpoint) => evaluator.recall(ingredientWeights(checkpoint, options.allowNonFinite)));
  const todo = checkpoints.map((_, k) => k).filter((k) => known[k] === undefined);
  const recalled = checkpoints.length - todo.length;
  options.onProgress?.(recalled, checkpoints.length, 'from the score cache');
  const measured =
    todo.length === 0
      ? { scores: [], samples: 0, jobs: 1 }
      : await scoreEvery(
          todo.map((k) => checkpoints[k]!),
          evaluator,
          parallel,
          {
            ...options,
            onProgress: (done, _total, candidate, status) => options.onProgress?.(done + recalled, checkpoints.length, candidate, status),
          },
        );
  const scores = checkpoints.map((_, k) => known[k]?.metrics[options.metric] ?? measured.scores[todo.indexOf(k)]!);
  return { scores, samples: measured.samples, jobs: measured.jobs };
}

async function scoreEvery(
  checkpoints: readonly Checkpoint[],
  evaluator: Evaluator,
  parallel: TfjsEvaluatorOptions | undefined,
  options: ScoreAllOptions,
): Promise<{ scores: number[]; samples: number; jobs: number }> {
  // A cluster executor takes every ingredient at once unless --jobs bounds it.
  const concurrentJobs = options.jobs ?? evaluator.parallelism ?? 1;
  if (evaluator.concurrent === true && concurrentJobs > 1) return scoreConcurrently(checkpoints, evaluator, concurrentJobs, options);
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
    const parallelStarted = performance.now();
    const evaluations = await scoreInParallel(
      checkpoints.slice(1).map(({ name, path, format }) => ({ name, path, format })),
      parallel!,
      {
        jobs,
        allowNonFinite: options.allowNonFinite ?? false,
        signal: options.signal,
        onScored: () => options.onProgress?.(++done, checkpoints.length, 'in parallel'),
      },
    );
    evaluations.forEach((evaluation, i) => {
      scores[i + 1] = evaluation.metrics[options.metric]!;
      samples += evaluation.scored ?? evaluation.n ?? 0;
    });
    if (remembersScores(evaluator)) {
      const seconds = ((performance.now() - parallelStarted) / 1000) * (jobs / rest);
      for (const [i, evaluation] of evaluations.entries()) {
        const checkpoint = checkpoints[i + 1]!;
        await evaluator.record(ingredientWeights(checkpoint), checkpoint.name, evaluation, seconds);
      }
    }
    return { scores, samples, jobs };
  }
  for (let k = 1; k < checkpoints.length; k++) await serial(k);
  return { scores, samples, jobs: 1 };
}
