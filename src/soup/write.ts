import type { FloatDType } from '../checkpoint/dtype.js';
import { hashCheckpoint } from '../checkpoint/hash.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, OutputTensor } from '../checkpoint/types.js';
import {
  checkOutputDtypes,
  checkOutputPath,
  chooseOutput,
  planOutput,
  writeCheckpoint,
  type OutputTarget,
  type WriteResult,
} from '../checkpoint/writer.js';
import { makeRecipe, outputMetadata, type RecipeIngredient } from './recipe.js';

export interface OutputOptions {
  out: string;
  force?: boolean;
  dtype?: FloatDType | undefined;
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

export interface SoupRecord {
  strategy: string;
  /** Names of the ingredients in the soup. */
  chosen: string[];
  /** Per-ingredient scores, in ingredient order (greedy). */
  scores?: readonly number[];
  /** More recipe fields: metric, final score, steps, output dtype. */
  extra?: Record<string, unknown>;
}

/** Hashes every ingredient, then streams the soup from `produce` into the output with its recipe. */
export async function writeSoup(
  checkpoints: readonly Checkpoint[],
  output: PreparedOutput,
  produce: TensorProducer,
  record: SoupRecord,
  signal?: AbortSignal,
): Promise<WriteResult> {
  const ingredients: RecipeIngredient[] = [];
  for (const [k, checkpoint] of checkpoints.entries()) {
    const entry: RecipeIngredient = { name: checkpoint.name, sha256: await hashCheckpoint(checkpoint, signal) };
    const score = record.scores?.[k];
    if (score !== undefined) entry.score = score;
    ingredients.push(entry);
  }
  const recipe = makeRecipe(record.strategy, ingredients, record.chosen, record.extra);
  return writeCheckpoint(output.target, output.tensors, outputMetadata(checkpoints[0]!, recipe), produce);
}
