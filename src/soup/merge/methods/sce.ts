/**
 * SCE (Wan et al., FuseChat, 2024) as mergekit's sce_merge: select the entries whose task vectors vary
 * most across the models (top select_topk of the nonzero variances), weight each model by its mean
 * squared task vector, erase the entries whose sign disagrees with the sum's, and add the weighted
 * average of what is left to the base.
 */
import type { MergeMethod } from './method.js';
import { boolean, unitInterval, type ParameterDefs } from './parameters.js';
import { keepRanks, taskVectors } from './task-vectors.js';

const parameters = {
  select_topk: { scope: 'global', schema: unitInterval(), default: 1, description: 'fraction of the entries with the largest variance across models to keep' },
  int8_mask: { scope: 'global', schema: boolean(), default: false, description: 'accepted for mergekit recipes; masks are exact here either way' },
} satisfies ParameterDefs;

/** The entries kept: the floor(select_topk * nonzero) largest variances (equal ones by index). */
function selectMask(deltas: readonly Float64Array[], fraction: number): Uint8Array | undefined {
  if (fraction >= 1) return undefined;
  const n = deltas[0]!.length;
  const variance = new Float64Array(n);
  let nonzero = 0;
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (const delta of deltas) mean += delta[i]!;
    mean /= deltas.length;
    let sum = 0;
    for (const delta of deltas) sum += (delta[i]! - mean) ** 2;
    variance[i] = sum / deltas.length;
    if (variance[i] !== 0) nonzero++;
  }
  return keepRanks(variance, 0, Math.floor(nonzero * fraction));
}

export const sce: MergeMethod = {
  name: 'sce',
  description: 'keep the entries that vary most, weight models by their squared task vectors, erase disagreeing signs',
  base: 'required',
  minModels: 1,
  parameters,
  mergeTensor(inputs) {
    const deltas = taskVectors(inputs);
    const base = inputs.base!;
    const n = base.length;
    const keep = selectMask(deltas, inputs.global.select_topk as number);
    if (keep !== undefined) for (const delta of deltas) for (let i = 0; i < n; i++) if (!keep[i]) delta[i] = 0;
    const energy = deltas.map((delta) => delta.reduce((sum, value) => sum + value * value, 0) / Math.max(1, n));
    const total = energy.reduce((a, b) => a + b, 0);
    const weights = Math.abs(total) < 1e-6 ? energy.map(() => 1 / deltas.length) : energy.map((value) => value / total);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const delta of deltas) sum += delta[i]!;
      const elected = sum >= 0 ? 1 : -1;
      let mixed = 0;
      let divisor = 0;
      deltas.forEach((delta, k) => {
        if (Math.sign(delta[i]!) !== elected) return;
        mixed += delta[i]! * weights[k]!;
        divisor += weights[k]!;
      });
      out[i] = base[i]! + mixed / Math.max(divisor, 1e-6);
    }
    return out;
  },
};
