/**
 * `soup learned` by gradients (TF.js models): the ingredients checked and held in memory, scored,
 * the mixing logits and beta trained, and the soup they make, with its recipe and --json document.
 */
import type { FloatDType } from '../../checkpoint/dtype.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import { createEvaluator, type EvaluationOptions } from '../../eval/create.js';
import type { Evaluator, GradientSource } from '../../eval/evaluator.js';
import type { Direction } from '../../eval/metrics.js';
import { scoreIngredients } from '../../eval/pool.js';
import type { SearchHooks } from '../search/session.js';
import { scanDiverged, type Divergence } from '../diverged.js';
import { Mixer } from '../kernel/mix.js';
import type { PreparedOutput, SoupOutcome } from '../write.js';
import { LearnedSoup, learnedParams, refuseOverMemory, trainLearnedSoup, type LearnedEpoch, type LearnedParams } from './learned.js';

/**
 * The --json document of `soup learned`: greedy's fields, plus the alphas, beta and the loss per epoch.
 * The written soup's path goes after uniformScore, the time and the warnings after memoryBytes.
 */
export interface LearnedDocument {
  strategy: 'learned';
  metric: string;
  direction: Direction;
  backend: string;
  /** Worker threads that scored the ingredients. */
  jobs: number;
  ingredients: { name: string; path: string; score: number; diverged?: Divergence }[];
  /** Always empty: greedy's field, kept so that a script reading either shape finds it (no step is tried one by one). */
  steps: never[];
  chosen: string[];
  /** Diverged ingredients: scored, never mixed. */
  leftOut: string[];
  score: number;
  /** Candidates scored: every ingredient, the soup before training and after. */
  evaluations: number;
  /** The soup before training: every alpha 1/N, the uniform soup. */
  uniformScore: number;
  /** {tensor: {ingredient: alpha}}: the written soup is sum(alpha * theta) per tensor. */
  weights: Record<string, Record<string, number>>;
  beta: number;
  epochs: LearnedEpoch[];
  hyperparameters: LearnedParams;
  samples: number | null;
  /** What the ingredients held in memory took (checked against --max-memory). */
  memoryBytes: number;
}

/** What a learned soup was scored with, for the summary: the evaluator, and the data set it ran on. */
export interface ScoredWith {
  evaluator: string;
  dataset?: { name: string; n: number } | undefined;
}

export interface LearnedCheckOptions {
  /** --model, when the ingredients' own model is not the one to run. */
  model?: string | undefined;
  /** A flag of the gradient-free search that was given (--population, ...): refused, it means nothing here. */
  searchOnly?: string | undefined;
  allowNonFinite: boolean;
  maxMemory?: number | undefined;
  /** What the user typed, named in refusals. */
  inputs: readonly string[];
  warn(message: string): void;
  signal?: AbortSignal;
}

/** The ingredients a learned soup mixes, checked before the output is prepared and anything is scored. */
export interface LearnedIngredients {
  checkpoints: readonly Checkpoint[];
  /** The ingredients mixed: those that did not diverge. */
  mixed: Checkpoint[];
  diverged: Map<Checkpoint, Divergence>;
  memoryBytes: number;
}

/** The gradient path trains through the model's gradients, which only TF.js models give soup. */
function checkTrainable(model: string | undefined, reference: Checkpoint): void {
  if (model !== undefined && !/\.json$/i.test(model)) {
    throw new UsageError(
      `--model ${model}: soup learned trains TF.js models (model.json) by gradients and searches ONNX models (.onnx) without them; this model is neither`,
      {
        hint: 'pass --model model.json or --model model.onnx whose weight names match the tensors, or score with --eval-cmd CMD',
      },
    );
  }
  if (reference.format !== 'tfjs' && model === undefined) {
    throw new UsageError(`${reference.path}: soup learned needs a model to run, and a ${reference.format} checkpoint has none`, {
      hint: `pass --model model.json (a TF.js model, trained by gradients) or --model model.onnx (searched without gradients), whose weight names match the tensors; or score with --eval-cmd CMD`,
    });
  }
}

/** Checks the ingredients can make a learned soup by gradients: a model to train, two finite runs, memory to hold them. */
export async function checkLearnedIngredients(checkpoints: readonly Checkpoint[], options: LearnedCheckOptions): Promise<LearnedIngredients> {
  const reference = checkpoints[0]!;
  checkTrainable(options.model, reference);
  if (options.searchOnly !== undefined) {
    throw new UsageError(
      `${options.searchOnly} belongs to the gradient-free search (ONNX models, --eval-cmd); ${reference.path} is a TF.js model, trained by gradient descent`,
      {
        hint: 'leave it out, or score an ONNX export (--model model.onnx) to search without gradients',
      },
    );
  }
  if (checkpoints.length < 2) throw new UsageError(`a learned soup mixes at least 2 ingredients; ${options.inputs.join(', ')} holds ${checkpoints.length}`);
  const diverged = await scanDiverged(checkpoints, { allowNonFinite: options.allowNonFinite, leftOutOf: 'the soup' }, options.warn, options.signal);
  // Diverged runs are scored but never mixed: a learned soup cannot train through NaN weights.
  const mixed = checkpoints.filter((checkpoint) => !diverged.has(checkpoint));
  if (mixed.length < 2) {
    throw new UsageError(
      `a learned soup mixes at least 2 ingredients; only ${mixed.length} of the ${checkpoints.length} did not diverge (${[...diverged.keys()].map((c) => c.name).join(', ')} hold non-finite weights)`,
      {
        hint: 'add finite runs, or score them with soup compare, which ranks diverged runs last',
      },
    );
  }
  return { checkpoints, mixed, diverged, memoryBytes: refuseOverMemory(mixed, options.maxMemory, options.inputs) };
}

