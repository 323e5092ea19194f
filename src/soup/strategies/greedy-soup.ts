/**
 * `soup greedy` as one library call: the evaluator, the --score-cache journal, the diverged scan,
 * the ingredients' scores and the greedy selection (greedy.ts), returned as what to write and report.
 */
import type { FloatDType } from '../../checkpoint/dtype.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { createEvaluator, scoringReference, type EvaluationOptions } from '../../eval/create.js';
import type { Evaluator } from '../../eval/evaluator.js';
import { knownDirection, type Direction } from '../../eval/metrics.js';
import { scoreIngredients } from '../../eval/pool.js';
import { JournaledEvaluator, openScoreJournal } from '../../eval/score-cache.js';
import type { TfjsEvaluatorOptions } from '../../eval/tfjs.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import { candidateProducer } from '../../weights/candidate.js';
import { scanDiverged, type Divergence } from '../diverged.js';
import { MethodSoup } from '../merge/engine.js';
import type { GreedyMethod } from '../merge/greedy-plan.js';
import type { PreparedOutput, SoupOutcome } from '../write.js';
import { greedySoup, type GreedyResult, type ScoreFunction } from './greedy.js';
import type { GreedyMade } from './greedy-document.js';

export interface GreedyOutcome extends SoupOutcome<GreedyMade> {
  /** For people: what scored the candidates ("tfjs (wasm)", "command: ..."), on which data (--val's, or the command's own), and the output's format. */
  about: { evaluator: string; dataset: { name: string; n: number } | undefined; val: string | undefined; format: string };
}

export interface GreedySoupOptions extends EvaluationOptions {
  acceptTies: boolean;
  /** Stop scoring a candidate once it cannot beat the soup (only for a built-in metric's own direction). */
  prune: boolean;
  allowNonFinite: boolean;
  dtype?: FloatDType | undefined;
  /** The arguments that made the soup, for its recipe. */
  command: readonly string[];
  onProgress?: ProgressListener;
  warn?: (message: string) => void;
  signal?: AbortSignal;
}

/**
 * Scores the ingredients (opened, and with --method the merge every candidate is made with) and
 * grows the greedy soup into the prepared output's plan. The evaluator is disposed before this
 * returns or throws, whatever happens.
 */
export async function makeGreedySoup(
  checkpoints: readonly Checkpoint[],
  method: GreedyMethod | undefined,
  output: PreparedOutput,
  options: GreedySoupOptions,
): Promise<GreedyOutcome> {
  const warn = options.warn ?? (() => {});
  const signal = options.signal ?? new AbortController().signal;
  const reference = scoringReference(options, method?.base === undefined ? checkpoints : [method.base, ...checkpoints]);
  const setup = await createEvaluator(options, reference, undefined, options.onProgress);
  for (const warning of setup.warnings ?? []) warn(warning);
  let evaluator: Evaluator = setup.evaluator;
  let diverged: Map<Checkpoint, Divergence>;
  let selected: { result: GreedyResult; jobs: number };
  try {
    diverged = await scanDiverged(checkpoints, { allowNonFinite: options.allowNonFinite, leftOutOf: 'the soup' }, warn, signal);
    if (options.scoreCache !== undefined) {
      const opened = await openScoreJournal(setup.evaluator, await setup.identity(), options.scoreCache, checkpoints, signal);
      for (const warning of opened.warnings) warn(warning);
      evaluator = opened.evaluator;
    }
    selected = await select(checkpoints, method, evaluator, setup.tfjs, diverged, setup.direction, { ...options, signal });
  } finally {
    await evaluator.dispose();
  }
  const { result, jobs } = selected;
  const { dataset, direction } = setup;
  const chosen = result.soup.chosen.map((checkpoint) => checkpoint.name);
  return {
    producer: result.soup instanceof MethodSoup ? result.soup.merge().producer() : candidateProducer(result.soup.weights()),
    record: {
      strategy: 'greedy',
      chosen,
      scores: result.scores,
      extra: {
        metric: options.metric,
        direction,
        score: result.score,
        ...(diverged.size === 0 ? {} : { diverged: Object.fromEntries([...diverged].map(([checkpoint, divergence]) => [checkpoint.name, divergence])) }),
        validation: dataset?.path ?? options.evalCmd,
        acceptTies: options.acceptTies,
        steps: result.steps,
        ...(method === undefined ? {} : methodRecord(method)),
        ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      },
      command: options.command,
    },
    document: {
      strategy: 'greedy',
      ...(method === undefined ? {} : { method: method.plan.method.name, ...(method.base === undefined ? {} : { base: method.base.name }) }),
      metric: options.metric,
      direction,
      backend: setup.backend,
      jobs,
      ingredients: checkpoints.map((checkpoint, k) => {
        const divergence = diverged.get(checkpoint);
        return { name: checkpoint.name, path: checkpoint.path, score: result.scores[k]!, ...(divergence === undefined ? {} : { diverged: divergence }) };
      }),
      steps: result.steps,
      chosen,
      leftOut: result.leftOut.map((checkpoint) => checkpoint.name),
      score: result.score,
      evaluations: result.evaluations,
      // Scores taken from the journal for candidates scored ahead and not needed are not evaluations of this soup.
      evaluationsFromCache: evaluator instanceof JournaledEvaluator ? evaluator.hits - (result.evaluationsWastedCached ?? 0) : 0,
      ...(result.evaluationsWasted === undefined ? {} : { evaluationsWasted: result.evaluationsWasted }),
      ...(setup.slurm === undefined ? {} : { slurmJobs: setup.slurm.records }),
      samples: dataset?.n ?? null,
      samplesScored: result.samplesScored,
      samplesSaved: result.samplesSaved,
    },
    about: {
      evaluator: evaluator.description,
      dataset: dataset === undefined ? undefined : { name: dataset.name, n: dataset.n },
      val: options.val,
      format: output.target.kind,
    },
  };
}

