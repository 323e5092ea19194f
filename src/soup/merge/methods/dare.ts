/**
 * DARE (Yu et al., "Language models are super Mario"): drop each delta entry with probability
 * 1 - density, then rescale what is left, and combine linearly (dare_linear) or with TIES's sign
 * election (dare_ties).
 *
 * Masks come from a counter-based generator keyed by (seed, tensor name, ingredient name): element i
 * of a tensor draws the same number on every run and machine, whatever the order tensors are
 * merged in or which other ingredients take part. mergekit draws its masks with torch.bernoulli, so
 * the same seed cannot reproduce mergekit's masks bit for bit; results agree in distribution only.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { MergeMethod, TensorInputs } from './method.js';
import type { ParameterDefs } from './parameters.js';
import { applyMask, taskVectorMethod, taskVectorParameters } from './task-vectors.js';

/** murmur3's 32-bit finaliser: a bijection that mixes every input bit into every output bit. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform numbers in [0, 1) addressed by a counter, under a 128-bit key. */
export class CounterRandom {
  private readonly key: Uint32Array;

  constructor(seed: number, tensor: string, ingredient: string) {
    const digest = createHash('sha256').update(`${seed}\0${tensor}\0${ingredient}`).digest();
    this.key = new Uint32Array(digest.buffer.slice(digest.byteOffset, digest.byteOffset + 16));
  }

  /** The number at position `counter` (an integer below 2^53). */
  at(counter: number): number {
    const lo = counter >>> 0;
    const hi = Math.floor(counter / 0x1_0000_0000) >>> 0;
    let h = mix32(lo ^ this.key[0]!);
    h = mix32(h ^ hi ^ this.key[1]!);
    h = mix32((h + this.key[2]!) >>> 0);
    h = mix32(h ^ this.key[3]!);
    return h / 0x1_0000_0000;
  }
}

/** Bernoulli(density) keep-mask of one ingredient's delta, rescaled as `mode` says. */
export function dropAndRescale(
  delta: Float64Array,
  density: number,
  inputs: Pick<TensorInputs, 'seed' | 'tensor'>,
  ingredient: string,
  rescale: boolean,
  mode: string,
): Float64Array {
  if (density >= 1) return delta;
  const random = new CounterRandom(inputs.seed, inputs.tensor.name, ingredient);
  const keep = new Uint8Array(delta.length);
  for (let i = 0; i < delta.length; i++) keep[i] = random.at(i) < density ? 1 : 0;
  if (!rescale || mode === 'l1') return applyMask(delta, keep, rescale);
  for (let i = 0; i < delta.length; i++) delta[i] = keep[i] ? delta[i]! / density : 0;
  return delta;
}

const parameters = {
  ...taskVectorParameters({ normalize: false, rescale: true }),
  rescale_mode: {
    scope: 'global',
    schema: z.enum(['l1', 'inverse_density'], { errorMap: () => ({ message: 'must be l1 or inverse_density' }) }),
    default: 'l1',
    description: "l1: match the unmasked delta's L1 norm (mergekit today); inverse_density: divide by density (the DARE paper)",
  },
} satisfies ParameterDefs;

function sparsify(delta: Float64Array, k: number, inputs: TensorInputs): Float64Array {
  return dropAndRescale(
    delta,
    inputs.params[k]!.density as number,
    inputs,
    inputs.names[k]!,
    inputs.global.rescale as boolean,
    inputs.global.rescale_mode as string,
  );
}

export const dareLinear: MergeMethod = taskVectorMethod({
  name: 'dare_linear',
  description: 'drop task-vector entries at random, rescale, add the weighted sum to the base',
  consensus: false,
  parameters,
  sparsify,
});

export const dareTies: MergeMethod = taskVectorMethod({
  name: 'dare_ties',
  description: 'drop task-vector entries at random, rescale, elect signs as TIES does',
  consensus: true,
  parameters,
  sparsify,
});
