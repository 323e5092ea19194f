import type { FloatDType } from '../checkpoint/dtype.js';
import { checkpointHashes, hashFiles } from '../checkpoint/hash.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, OutputTensor } from '../checkpoint/types.js';
import {
  checkOutputDtypes,
  checkOutputPath,
  chooseOutput,
  keepTies,
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

/**
 * Everything about the output that can be wrong, checked before the slow work starts. The first
 * checkpoint is the reference (names, order, format); ties are kept where all of them agree.
 */
export async function prepareOutput(checkpoints: readonly Checkpoint[], options: OutputOptions): Promise<PreparedOutput> {
  const reference = checkpoints[0]!;
  await checkOutputPath(options.out, options.force ?? false);
  const target = chooseOutput(options.out, reference);
  const tensors = keepTies(target, planOutput(reference, options.dtype), checkpoints);
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

/**
 * Streams the soup from `produce` into the output with its recipe. The ingredients are hashed in a
 * worker thread meanwhile (or taken from the hash cache); the header is written with placeholder
 * hashes of the same length and patched once they are known.
 */
export async function writeSoup(
  checkpoints: readonly Checkpoint[],
  output: PreparedOutput,
  produce: TensorProducer,
  record: SoupRecord,
  signal?: AbortSignal,
): Promise<WriteResult> {
  const stopHashing = new AbortController();
  const onAbort = (): void => stopHashing.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const hashing = hashFiles(checkpoints.flatMap((checkpoint) => checkpoint.files), stopHashing.signal);
  hashing.catch(() => {});
  const recipe = (hashes: ReadonlyMap<string, string>): Record<string, string> => {
    const ingredients = checkpoints.map((checkpoint, k): RecipeIngredient => {
      const entry: RecipeIngredient = { name: checkpoint.name, sha256: checkpointHashes(checkpoint, hashes) };
      const score = record.scores?.[k];
      if (score !== undefined) entry.score = score;
      return entry;
    });
    return outputMetadata(checkpoints[0]!, makeRecipe(record.strategy, ingredients, record.chosen, record.extra));
  };
  const unknown = new Map(checkpoints.flatMap((checkpoint) => checkpoint.files).map((file) => [file, '0'.repeat(64)]));
  try {
    return await writeCheckpoint(output.target, output.tensors, { placeholder: recipe(unknown), resolve: async () => recipe(await hashing) }, produce);
  } catch (error) {
    stopHashing.abort(error);
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
