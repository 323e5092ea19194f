import type { MergeMethod } from './method.js';
import { boolean, type ParameterDefs } from './parameters.js';

const parameters = {
  filter_wise: { scope: 'global', schema: boolean(), default: false, description: 'one ratio per row (last dimension) instead of per tensor' },
} satisfies ParameterDefs;

/**
 * Model Stock (Jang et al., 2024) as mergekit computes it, for one group of `size` elements at
 * `offset` (a whole tensor, or one row with filter_wise): the mean pairwise cosine of the deltas
 * (each clamped to [-1, 1], norm products floored at 1e-6) gives t = N cos / (1 + (N - 1) cos), and
 * the result is t * mean(theta_i) + (1 - t) * theta_base.
 */
function stockGroup(base: Float64Array, models: readonly Float64Array[], offset: number, size: number, out: Float64Array): void {
  const n = models.length;
  const norms = models.map((model) => {
    let sum = 0;
    for (let i = offset; i < offset + size; i++) sum += (model[i]! - base[i]!) ** 2;
    return Math.sqrt(sum);
  });
  let cosSum = 0;
  let pairs = 0;
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      let dot = 0;
      for (let i = offset; i < offset + size; i++) dot += (models[a]![i]! - base[i]!) * (models[b]![i]! - base[i]!);
      cosSum += Math.min(1, Math.max(-1, dot / Math.max(norms[a]! * norms[b]!, 1e-6)));
      pairs++;
    }
  }
  const cos = cosSum / pairs;
  const t = (n * cos) / (1 + (n - 1) * cos);
  for (let i = offset; i < offset + size; i++) {
    let mean = 0;
    for (const model of models) mean += model[i]!;
    out[i] = t * (mean / n) + (1 - t) * base[i]!;
  }
}

export const modelStock: MergeMethod = {
  name: 'model_stock',
  description: "move from the base toward the ingredients' mean by a ratio set by the angle between their deltas",
  base: 'required',
  minModels: 2,
  parameters,
  mergeTensor({ tensor, base, models, global }) {
    const out = new Float64Array(base!.length);
    const row = global.filter_wise === true && tensor.shape.length > 0 ? tensor.shape[tensor.shape.length - 1]! : base!.length;
    for (let offset = 0; offset < out.length; offset += Math.max(1, row)) stockGroup(base!, models, offset, Math.max(1, row), out);
    return out;
  },
};
