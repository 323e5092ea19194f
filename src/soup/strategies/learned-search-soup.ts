/**
 * `soup learned` for models soup can only score (ONNX Runtime, --eval-cmd): the ingredients held in
 * memory, scored, and CMA-ES over the mixing weights' logits from the uniform soup; the best soup it
 * scored, with its recipe and --json document.
 */
import type { FloatDType } from '../../checkpoint/dtype.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import { scoreIngredients } from '../../eval/pool.js';
import { candidateProducer } from '../../weights/candidate.js';
import { describeDivergence } from '../diverged.js';
import { LayerIndex } from '../merge/methods/parameters.js';
import type { GenerationRecord } from '../search/run.js';
import { searchCounts, searchJobs, withSearchScoring, type SearchEvaluationOptions, type SearchHooks } from '../search/session.js';
import type { SoupOutcome } from '../write.js';
import { refuseOverMemory } from './learned.js';
import { MixingSpace, loadIngredients, type Diverged, type SearchBy } from './learned-search.js';
import type { LearnedDocument, ScoredWith } from './learned-soup.js';

/**
 * The --json document of the gradient-free learned soup: every field of the gradient path's (beta is
 * 1 and epochs empty: nothing is trained), plus the search: objective, generations, evaluation counts.
 */
export interface LearnedSearchDocument extends Omit<LearnedDocument, 'hyperparameters'> {
  hyperparameters: Record<string, unknown>;
  optimizer: 'CMA-ES';
  /** What candidates were ranked by (the loss where the evaluator gives one), and the winner's value. */
  objective: string;
  objectiveScore: number;
  /** Every metric of the soup written. */
  metrics: Record<string, number>;
  by: SearchBy;
  /** {block: {ingredient: alpha}}: the weights as searched (one block, "all tensors", with --by ingredient). */
  blocks: Record<string, Record<string, number>>;
  generations: GenerationRecord[];
  /** Evaluations of the search (the uniform soup and every candidate), without the ingredients'. */
  searchEvaluations: number;
  /** Of those, scored by the evaluator now; the rest came from --score-cache. */
  evaluatorCalls: number;
  evaluationsFromCache: number;
  evaluationsPerSecond: number;
  /** Ingredients left out because a weight is NaN or infinite. */
  diverged: Diverged[];
}

/** How the search runs: what it searches over, and CMA-ES's settings. */
export interface LearnedSearchSettings {
  seed: number;
  /** One weight per ingredient (--by-model), the same as --by ingredient. */
  byModel: boolean;
  by?: SearchBy | undefined;
  /** Neighbouring blocks joined into this many (--by block). */
  blocks?: number | undefined;
  evaluations: number;
  population?: number | undefined;
  sigma: number;
  /** Where the layer index is in a tensor name, for --by block. */
  layerPattern?: string | undefined;
}

/** The search's settings, as --json and the recipe record them. */
function hyperparameters(settings: LearnedSearchSettings, by: SearchBy, objective: string, population: number): Record<string, unknown> {
  return {
    optimizer: 'CMA-ES',
    by,
    ...(by === 'block' ? { blocks: settings.blocks ?? null } : {}),
    evaluations: settings.evaluations,
    population,
    sigma: settings.sigma,
    seed: settings.seed,
    objective,
  };
}

/** Checks the settings agree and the ingredients fit in --max-memory, before the output is prepared; `inputs` as the user typed them. */
export function checkLearnedSearch(
  checkpoints: readonly Checkpoint[],
  settings: LearnedSearchSettings,
  memory: { maxMemory?: number | undefined; inputs: readonly string[] },
): { by: SearchBy; memoryBytes: number } {
  if (settings.byModel && settings.by === 'block')
    throw new UsageError('--by-model and --by block disagree: --by-model is one weight per ingredient (--by ingredient)');
  const by: SearchBy = settings.by ?? 'ingredient';
  if (settings.blocks !== undefined && by !== 'block')
    throw new UsageError('--blocks groups layers into blocks, which only --by block searches', { hint: 'add --by block' });
  if (checkpoints.length < 2) throw new UsageError(`a learned soup mixes at least 2 ingredients; ${memory.inputs.join(', ')} holds ${checkpoints.length}`);
  return { by, memoryBytes: refuseOverMemory(checkpoints, memory.maxMemory, memory.inputs) };
}

/** `endProgress` is called where one progress bar ends: after the ingredients are scored, and after the search. */
export interface LearnedSearchOptions extends SearchHooks {
  evaluation: SearchEvaluationOptions;
  settings: LearnedSearchSettings;
  /** What checkLearnedSearch found. */
  checked: { by: SearchBy; memoryBytes: number };
  dtype?: FloatDType | undefined;
  /** The arguments that made the soup, for its recipe. */
  command: readonly string[];
}

