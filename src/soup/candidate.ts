/**
 * Candidates: the weights an evaluator scores and a writer writes, handed out one tensor at a time.
 * Every strategy, method, evaluator and scorer builds its candidates here, so none of them imports
 * another's module for it.
 */
import { encodeFloats, isFloatDType } from '../checkpoint/dtype.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, TensorInfo } from '../checkpoint/types.js';
import { InputError } from '../errors.js';
import { addScaled, indexOfNonFinite } from './average.js';

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

/** A soup that greedy selection grows one ingredient at a time, and the candidates it would make. */
export interface SoupBuilder {
  readonly size: number;
  readonly chosen: readonly Checkpoint[];
  add(checkpoint: Checkpoint): Promise<void>;
  /** The soup as it stands, or with `extra` added, without changing it. */
  weights(extra?: Checkpoint): CandidateWeights;
}

/**
 * A soup kept as a running float64 sum of its ingredients, so that trying one more ingredient costs
 * one pass over the weights, not one per ingredient already in the soup.
 */
export class RunningSoup implements SoupBuilder {
  private readonly sums = new Map<string, Float64Array>();
  private members: Checkpoint[] = [];

  constructor(
    readonly tensors: readonly TensorInfo[],
    private readonly allowNonFinite = false,
  ) {}

  get size(): number {
    return this.members.length;
  }

  get chosen(): readonly Checkpoint[] {
    return this.members;
  }

  async add(checkpoint: Checkpoint): Promise<void> {
    for (const tensor of this.tensors) {
      if (!isFloatDType(tensor.dtype)) continue;
      const values = await readChecked(checkpoint, tensor.name, this.allowNonFinite);
      let sum = this.sums.get(tensor.name);
      if (sum === undefined) {
        sum = new Float64Array(values.length);
        this.sums.set(tensor.name, sum);
      }
      addScaled(sum, values);
    }
    this.members.push(checkpoint);
  }

  /** The soup as it stands, or with `extra` added, without changing the running sum. */
  weights(extra?: Checkpoint): CandidateWeights {
    const count = this.members.length + (extra === undefined ? 0 : 1);
    const first = this.members[0] ?? extra;
    if (first === undefined) throw new Error('internal: an empty soup has no weights');
    const members = extra === undefined ? this.members : [...this.members, extra];
    return {
      tensors: this.tensors,
      parts: members.map((checkpoint) => ({ checkpoint, weight: 1 / count })),
      floats: async (name) => {
        const sum = this.sums.get(name);
        const out = new Float32Array(sum?.length ?? 0);
        const added = extra === undefined ? undefined : await readChecked(extra, name, this.allowNonFinite);
        if (sum === undefined) return added === undefined ? out : Float32Array.from(added);
        for (let i = 0; i < out.length; i++) out[i] = (sum[i]! + (added === undefined ? 0 : added[i]!)) / count;
        return out;
      },
      bytes: (name) => first.readBytes(name),
    };
  }
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
