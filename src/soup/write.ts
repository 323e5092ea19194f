import type { FloatDType } from '../checkpoint/dtype.js';
import { hashCheckpoint } from '../checkpoint/hash.js';
import type { Checkpoint, OutputTensor } from '../checkpoint/types.js';
import { checkOutputDtypes, checkOutputPath, chooseOutput, writeCheckpoint, type OutputTarget, type WriteResult } from '../checkpoint/writer.js';
import type { ProgressListener } from '../progress.js';
import { Mixer, planOutput } from './mix.js';
import { makeRecipe, outputMetadata, type RecipeIngredient } from './recipe.js';

export interface OutputOptions {
  out: string;
  force?: boolean;
  dtype?: FloatDType;
}

export interface PreparedOutput {
  target: OutputTarget;
  tensors: OutputTensor[];
}

/** Everything about the output that can be wrong, checked before the slow work starts. */
export async function prepareOutput(reference: Checkpoint, options: OutputOptions): Promise<PreparedOutput> {
  await checkOutputPath(options.out, options.force ?? false);
  const target = chooseOutput(options.out, reference);
  const tensors = planOutput(reference, options.dtype);
  checkOutputDtypes(target, tensors);
  return { target, tensors };
}

export interface WriteSoupOptions {
  strategy: string;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  allowNonFinite?: boolean;
  /** Per-ingredient scores to record in the recipe (greedy). */
  scores?: readonly (number | undefined)[];
  /** More recipe fields (metric, final score). */
  recipe?: Record<string, unknown>;
}

/** Hashes the ingredients, then streams the weighted mean into the prepared output with its recipe. */
export async function writeSoup(
  checkpoints: readonly Checkpoint[],
  coefficients: readonly number[],
  output: PreparedOutput,
  options: WriteSoupOptions,
): Promise<WriteResult> {
  const ingredients: RecipeIngredient[] = [];
  for (const [k, checkpoint] of checkpoints.entries()) {
    const entry: RecipeIngredient = { name: checkpoint.name, sha256: await hashCheckpoint(checkpoint, options.signal) };
    const score = options.scores?.[k];
    if (score !== undefined) entry.score = score;
    ingredients.push(entry);
  }
  const chosen = checkpoints.filter((_, k) => coefficients[k] !== 0).map((checkpoint) => checkpoint.name);
  const recipe = makeRecipe(options.strategy, ingredients, chosen, options.recipe);
  const mixer = new Mixer(checkpoints, options);
  return writeCheckpoint(output.target, output.tensors, outputMetadata(checkpoints[0]!, recipe), mixer.producer(coefficients));
}
