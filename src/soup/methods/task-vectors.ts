/**
 * The machinery of mergekit's generalized task arithmetic, shared by task_arithmetic, ties, dare and
 * breadcrumbs: task vectors (delta_i = theta_i - theta_base), their sparsification, the TIES sign
 * election, and the weighted sum added back to the base.
 */

import type { MergeMethod, TensorInputs } from './method.js';
import { boolean, number, unitInterval, type ParameterDefs } from './parameters.js';

export function taskVectors(inputs: TensorInputs): Float64Array[] {
  const base = inputs.base!;
  return inputs.models.map((model) => {
    const delta = new Float64Array(model.length);
    for (let i = 0; i < delta.length; i++) delta[i] = model[i]! - base[i]!;
    return delta;
  });
}

/** Indices ordered by |delta| descending; equal magnitudes keep index order, so results never depend on a sort's whims. */
export function byMagnitude(delta: Float64Array): Uint32Array {
  const order = new Uint32Array(delta.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  return order.sort((a, b) => Math.abs(delta[b]!) - Math.abs(delta[a]!) || a - b);
}

/**
 * delta * mask, rescaled to the L1 norm of the unmasked delta when `rescale` is set (as mergekit's
 * rescaled_masked_tensor does; norms under 1e-7 leave it unscaled).
 */
export function applyMask(delta: Float64Array, keep: Uint8Array, rescale: boolean): Float64Array {
  const out = new Float64Array(delta.length);
  let before = 0;
  let after = 0;
  for (let i = 0; i < delta.length; i++) {
    before += Math.abs(delta[i]!);
    if (keep[i]) {
      out[i] = delta[i]!;
      after += Math.abs(delta[i]!);
    }
  }
  if (!rescale || before < 1e-7 || after < 1e-7) return out;
  const scale = before / after;
  for (let i = 0; i < out.length; i++) out[i]! *= scale;
  return out;
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
    weight: { scope: 'model', schema: number(), required: true, description: 'how much of this ingredient\'s task vector to add' },
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
      return combineTaskVectors(inputs.base!, sparse, inputs.params.map((p) => p.weight as number), {
        consensus: spec.consensus,
        normalize: inputs.global.normalize as boolean,
        lambda: inputs.global.lambda as number,
      });
    },
  };
}

