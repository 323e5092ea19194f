/**
 * `soup learned` for models soup can only score (ONNX Runtime, --eval-cmd): CMA-ES over the mixing
 * weights' logits instead of gradient descent. Called by learned.ts once it knows the gradient path
 * cannot run.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import type { Evaluator } from '../../eval/evaluator.js';
import { scoreIngredients } from '../../eval/pool.js';
import { printLearnedSearch, type LearnedSearchDocument } from '../../report/learned-search.js';
import type { Terminal } from '../../report/terminal.js';
import { candidateProducer } from '../../weights/candidate.js';
import { MixingSpace, loadIngredients, type SearchBy } from '../../soup/strategies/learned-search.js';
import { LayerIndex } from '../../soup/merge/methods/parameters.js';
import { runSearch } from '../../soup/search/run.js';
import { prepareModelFiles, prepareOutput, writeSoup } from '../../soup/write.js';
import { createEvaluator, type EvaluationOptions } from '../../eval/create.js';
import { openSearchJournal, refuseOverMemory, searchCommandArguments, searchJobs, objectiveDirection, searchObjective } from '../search-common.js';
import type { OpenedJournal } from '../../eval/score-cache.js';
import { describeDivergence } from '../../soup/diverged.js';

export interface LearnedSearchOptions extends EvaluationOptions {
  output: string;
  force: boolean;
  dtype?: 'F64' | 'F32' | 'F16' | 'BF16' | undefined;
  card: boolean;
  copyFrom?: string | undefined;
  seed: number;
  byModel: boolean;
  by?: SearchBy | undefined;
  blocks?: number | undefined;
  evaluations: number;
  population?: number | undefined;
  sigma: number;
  objective?: string | undefined;
  scoreCache?: string | undefined;
  layerPattern?: string | undefined;
  maxMemory?: number | undefined;
  outShardSize?: number | undefined;
}

/** The search's settings, as --json and the recipe record them. */
function hyperparameters(options: LearnedSearchOptions, by: SearchBy, objective: string, population: number): Record<string, unknown> {
  return {
    optimizer: 'CMA-ES',
    by,
    ...(by === 'block' ? { blocks: options.blocks ?? null } : {}),
    evaluations: options.evaluations,
    population,
    sigma: options.sigma,
    seed: options.seed,
    objective,
  };
}