/** Scores the ingredients, searches their mixing weights by CMA-ES, and returns the best soup it scored. */
export async function learnedSearchSoup(
  checkpoints: readonly Checkpoint[],
  options: LearnedSearchOptions,
): Promise<SoupOutcome<LearnedSearchDocument> & { scoredWith: ScoredWith }> {
  const { evaluation, settings, signal } = options;
  const { by, memoryBytes } = options.checked;
  const reference = checkpoints[0]!;
  const found = await withSearchScoring(evaluation, reference, checkpoints, options, async (scoring) => {
    const { thetas, kept, diverged } = await loadIngredients(checkpoints, signal);
    for (const bad of diverged) options.warn(`${bad.name} diverged: ${describeDivergence(bad)}; left out of the learned soup, it takes no weight`);
    if (kept.length < 2) {
      throw new UsageError(`a learned soup mixes at least 2 ingredients; only ${kept.length} of ${checkpoints.length} hold finite weights`, {
        hint: 'retrain or remove the diverged runs',
      });
    }
    const jobs = searchJobs(scoring.evaluator, evaluation.jobs, options.warn);
    // Diverged runs are scored too, as every scoring command scores them (NaN outputs count as wrong).
    const ingredientScores = await scoreIngredients(checkpoints, scoring.evaluator, undefined, {
      metric: evaluation.metric,
      jobs,
      allowNonFinite: true,
      signal,
      onProgress: (done, total, candidate, status) => options.onProgress?.({ kind: 'score', done, total, candidate, ...status }),
    });
    // A new bar for the search: its total is the budget, not the ingredients.
    options.endProgress?.();
    const layers =
      settings.layerPattern === undefined
        ? undefined
        : new LayerIndex(
            reference.tensors().map((tensor) => tensor.name),
            new RegExp(settings.layerPattern),
          );
    const space = new MixingSpace(kept, thetas, by, settings.blocks, kept.map(scoring.hashOf), settings.sigma, layers);
    const { outcome, population } = await scoring.search(
      space,
      (mix, evaluator, evaluationSignal) => evaluator.evaluate(space.weights(mix), evaluationSignal),
      {
        evaluations: settings.evaluations,
        population: settings.population,
        seed: settings.seed,
        jobs,
      },
    );
    return { space, outcome, kept, diverged, scores: ingredientScores.scores, objective: scoring.objective, population, jobs, setup: scoring.setup };
  });
  const { space, outcome, kept, diverged, scores, objective, population, jobs, setup } = found;
  const weights = space.weightsByTensor(outcome.best, checkpoints);
  const blocks = space.weightsByGroup(outcome.best, checkpoints);
  const score = outcome.metrics[evaluation.metric]!;
  const params = hyperparameters(settings, by, objective, population);
  const chosen = kept.map((checkpoint) => checkpoint.name);
  return {
    producer: candidateProducer(space.weights(outcome.best)),
    record: {
      strategy: 'learned',
      chosen,
      scores,
      extra: {
        metric: evaluation.metric,
        score,
        objective,
        validation: setup.dataset?.path ?? evaluation.evalCmd,
        hyperparameters: params,
        weights,
        ...(by === 'block' ? { blockWeights: blocks } : {}),
        ...(diverged.length === 0 ? {} : { diverged }),
        ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      },
      command: options.command,
    },
    document: {
      strategy: 'learned',
      metric: evaluation.metric,
      direction: setup.direction,
      backend: setup.backend,
      jobs,
      ingredients: checkpoints.map((checkpoint, k) => ({ name: checkpoint.name, path: checkpoint.path, score: scores[k]! })),
      steps: [],
      chosen,
      score,
      evaluations: checkpoints.length + outcome.evaluations,
      uniformScore: outcome.startMetrics[evaluation.metric]!,
      weights,
      beta: 1,
      epochs: [],
      hyperparameters: params,
      samples: setup.dataset?.n ?? null,
      memoryBytes,
      optimizer: 'CMA-ES',
      objective,
      objectiveScore: outcome.metrics[objective]!,
      metrics: outcome.metrics,
      by,
      blocks,
      generations: outcome.generations,
      searchEvaluations: outcome.evaluations,
      ...searchCounts(outcome),
      diverged,
      leftOut: diverged.map((bad) => bad.name),
    },
    scoredWith: { evaluator: setup.evaluator.description, dataset: setup.dataset },
  };
}
