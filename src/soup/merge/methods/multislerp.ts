/**
 * mergekit's multislerp: barycentric interpolation on the hypersphere. The (base-relative, when a base
 * is given) tensors are projected on the unit sphere, into the tangent space at their weighted mean
 * direction, averaged there, and mapped back with the exponential map; the result's norm is the
 * weighted mean of the norms.
 */
import { UsageError } from '../../../errors.js';
import type { MergeMethod } from './method.js';
import { boolean, number, type ParameterDefs } from './parameters.js';

const parameters = {
  weight: { scope: 'model', schema: number(), required: true, description: "this ingredient's weight" },
  normalize_weights: { scope: 'global', schema: boolean(), default: true, description: 'divide the weights by their sum' },
  eps: { scope: 'global', schema: number(), default: 1e-8, description: 'added to norms to keep divisions finite' },
} satisfies ParameterDefs;

function norm(values: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}

export const multislerp: MergeMethod = {
  name: 'multislerp',
  description: 'spherical interpolation of any number of models (relative to base_model when given)',
  base: 'optional',
  minModels: 1,
  parameters,
  mergeTensor({ tensor, base, models, params, global }) {
    if (models.length === 1) return models[0]!;
    const n = models[0]!.length;
    const eps = global.eps as number;
    if (base !== undefined) for (const model of models) for (let i = 0; i < n; i++) model[i]! -= base[i]!;
    let weights = params.map((p) => p.weight as number);
    if (global.normalize_weights === true) {
      const sum = weights.reduce((a, b) => a + b, 0);
      weights = weights.map((w) => w / sum);
    }
    const norms = models.map(norm);
    const units = models.map((model, k) => model.map((value) => value / (norms[k]! + eps)));
    const mean = new Float64Array(n);
    units.forEach((unit, k) => {
      for (let i = 0; i < n; i++) mean[i]! += unit[i]! * weights[k]!;
    });
    const meanNorm = norm(mean);
    const out = new Float64Array(n);
    if (meanNorm < eps) {
      if (models.length !== 2) {
        throw new UsageError(`multislerp: the weighted directions of tensor "${tensor.name}" sum to zero (antipodal models whose weights balance)`, {
          hint: 'use different weights',
        });
      }
      for (let i = 0; i < n; i++) out[i] = models[0]![i]! * weights[0]! + models[1]![i]! * weights[1]! + (base?.[i] ?? 0);
      return out;
    }
    for (let i = 0; i < n; i++) mean[i]! /= meanNorm;
    const tangent = new Float64Array(n);
    units.forEach((unit, k) => {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += unit[i]! * mean[i]!;
      for (let i = 0; i < n; i++) tangent[i]! += (unit[i]! - dot * mean[i]!) * weights[k]!;
    });
    const tangentNorm = norm(tangent) + eps;
    const c = Math.cos(tangentNorm);
    const s = Math.sin(tangentNorm) / tangentNorm;
    const scale = norms.reduce((sum, value, k) => sum + value * weights[k]!, 0);
    for (let i = 0; i < n; i++) out[i] = (mean[i]! * c + tangent[i]! * s) * scale + (base?.[i] ?? 0);
    return out;
  },
};
