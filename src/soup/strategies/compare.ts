import type { Checkpoint } from '../../checkpoint/types.js';
import { InputError, throwIfAborted } from '../../errors.js';
import type { Evaluator } from '../../eval/evaluator.js';
import type { Direction } from '../../eval/metrics.js';
import type { Divergence } from '../diverged.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import { RunningSoup } from './candidate.js';
import { ingredientWeights, type CandidateWeights } from '../../weights/candidate.js';
import { greedySoup, type GreedyResult } from './greedy.js';

export interface CompareDataset {
  /** Column name: "val" for the validation set, the NAME of --test NAME=DATA otherwise. */
  name: string;
  evaluator: Evaluator;
}

export type RowKind = 'ingredient' | 'uniform' | 'greedy' | 'ensemble' | 'merge';

export interface CompareRow {
  name: string;
  kind: RowKind;
  scores: Record<string, number>;
  /** Soups: the ingredients in them. */
  chosen?: string[];
  /** Ingredients: whether the greedy soup kept them. */
  inGreedy?: boolean;
  /** Ingredients: where the weights first hold NaN or an infinity (never put in a soup or the ensemble). */
  diverged?: Divergence;
  /** Soups and the ensemble: the diverged ingredients they leave out. */
  leftOut?: string[];
}

export interface CompareResult {
  datasets: string[];
  rows: CompareRow[];
  greedy: GreedyResult;
  uniform: RunningSoup;
  /** Things the reader should know, e.g. why a row is missing. */
  notes: string[];
  evaluations: number;
}

export interface CompareOptions {
  metric: string;
  direction: Direction;
  /** Diverged ingredients: scored, but left out of the soups and the ensemble. */
  diverged?: ReadonlyMap<Checkpoint, Divergence>;
  acceptTies?: boolean;
  allowNonFinite?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /**
   * Scores every ingredient with an evaluator that gives metrics only (--eval-cmd), in ingredient
   * order: how the caller runs them, several at once (--jobs) included. Default: one after another.
   */
  scoreAll?: (checkpoints: readonly Checkpoint[], evaluator: Evaluator) => Promise<number[]>;
}

/**
 * Scores every ingredient, the uniform soup, the greedy soup (chosen on the first data set only)
 * and the output ensemble of all ingredients (the paper's baseline, N times the inference cost) on
 * every data set. Each ingredient runs once per data set; its outputs also feed the ensemble.
 */
