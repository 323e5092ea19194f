import type { MergeMethod } from './method.js';
import { number, type ParameterDefs } from './parameters.js';

const parameters = {
  t: { scope: 'global', schema: number(), required: true, description: "distance below which the other model's value replaces the base's" },
} satisfies ParameterDefs;

/**
 * NearSwap as mergekit's nearswap_merge: where base and model are close the model's value is taken,
 * weight = clamp(t / max(|base - model|, 1e-6), 0, 1), out = weight * model + (1 - weight) * base.
 */
export const nearswap: MergeMethod = {
  name: 'nearswap',
  description: "take the other model's values where they lie within t of the base's, interpolate beyond",
  base: 'required',
  minModels: 1,
  maxModels: 1,
  parameters,
  mergeTensor({ base, models, global }) {
    const a = base!;
    const b = models[0]!;
    const t = global.t as number;
    const out = new Float64Array(a.length);
    for (let i = 0; i < out.length; i++) {
      const weight = Math.min(1, Math.max(0, t / Math.max(Math.abs(a[i]! - b[i]!), 1e-6)));
      out[i] = weight * b[i]! + (1 - weight) * a[i]!;
    }
    return out;
  },
};
