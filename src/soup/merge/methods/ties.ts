import { z } from 'zod';
import type { MergeMethod } from './method.js';
import type { ParameterDefs } from './parameters.js';
import { applyMask, keepRanks, taskVectorMethod, taskVectorParameters } from './task-vectors.js';
import { globalTopK, type GlobalTopK } from './top-k.js';
import { numel } from '../../../checkpoint/dtype.js';

const parameters = {
  ...taskVectorParameters({ normalize: true, rescale: false }),
  ties_scope: {
    scope: 'global',
    schema: z.enum(['tensor', 'global'], { errorMap: () => ({ message: 'must be tensor or global' }) }),
    default: 'tensor',
    description: 'where the top-k of |delta| is taken: per tensor (mergekit) or over the whole model (TIES paper, FusionBench)',
  },
} satisfies ParameterDefs;

/** Keeps the k = floor(density * n) largest |delta| (ties in magnitude: lower index first). */
export function keepTopK(delta: Float64Array, density: number, rescale: boolean): Float64Array {
  if (density >= 1) return delta;
  return applyMask(delta, keepRanks(delta, 0, Math.floor(density * delta.length)), rescale);
}

/**
 * TIES-merging (Yadav et al., 2023) as mergekit runs it: trim each task vector to its top-k
 * magnitudes, elect a sign per entry, keep the agreeing deltas, average them, add to the base.
 */
export const ties: MergeMethod = {
  ...taskVectorMethod({
    name: 'ties',
    description: 'trim task vectors to their largest entries, elect signs, average the agreeing ones',
    consensus: true,
    parameters,
    sparsify(delta, k, inputs) {
      const rescale = inputs.global.rescale as boolean;
      if (inputs.global.ties_scope === 'global') return (inputs.prepared as GlobalTopK[])[k]!.mask(inputs.tensor.name, delta, rescale);
      return keepTopK(delta, inputs.params[k]!.density as number, rescale);
    },
  }),
  async prepare(context) {
    const first = context.tensors[0];
    if (first === undefined || context.resolve(first.name).global.ties_scope !== 'global') return undefined;
    const keep: number[] = [];
    let total = 0;
    for (const tensor of context.tensors) {
      const n = numel(tensor.shape);
      total += n;
      context.resolve(tensor.name).models.forEach((params, k) => (keep[k] = (keep[k] ?? 0) + (params.density as number) * n));
    }
    return globalTopK(() => context.deltas(), keep.map(Math.floor), total);
  },
};
