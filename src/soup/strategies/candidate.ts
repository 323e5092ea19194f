/** The running soup greedy selection grows; candidates themselves are a contract in weights/candidate.ts. */
import { isFloatDType } from '../../checkpoint/dtype.js';
import type { Checkpoint, TensorInfo } from '../../checkpoint/types.js';
import { readChecked, type CandidateWeights } from '../../weights/candidate.js';
import { addScaled } from '../kernel/average.js';

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
