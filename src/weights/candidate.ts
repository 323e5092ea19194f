/**
 * Candidates: the weights an evaluator scores and a writer writes, handed out one tensor at a time.
 * Strategies, methods, evaluators and scorers all build and read their candidates through this
 * contract, so none of them imports another's module for it.
 */
import { encodeFloats, isFloatDType } from '../checkpoint/dtype.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, TensorInfo } from '../checkpoint/types.js';
import { InputError } from '../errors.js';
import { indexOfNonFinite } from './finite.js';

/**
 * The weights of one candidate soup, handed out a tensor at a time so an evaluator can stream them
 * into a model (or a temporary checkpoint) without a second full copy in memory.
 */
export interface CandidateWeights {
  /** The tensors, in the reference ingredient's order. */
  readonly tensors: readonly TensorInfo[];
  /** Values of a float tensor. */
  floats(name: string): Promise<Float32Array>;
  /** Stored bytes of an integer or bool tensor (copied, never averaged). */
  bytes(name: string): Promise<Uint8Array>;
  /** What the candidate is made of, when it is a weighted mean of ingredients: the key of the score cache. */
  readonly parts?: readonly { checkpoint: Checkpoint; weight: number }[];
}

/** Feeds a checkpoint writer from a candidate: floats encoded in each output tensor's dtype, the rest copied. */
export function candidateProducer(candidate: CandidateWeights): TensorProducer {
  return async function* (tensor) {
    yield isFloatDType(tensor.dtype) ? encodeFloats(await candidate.floats(tensor.name), tensor.dtype) : await candidate.bytes(tensor.name);
  };
}

/** One ingredient's weights as a candidate (for scoring ingredients on their own). */
export function ingredientWeights(checkpoint: Checkpoint, allowNonFinite = false): CandidateWeights {
  return {
    tensors: checkpoint.tensors(),
    parts: [{ checkpoint, weight: 1 }],
    floats: async (name) => {
      const values = await readChecked(checkpoint, name, allowNonFinite);
      return values instanceof Float32Array ? values : Float32Array.from(values);
    },
    bytes: (name) => checkpoint.readBytes(name),
  };
}

/** A float tensor's values, refusing NaN and infinities unless they are allowed. */
export async function readChecked(checkpoint: Checkpoint, name: string, allowNonFinite: boolean): Promise<Float32Array | Float64Array> {
  const values = await checkpoint.readFloats(name);
  if (!allowNonFinite) {
    const at = indexOfNonFinite(values);
    if (at >= 0) {
      throw new InputError(checkpoint.path, `holds ${values[at]} at element ${at}`, {
        tensor: name,
        hint: 'remove this ingredient, or pass --allow-nonfinite to keep non-finite values',
      });
    }
  }
  return values;
}