/** Every ingredient's score (unless a method ships them otherwise), then greedy's steps, with their progress as one count. */
async function select(
  checkpoints: readonly Checkpoint[],
  method: GreedyMethod | undefined,
  evaluator: Evaluator,
  tfjs: TfjsEvaluatorOptions | undefined,
  diverged: ReadonlyMap<Checkpoint, Divergence>,
  direction: Direction,
  options: GreedySoupOptions & { signal: AbortSignal },
): Promise<{ result: GreedyResult; jobs: number }> {
  const { signal } = options;
  const progress = options.onProgress ?? ignoreProgress;
  // One score per ingredient, one per step; no step tries a diverged ingredient.
  const total = checkpoints.length * 2 - 1 - diverged.size;
  // Under a method, an ingredient alone is scored as the method ships it (ties: the base plus its trimmed delta).
  const ingredientScores =
    method !== undefined
      ? undefined
      : await scoreIngredients(checkpoints, evaluator, tfjs, {
          metric: options.metric,
          jobs: options.jobs,
          // Diverged ingredients were found above: they are scored as they are.
          allowNonFinite: true,
          signal,
          onProgress: (done, _total, candidate, status) => progress({ kind: 'score', done, total, candidate, ...status }),
        });
  const soup = method === undefined ? undefined : new MethodSoup(method.plan, method.parametersOf);
  const result = await greedySoup(checkpoints, scoreWith(evaluator, direction, options), {
    metric: options.metric,
    direction,
    exclude: new Set(diverged.keys()),
    acceptTies: options.acceptTies,
    allowNonFinite: options.allowNonFinite,
    signal,
    lookahead: lookaheadSlots(evaluator, options.jobs),
    ...(ingredientScores === undefined ? {} : { scores: ingredientScores.scores }),
    ...(soup === undefined ? {} : { soup, single: (checkpoint) => soup.weights(checkpoint) }),
    onProgress: (event) =>
      progress(event.kind === 'score' && ingredientScores !== undefined ? { ...event, done: event.done + checkpoints.length, total } : event),
  });
  if (ingredientScores !== undefined) {
    result.evaluations += checkpoints.length;
    result.samplesScored += ingredientScores.samples;
  }
  return { result, jobs: ingredientScores?.jobs ?? 1 };
}

/** Greedy's scorer: the evaluator's --metric, stopping early against the bound where that is sound, and whether the journal answered. */
function scoreWith(evaluator: Evaluator, direction: Direction, options: GreedySoupOptions & { signal: AbortSignal }): ScoreFunction {
  // Bounds for early stopping assume the built-in metric's own direction.
  const prune = options.prune && knownDirection(options.metric) === direction;
  return async (candidate, label, bound, stop) => {
    // The journal answers synchronously, before evaluate's first await: a hit shows at once.
    const hits = evaluator instanceof JournaledEvaluator ? evaluator.hits : 0;
    const pending = evaluator.evaluate(
      candidate,
      stop ?? options.signal,
      bound === undefined || !prune ? undefined : { metric: options.metric, direction, ...bound },
      { label },
    );
    const cached = evaluator instanceof JournaledEvaluator && evaluator.hits > hits;
    const evaluation = await pending;
    return {
      score: evaluation.metrics[options.metric]!,
      pruned: evaluation.pruned ?? false,
      scored: evaluation.scored ?? 0,
      total: evaluation.n ?? 0,
      cached,
    };
  };
}

/**
 * Evaluations greedy's steps may run at once: a concurrent evaluator (--eval-cmd) scores the next
 * steps' candidates ahead in idle slots, at most three levels deep (7), since each level doubles the jobs.
 */
function lookaheadSlots(evaluator: Evaluator, jobs: number | undefined): number {
  if (evaluator.concurrent !== true) return 1;
  const slots = jobs ?? (Number.isFinite(evaluator.parallelism) ? (evaluator.parallelism ?? 1) : 3);
  return Math.min(slots, 7);
}

function methodRecord(method: GreedyMethod): Record<string, unknown> {
  return { method: method.plan.method.name, base: method.base?.name ?? null, parameters: method.parameters, randomSeed: method.plan.seed };
}
