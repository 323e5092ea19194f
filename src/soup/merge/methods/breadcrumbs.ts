import type { MergeMethod } from './method.js';
import { fraction, type ParameterDefs } from './parameters.js';
import { applyMask, keepRanks, taskVectorMethod, taskVectorParameters } from './task-vectors.js';

const parameters = {
  ...taskVectorParameters({ normalize: false, rescale: false }),
  gamma: { scope: 'model', schema: fraction(), default: 0.01, description: 'fraction of the largest |delta| to drop as outliers' },
} satisfies ParameterDefs;

/**
 * Keeps floor(density * n) entries of |delta| after dropping the floor(gamma * n) largest, as
 * mergekit's magnitude_outliers does. Where gamma * n rounds to 0, mergekit's slice `[n_bot:-0]` is
 * empty and drops everything; here nothing is dropped from the top.
 */
export function keepBreadcrumbs(delta: Float64Array, density: number, gamma: number, rescale: boolean): Float64Array {
  if (density >= 1) return delta;
  const n = delta.length;
  const target = Math.floor(density * n);
  let top = Math.floor(gamma * n);
  if (n - target - top < 0) top = n - target;
  return applyMask(delta, keepRanks(delta, top, top + target), rescale);
}

/** Model Breadcrumbs (Davari and Belilovsky, 2023): drop the largest outliers and the smallest entries. */
export const breadcrumbs: MergeMethod = taskVectorMethod({
  name: 'breadcrumbs',
  description: 'drop the largest (gamma) and smallest task-vector entries, keep a density fraction',
  consensus: false,
  parameters,
  sparsify: (delta, k, inputs) =>
    keepBreadcrumbs(delta, inputs.params[k]!.density as number, inputs.params[k]!.gamma as number, inputs.global.rescale as boolean),
});

/** Breadcrumbs' masks with TIES's sign election (mergekit's breadcrumbs_ties). */
export const breadcrumbsTies: MergeMethod = taskVectorMethod({
  name: 'breadcrumbs_ties',
  description: "breadcrumbs' masks, then TIES's sign election over the kept entries",
  consensus: true,
  parameters,
  sparsify: (delta, k, inputs) =>
    keepBreadcrumbs(delta, inputs.params[k]!.density as number, inputs.params[k]!.gamma as number, inputs.global.rescale as boolean),
});
