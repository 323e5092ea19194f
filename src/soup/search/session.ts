/**
 * What the searches (the learned soup without gradients, evolve) share around the loop: the
 * evaluator the options ask for, --score-cache around it, the objective ranked on, how many
 * candidates are scored at once; and the evaluator disposed of however the search ends.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import { createEvaluator, type EvaluationOptions, type EvaluationSetup } from '../../eval/create.js';
import type { Evaluation, Evaluator } from '../../eval/evaluator.js';
import { metricDirection, type Direction } from '../../eval/metrics.js';
import { openScoreJournal, type OpenedJournal } from '../../eval/score-cache.js';
import type { ProgressListener } from '../../progress.js';
import { runSearch, type SearchOutcome, type SearchSpace } from './run.js';

export interface SearchEvaluationOptions extends EvaluationOptions {
  objective?: string | undefined;
}

/** Where the search says what it does: warnings, progress, and where one progress bar ends and the next begins. */
export interface SearchHooks {
  warn(message: string): void;
  onProgress?: ProgressListener;
  endProgress?(): void;
  signal: AbortSignal;
}

/** The objective's direction: the metric's own (with --maximize/--minimize) when it is the metric, else what its name says. */
export function objectiveDirection(objective: string, metric: string, direction: Direction): Direction {
  return objective === metric ? direction : metricDirection(objective);
}

/**
 * What the search ranks candidates by: --objective, else the loss where the evaluator measures one
 * (smooth where accuracy moves in steps of one sample), else --metric.
 */
export function searchObjective(evaluator: Evaluator, options: { objective?: string | undefined; metric: string }): string {
  if (options.objective !== undefined) {
    if (!evaluator.metrics.includes(options.objective) && !evaluator.description.startsWith('command:')) {
      throw new UsageError(`--objective: ${evaluator.description} measures ${evaluator.metrics.join(', ')}, not "${options.objective}"`);
    }
    return options.objective;
  }
  return evaluator.metrics.includes('loss') ? 'loss' : options.metric;
}

/**
 * Candidates scored at once: --jobs with an evaluator that takes several (--eval-cmd); ONNX Runtime
 * and TF.js score one at a time on all their threads, which --jobs does not change.
 */
export function searchJobs(evaluator: Evaluator, jobs: number | undefined, warn: (message: string) => void): number {
  if (evaluator.concurrent === true) return jobs ?? 1;
  if (jobs !== undefined && jobs > 1) warn(`--jobs ${jobs} is for --eval-cmd; ${evaluator.description} scores one candidate at a time`);
  return 1;
}

/** The evaluator a search scores with, and what it ranks by. */
export interface SearchScoring {
  setup: EvaluationSetup;
  /** setup's evaluator, answering from --score-cache when one is open. */
  evaluator: Evaluator;
  journal: OpenedJournal | undefined;
  objective: string;
  /** A checkpoint's SHA-256, the journal key of what candidates are made of ('' without --score-cache). */
  hashOf(checkpoint: Checkpoint): string;
  /** Runs CMA-ES over `space` on this evaluator, population by default 4 + 3 ln(dimension), as CMA-ES sizes it. */
  search<T>(
    space: SearchSpace<T>,
    evaluate: (candidate: T, evaluator: Evaluator, signal: AbortSignal) => Promise<Evaluation>,
    settings: { evaluations: number; population?: number | undefined; seed: number; jobs: number },
  ): Promise<{ outcome: SearchOutcome<T>; population: number }>;
}

/**
 * Builds the evaluator the options ask for (its warnings through `warn`), opens --score-cache around
 * it over `journaled`, and hands both to `run`; the evaluator is disposed of when `run` ends, however.
 */
export async function withSearchScoring<R>(
  options: SearchEvaluationOptions,
  reference: Checkpoint,
  journaled: readonly Checkpoint[],
  hooks: SearchHooks,
  run: (scoring: SearchScoring) => Promise<R>,
): Promise<R> {
  const setup = await createEvaluator(options, reference, undefined, hooks.onProgress);
  for (const warning of setup.warnings ?? []) hooks.warn(warning);
  let evaluator: Evaluator = setup.evaluator;
  try {
    const objective = searchObjective(setup.evaluator, options);
    let journal: OpenedJournal | undefined;
    if (options.scoreCache !== undefined) {
      journal = await openScoreJournal(setup.evaluator, await setup.identity(), options.scoreCache, journaled, hooks.signal);
      for (const warning of journal.warnings) hooks.warn(warning);
      evaluator = journal.evaluator;
    }
    const scoring: SearchScoring = {
      setup,
      evaluator,
      journal,
      objective,
      hashOf: (checkpoint) => journal?.hashes.get(checkpoint) ?? '',
      search: async (space, evaluate, settings) => {
        const population = settings.population ?? 4 + Math.floor(3 * Math.log(space.dimension));
        const outcome = await runSearch(space, (candidate, signal) => evaluate(candidate, evaluator, signal), {
          ...settings,
          population,
          objective,
          direction: objectiveDirection(objective, options.metric, setup.direction),
          journal: journal === undefined ? undefined : { journal: journal.journal, evaluator: journal.key },
          signal: hooks.signal,
          onProgress: hooks.onProgress,
        });
        return { outcome, population };
      },
    };
    return await run(scoring);
  } finally {
    hooks.endProgress?.();
    await evaluator.dispose();
  }
}

/** How the search's evaluations went: scored now, answered by --score-cache, and how fast, for --json. */
export function searchCounts(outcome: SearchOutcome<unknown>): { evaluatorCalls: number; evaluationsFromCache: number; evaluationsPerSecond: number } {
  return {
    evaluatorCalls: outcome.evaluatorCalls,
    evaluationsFromCache: outcome.evaluations - outcome.evaluatorCalls,
    evaluationsPerSecond: Number((outcome.evaluations / Math.max(outcome.seconds, 1e-9)).toFixed(2)),
  };
}