export async function compareSoups(checkpoints: readonly Checkpoint[], datasets: readonly CompareDataset[], options: CompareOptions): Promise<CompareResult> {
  const { metric, signal } = options;
  const onProgress = options.onProgress ?? ignoreProgress;
  const [validation] = datasets;
  if (validation === undefined) throw new Error('internal: compare needs a validation set');
  const n = checkpoints.length;
  const total = datasets.length * n + (n - 1) + datasets.length * 2 - 1;
  let done = 0;
  const step = (candidate: string): void => onProgress({ kind: 'score', done: done++, total, candidate });

  const diverged = options.diverged ?? new Map<Checkpoint, Divergence>();
  const finite = checkpoints.filter((checkpoint) => !diverged.has(checkpoint));
  const leftOut = checkpoints.filter((checkpoint) => diverged.has(checkpoint)).map((checkpoint) => checkpoint.name);
  if (finite.length === 0) {
    throw new InputError(checkpoints[0]!.path, 'every ingredient diverged (non-finite weights): there is no soup to compare', {
      hint: 'compare finite runs, or pass --allow-nonfinite to soup these anyway',
    });
  }
  const canEnsemble = datasets.every(({ evaluator }) => evaluator.predict !== undefined && evaluator.scoreOutputs !== undefined);
  const ingredientScores = checkpoints.map(() => ({}) as Record<string, number>);
  const ensembleScores: Record<string, number> = {};
  for (const { name, evaluator } of datasets) {
    if (!canEnsemble && options.scoreAll !== undefined) {
      step(`${n} ingredients on ${name}`);
      const scores = await options.scoreAll(checkpoints, evaluator);
      for (const [k, value] of scores.entries()) ingredientScores[k]![name] = value;
      done += n - 1;
      continue;
    }
    let sum: Float64Array | undefined;
    for (const [k, checkpoint] of checkpoints.entries()) {
      throwIfAborted(signal);
      step(`${checkpoint.name} on ${name}`);
      // Diverged ingredients were found by the caller: every ingredient is scored as it is.
      const weights = ingredientWeights(checkpoint, diverged.has(checkpoint) || options.allowNonFinite);
      if (canEnsemble) {
        const outputs = await evaluator.predict!(weights, signal);
        if (!diverged.has(checkpoint)) {
          sum ??= new Float64Array(outputs.length);
          for (let i = 0; i < outputs.length; i++) sum[i]! += outputs[i]!;
        }
        ingredientScores[k]![name] = evaluator.scoreOutputs!(outputs)[metric]!;
      } else {
        ingredientScores[k]![name] = (await evaluator.evaluate(weights, signal)).metrics[metric]!;
      }
    }
    if (sum !== undefined) ensembleScores[name] = evaluator.scoreOutputs!(sum.map((v) => v / finite.length))[metric]!;
  }

  const greedy = await greedySoup(
    checkpoints,
    (candidate, label) => {
      step(label);
      return score(validation.evaluator, candidate);
    },
    {
      metric,
      direction: options.direction,
      exclude: new Set(diverged.keys()),
      acceptTies: options.acceptTies ?? false,
      allowNonFinite: options.allowNonFinite ?? false,
      signal,
      scores: ingredientScores.map((scores) => scores[validation.name]!),
      onProgress: (event) => {
        if (event.kind !== 'score') onProgress(event);
      },
    },
  );
  done += diverged.size;

  const uniform = new RunningSoup(checkpoints[0]!.tensors(), options.allowNonFinite);
  for (const checkpoint of finite) await uniform.add(checkpoint);
  const uniformScores: Record<string, number> = {};
  const greedyScores: Record<string, number> = { [validation.name]: greedy.score };
  for (const { name, evaluator } of datasets) {
    step(`uniform soup on ${name}`);
    uniformScores[name] = await score(evaluator, uniform.weights());
    if (name === validation.name) continue;
    step(`greedy soup on ${name}`);
    greedyScores[name] = await score(evaluator, greedy.soup.weights());
  }
  onProgress({ kind: 'score', done: total, total, candidate: 'done' });

  const chosen = new Set(greedy.soup.chosen.map((checkpoint) => checkpoint.name));
  const rows: CompareRow[] = checkpoints.map((checkpoint, k) => {
    const divergence = diverged.get(checkpoint);
    return {
      name: checkpoint.name,
      kind: 'ingredient',
      scores: ingredientScores[k]!,
      inGreedy: chosen.has(checkpoint.name),
      ...(divergence === undefined ? {} : { diverged: divergence }),
    };
  });
  const without = leftOut.length === 0 ? {} : { leftOut };
  rows.push({ name: 'uniform soup', kind: 'uniform', scores: uniformScores, chosen: finite.map((c) => c.name), ...without });
  rows.push({ name: 'greedy soup', kind: 'greedy', scores: greedyScores, chosen: greedy.soup.chosen.map((c) => c.name), ...without });
  const notes: string[] = [];
  if (leftOut.length > 0) {
    notes.push(
      `${leftOut.join(', ')} diverged (non-finite weights): scored, but left out of the uniform soup${canEnsemble ? ', the greedy soup and the ensemble' : ' and the greedy soup'} (--allow-nonfinite keeps ${leftOut.length === 1 ? 'it' : 'them'} in)`,
    );
  }
  if (canEnsemble) {
    rows.push({ name: 'ensemble', kind: 'ensemble', scores: ensembleScores, ...without });
  } else {
    notes.push('no ensemble row: it averages model outputs, and --eval-cmd returns only metrics');
  }
  return { datasets: datasets.map((d) => d.name), rows, greedy, uniform, notes, evaluations: done };

  async function score(evaluator: Evaluator, candidate: CandidateWeights): Promise<number> {
    throwIfAborted(signal);
    return (await evaluator.evaluate(candidate, signal)).metrics[metric]!;
  }
}

/** A row for a merge (soup compare --merge): the merged model scored on every data set. */
export async function scoreMergeRow(
  name: string,
  candidate: CandidateWeights,
  chosen: string[],
  datasets: readonly CompareDataset[],
  options: { metric: string; signal?: AbortSignal; onProgress?: ProgressListener },
): Promise<CompareRow> {
  const scores: Record<string, number> = {};
  for (const [done, dataset] of datasets.entries()) {
    throwIfAborted(options.signal);
    options.onProgress?.({ kind: 'score', done, total: datasets.length, candidate: `${name} on ${dataset.name}` });
    scores[dataset.name] = (await dataset.evaluator.evaluate(candidate, options.signal)).metrics[options.metric]!;
  }
  return { name, kind: 'merge', scores, chosen };
}