export async function runLearnedSearch(
  inputs: string[],
  options: LearnedSearchOptions,
  checkpoints: Checkpoint[],
  terminal: Terminal,
  signal: AbortSignal,
  started: number,
): Promise<void> {
  const reference = checkpoints[0]!;
  if (options.byModel && options.by === 'block')
    throw new UsageError('--by-model and --by block disagree: --by-model is one weight per ingredient (--by ingredient)');
  const by: SearchBy = options.by ?? 'ingredient';
  if (options.blocks !== undefined && by !== 'block')
    throw new UsageError('--blocks groups layers into blocks, which only --by block searches', { hint: 'add --by block' });
  if (checkpoints.length < 2) throw new UsageError(`a learned soup mixes at least 2 ingredients; ${inputs.join(', ')} holds ${checkpoints.length}`);
  const memory = refuseOverMemory(checkpoints, options.maxMemory, inputs);
  const output = await prepareOutput(checkpoints, {
    out: options.output,
    force: options.force,
    dtype: options.dtype,
    shardSize: options.outShardSize,
    protect: [options.model, options.val],
  });
  for (const warning of await prepareModelFiles(checkpoints, output, options)) terminal.warn(warning);
  const progress = terminal.progress();
  const setup = await createEvaluator(options, reference, undefined, progress);
  for (const warning of setup.warnings ?? []) terminal.warn(warning);
  let evaluator: Evaluator = setup.evaluator;
  let journal: OpenedJournal | undefined;
  let found;
  try {
    const objective = searchObjective(setup.evaluator, options);
    if (options.scoreCache !== undefined) {
      journal = await openSearchJournal(setup, options.scoreCache, checkpoints, terminal, signal);
      evaluator = journal.evaluator;
    }
    const { thetas, kept, diverged } = await loadIngredients(checkpoints, signal);
    for (const bad of diverged) {
      terminal.warn(`${bad.name} diverged: ${describeDivergence(bad)}; left out of the learned soup, it takes no weight`);
    }
    if (kept.length < 2) {
      throw new UsageError(`a learned soup mixes at least 2 ingredients; only ${kept.length} of ${checkpoints.length} hold finite weights`, {
        hint: 'retrain or remove the diverged runs',
      });
    }
    const jobs = searchJobs(evaluator, options.jobs, terminal);
    // Diverged runs are scored too, as every scoring command scores them (NaN outputs count as wrong).
    const ingredientScores = await scoreIngredients(checkpoints, evaluator, undefined, {
      metric: options.metric,
      jobs,
      allowNonFinite: true,
      signal,
      onProgress: (done, total, candidate, status) => progress({ kind: 'score', done, total, candidate, ...status }),
    });
    // A new bar for the search: its total is the budget, not the ingredients.
    terminal.endProgress();
    const layers =
      options.layerPattern === undefined
        ? undefined
        : new LayerIndex(
            reference.tensors().map((tensor) => tensor.name),
            new RegExp(options.layerPattern),
          );
    const space = new MixingSpace(
      kept,
      thetas,
      by,
      options.blocks,
      kept.map((checkpoint) => journal?.hashes.get(checkpoint) ?? ''),
      options.sigma,
      layers,
    );
    const population = options.population ?? 4 + Math.floor(3 * Math.log(space.dimension));
    const outcome = await runSearch(space, (mix, evaluationSignal) => evaluator.evaluate(space.weights(mix), evaluationSignal), {
      evaluations: options.evaluations,
      population,
      seed: options.seed,
      jobs,
      objective,
      direction: objectiveDirection(objective, options.metric, setup.direction),
      journal: journal === undefined ? undefined : { journal: journal.journal, evaluator: journal.key },
      signal,
      onProgress: progress,
    });
    const scores = ingredientScores.scores;
    found = { space, outcome, kept, diverged, scores, objective, population, jobs };
  } finally {
    terminal.endProgress();
    await evaluator.dispose();
  }
  const { space, outcome, kept, diverged, scores, objective, population, jobs } = found;
  const weights = space.weightsByTensor(outcome.best, checkpoints);
  const blocks = space.weightsByGroup(outcome.best, checkpoints);
  const score = outcome.metrics[options.metric]!;
  const params = hyperparameters(options, by, objective, population);
  const chosen = kept.map((checkpoint) => checkpoint.name);
  const written = await writeSoup(
    checkpoints,
    output,
    candidateProducer(space.weights(outcome.best)),
    {
      strategy: 'learned',
      chosen,
      scores,
      extra: {
        metric: options.metric,
        score,
        objective,
        validation: setup.dataset?.path ?? options.evalCmd,
        hyperparameters: params,
        weights,
        ...(by === 'block' ? { blockWeights: blocks } : {}),
        ...(diverged.length === 0 ? {} : { diverged }),
        ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      },
      command: searchCommandArguments(),
    },
    signal,
  );
  terminal.endProgress();
  const seconds = (performance.now() - started) / 1000;
  const document: LearnedSearchDocument = {
    strategy: 'learned',
    metric: options.metric,
    direction: setup.direction,
    backend: setup.backend,
    jobs,
    ingredients: checkpoints.map((checkpoint, k) => ({ name: checkpoint.name, path: checkpoint.path, score: scores[k]! })),
    steps: [],
    chosen,
    score,
    evaluations: checkpoints.length + outcome.evaluations,
    uniformScore: outcome.startMetrics[options.metric]!,
    output: written.path,
    weights,
    beta: 1,
    epochs: [],
    hyperparameters: params,
    samples: setup.dataset?.n ?? null,
    memoryBytes: memory,
    seconds: Number(seconds.toFixed(3)),
    warnings: terminal.warnings,
    optimizer: 'CMA-ES',
    objective,
    objectiveScore: outcome.metrics[objective]!,
    metrics: outcome.metrics,
    by,
    blocks,
    generations: outcome.generations,
    searchEvaluations: outcome.evaluations,
    evaluatorCalls: outcome.evaluatorCalls,
    evaluationsFromCache: outcome.evaluations - outcome.evaluatorCalls,
    evaluationsPerSecond: Number((outcome.evaluations / Math.max(outcome.seconds, 1e-9)).toFixed(2)),
    diverged,
    leftOut: diverged.map((bad) => bad.name),
  };
  if (terminal.json) terminal.printJson(document);
  else {
    const source = setup.dataset === undefined ? (options.val ?? "the command's own data") : `${setup.dataset.name} (${setup.dataset.n} samples)`;
    printLearnedSearch(terminal, document, { source, evaluator: setup.evaluator.description, format: output.target.kind });
  }
}
