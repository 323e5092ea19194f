/**
 * mergekit's arcee_fusion: the importance of each entry is |theta - theta_base| times the KL
 * divergence between the softmaxes (over the last dimension) of the model's and the base's row; the
 * model's change is kept where its importance reaches median + 1.5 IQR of all importances (quantiles
 * at floor(q (n - 1)) of the sorted values).
 *
 * mergekit takes the quantiles of a random sample of 1M entries for larger tensors (unseeded
 * torch.randperm); soup takes them of every entry, so such tensors may differ at the threshold.
 */
import type { MergeMethod } from './method.js';
import type { ParameterDefs } from './parameters.js';

const parameters = {} satisfies ParameterDefs;

function softmaxRow(values: Float64Array, start: number, width: number): Float64Array {
  let max = -Infinity;
  for (let k = 0; k < width; k++) max = Math.max(max, values[start + k]!);
  const out = new Float64Array(width);
  let sum = 0;
  for (let k = 0; k < width; k++) sum += out[k] = Math.exp(values[start + k]! - max);
  for (let k = 0; k < width; k++) out[k] = out[k]! / sum + 1e-8;
  return out;
}

/** Where mergekit reads quantile q of n sorted values: (q * (n - 1)).long() in float32. */
function quantileIndex(q: number, n: number): number {
  return Math.trunc(Math.fround(Math.fround(q) * Math.fround(n - 1)));
}

export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  description: "keep the other model's changes whose importance (|change| x row KL divergence) is an outlier",
  base: 'required',
  minModels: 1,
  maxModels: 1,
  parameters,
  mergeTensor({ tensor, base, models }) {
    const a = base!;
    const b = models[0]!;
    const n = a.length;
    const width = tensor.shape.length === 0 ? 1 : tensor.shape[tensor.shape.length - 1]!;
    const importance = new Float64Array(n);
    for (let start = 0; start < n; start += width) {
      const p = softmaxRow(b, start, width);
      const q = softmaxRow(a, start, width);
      let kl = 0;
      for (let k = 0; k < width; k++) kl += p[k]! * Math.log(p[k]! / q[k]!);
      for (let k = 0; k < width; k++) importance[start + k] = Math.abs(b[start + k]! - a[start + k]!) * kl;
    }
    const sorted = Float64Array.from(importance).sort();
    const at = (q: number): number => sorted[quantileIndex(q, n)]!;
    const threshold = at(0.5) + 1.5 * (at(0.75) - at(0.25));
    const out = new Float64Array(n);
    // a + (b - a) * mask, as mergekit writes it: a kept change is not always b's exact bits.
    for (let i = 0; i < n; i++) out[i] = a[i]! + (b[i]! - a[i]!) * (importance[i]! >= threshold ? 1 : 0);
    return out;
  },
};