/** It reports as the searches do; `endProgress` is called once scoring and training are over, before the soup is written. */
export interface LearnedSoupOptions extends SearchHooks {
  evaluation: EvaluationOptions;
  /** The training's settings (any object holding them: the rest is ignored). */
  params: LearnedParams;
  dtype?: FloatDType | undefined;
  /** The arguments that made the soup, for its recipe. */
  command: readonly string[];
}

function gradientSource(evaluator: Evaluator): Evaluator & GradientSource {
  if (!('lossGradients' in evaluator)) {
    throw new UsageError(`soup learned needs gradients of the loss, and ${evaluator.description} gives only scores`, {
      hint: 'make a greedy soup instead, which needs only scores: soup greedy INPUTS --val DATA (or --eval-cmd CMD) -o OUT',
    });
  }
  return evaluator as Evaluator & GradientSource;
}

/** Scores the ingredients, trains the mixing weights from the uniform soup, and returns the soup they make. */
export async function learnedSoup(
  ingredients: LearnedIngredients,
  output: PreparedOutput,
  options: LearnedSoupOptions,
): Promise<SoupOutcome<LearnedDocument> & { scoredWith: ScoredWith }> {
  const { checkpoints, mixed, diverged } = ingredients;
  const { evaluation, signal } = options;
  const params = learnedParams(options.params);
  const { evaluator, dataset, backend, tfjs, direction, warnings } = await createEvaluator(evaluation, checkpoints[0]!);
  for (const warning of warnings ?? []) options.warn(warning);
  const progress = options.onProgress;
  let trained;
  try {
    const ingredientScores = await scoreIngredients(checkpoints, evaluator, tfjs, {
      metric: evaluation.metric,
      jobs: evaluation.jobs,
      // Diverged ingredients were found before: they are scored as they are.
      allowNonFinite: true,
      signal,
      onProgress: (done, total, candidate) => progress?.({ kind: 'score', done, total, candidate }),
    });
    const soup = await LearnedSoup.load(mixed, params, signal);
    const score = async (): Promise<number> => (await evaluator.evaluate(soup.weights(), signal)).metrics[evaluation.metric]!;
    const uniformScore = await score();
    const epochs = await trainLearnedSoup(soup, gradientSource(evaluator), { signal, onProgress: progress });
    trained = { soup, epochs, uniformScore, score: await score(), scores: ingredientScores.scores, jobs: ingredientScores.jobs };
  } finally {
    options.endProgress?.();
    await evaluator.dispose();
  }
  const { soup, epochs, uniformScore, scores } = trained;
  const chosen = mixed.map((checkpoint) => checkpoint.name);
  const weights = soup.weightsByTensor();
  const mixer = new Mixer(mixed, { signal, onProgress: progress });
  return {
    producer: mixer.producer(soup.coefficients(), { normalize: false, plan: output.tensors }),
    record: {
      strategy: 'learned',
      chosen,
      scores,
      extra: {
        metric: evaluation.metric,
        direction,
        score: trained.score,
        ...(diverged.size === 0 ? {} : { diverged: Object.fromEntries([...diverged].map(([checkpoint, divergence]) => [checkpoint.name, divergence])) }),
        validation: dataset?.path,
        hyperparameters: { optimizer: 'AdamW', ...params },
        beta: soup.beta,
        weights,
        epochs,
        ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      },
      command: options.command,
    },
    document: {
      strategy: 'learned',
      metric: evaluation.metric,
      direction,
      backend,
      jobs: trained.jobs,
      ingredients: checkpoints.map((checkpoint, k) => {
        const divergence = diverged.get(checkpoint);
        return { name: checkpoint.name, path: checkpoint.path, score: scores[k]!, ...(divergence === undefined ? {} : { diverged: divergence }) };
      }),
      steps: [],
      chosen,
      leftOut: [...diverged.keys()].map((checkpoint) => checkpoint.name),
      score: trained.score,
      evaluations: checkpoints.length + 2,
      uniformScore,
      weights,
      beta: soup.beta,
      epochs,
      hyperparameters: params,
      samples: dataset?.n ?? null,
      memoryBytes: ingredients.memoryBytes,
    },
    close: () => mixer.close(),
    scoredWith: { evaluator: evaluator.description, dataset },
  };
}
