/**
 * The machinery of mergekit's generalized task arithmetic, shared by task_arithmetic, ties, dare and
 * breadcrumbs: task vectors (delta_i = theta_i - theta_base), their sparsification, the TIES sign
 * election, and the weighted sum added back to the base.
 */

import type { MergeMethod, TensorInputs } from './method.js';
import { boolean, number, unitInterval, type ParameterDefs } from './parameters.js';

/** delta_i = theta_i - theta_base, computed in place in the models' arrays (the merge owns them). */
export function taskVectors(inputs: TensorInputs): Float64Array[] {
  const base = inputs.base!;
  return inputs.models.map((delta) => {
    for (let i = 0; i < delta.length; i++) delta[i]! -= base[i]!;
    return delta;
  });
}

/** The value of rank k (0-based, largest first) among `values`, which it reorders (quickselect, O(n)). */
function selectDescending(values: Float64Array, k: number): number {
  let left = 0;
  let right = values.length - 1;
  while (left < right) {
    const pivot = values[(left + right) >>> 1]!;
    let i = left;
    let j = right;
    while (i <= j) {
      while (values[i]! > pivot) i++;
      while (values[j]! < pivot) j--;
      if (i <= j) {
        const swap = values[i]!;
        values[i++] = values[j]!;
        values[j--] = swap;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return values[k]!;
  }
  return values[k]!;
}

/**
 * A mask keeping the entries ranked [from, to) by |delta|, largest first, equal magnitudes ranked by
 * index (torch's sort is not stable; this is, so results never depend on a sort's whims). Two
 * selections and one pass, never a full sort: tensors of millions of entries stay fast.
 */
export function keepRanks(delta: Float64Array, from: number, to: number): Uint8Array {
  const keep = new Uint8Array(delta.length);
  if (from >= to || from >= delta.length) return keep;
  const magnitudes = new Float64Array(delta.length);
  for (let i = 0; i < delta.length; i++) magnitudes[i] = Math.abs(delta[i]!);
  const high = selectDescending(magnitudes, from);
  const low = selectDescending(magnitudes, Math.min(to, delta.length) - 1);
  let nextHigh = 0;
  let nextLow = 0;
  for (let i = 0; i < delta.length; i++) {
    const m = Math.abs(delta[i]!);
    if (m > high) nextHigh++;
    if (m > low) nextLow++;
  }
  for (let i = 0; i < delta.length; i++) {
    const m = Math.abs(delta[i]!);
    if (m > high || m < low) continue;
    if (m === high) {
      const rank = nextHigh++;
      if (m === low) nextLow++;
      keep[i] = rank >= from && rank < to ? 1 : 0;
    } else if (m === low) {
      keep[i] = nextLow++ < to ? 1 : 0;
    } else {
      keep[i] = 1;
    }
  }
  return keep;
}

/**
 * delta * mask, in place, rescaled to the L1 norm of the unmasked delta when `rescale` is set (as
 * mergekit's rescaled_masked_tensor does; norms under 1e-7 leave it unscaled).
 */
export function applyMask(delta: Float64Array, keep: Uint8Array, rescale: boolean): Float64Array {
  let before = 0;
  let after = 0;
  for (let i = 0; i < delta.length; i++) {
    before += Math.abs(delta[i]!);
    if (keep[i]) after += Math.abs(delta[i]!);
    else delta[i] = 0;
  }
  if (!rescale || before < 1e-7 || after < 1e-7) return delta;
  const scale = before / after;
  for (let i = 0; i < delta.length; i++) delta[i]! *= scale;
  return delta;
}

/**
 * The TIES/mergekit combination of (possibly sparsified) task vectors: with `consensus`, each entry
 * keeps only the weighted deltas whose sign agrees with the sign of their sum (>= 0 counts as +; a
 * zero delta agrees with nothing); `normalize` divides by the sum of the agreeing weights (or of all
 * weights), a zero sum dividing by 1; the result times lambda is added to the base.
 */
export function combineTaskVectors(
  base: Float64Array,
  deltas: readonly Float64Array[],
  weights: readonly number[],
  options: { consensus: boolean; normalize: boolean; lambda: number },
): Float64Array {
  const out = new Float64Array(base.length);
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const plainDivisor = Math.abs(weightSum) < 1e-8 ? 1 : weightSum;
  for (let i = 0; i < out.length; i++) {
    let mixed = 0;
    let divisor = 0;
    if (options.consensus) {
      let total = 0;
      for (let k = 0; k < deltas.length; k++) total += weights[k]! * deltas[k]![i]!;
      const elected = total >= 0 ? 1 : -1;
      for (let k = 0; k < deltas.length; k++) {
        const weighted = weights[k]! * deltas[k]![i]!;
        if (Math.sign(weighted) === elected) {
          mixed += weighted;
          divisor += weights[k]!;
        }
      }
      if (divisor === 0) divisor = 1;
    } else {
      for (let k = 0; k < deltas.length; k++) mixed += weights[k]! * deltas[k]![i]!;
      divisor = plainDivisor;
    }
    if (options.normalize) mixed /= divisor;
    out[i] = base[i]! + options.lambda * mixed;
  }
  return out;
}

/** Parameters every task-vector method takes, with the method's defaults for normalize and rescale. */
export function taskVectorParameters(defaults: { normalize: boolean; rescale?: boolean; density?: boolean }): ParameterDefs {
  return {
    weight: { scope: 'model', schema: number(), required: true, description: "how much of this ingredient's task vector to add" },
    ...(defaults.density === false
      ? {}
      : { density: { scope: 'model', schema: unitInterval(), default: 1, description: 'fraction of each task vector to keep' } }),
    lambda: { scope: 'global', schema: number(), default: 1, description: 'scale of the merged task vector' },
    normalize: { scope: 'global', schema: boolean(), default: defaults.normalize, description: 'divide by the sum of the weights' },
    ...(defaults.rescale === undefined
      ? {}
      : { rescale: { scope: 'global', schema: boolean(), default: defaults.rescale, description: 'rescale kept entries to the unmasked L1 norm' } }),
    int8_mask: { scope: 'global', schema: boolean(), default: false, description: 'accepted for mergekit recipes; masks are exact here either way' },
  } satisfies ParameterDefs;
}

/** A task-vector method: sparsify each delta as `sparsify` says, then combine. */
export function taskVectorMethod(spec: {
  name: string;
  description: string;
  consensus: boolean;
  parameters: ParameterDefs;
  sparsify?: (delta: Float64Array, k: number, inputs: TensorInputs) => Float64Array;
}): MergeMethod {
  return {
    name: spec.name,
    description: spec.description,
    base: 'required',
    minModels: 1,
    parameters: spec.parameters,
    mergeTensor(inputs) {
      const deltas = taskVectors(inputs);
      const sparse = spec.sparsify === undefined ? deltas : deltas.map((delta, k) => spec.sparsify!(delta, k, inputs));
      return combineTaskVectors(
        inputs.base!,
        sparse,
        inputs.params.map((p) => p.weight as number),
        {
          consensus: spec.consensus,
          normalize: inputs.global.normalize as boolean,
          lambda: inputs.global.lambda as number,
        },
      );
    },
  };
}
