/**
 * The Karcher (Riemannian) mean as mergekit's karcher_merge_tensors: every model (base_model too, when
 * the recipe names one) is split into its norm and direction; the directions' mean on the sphere is
 * found by at most max_iter steps of the exponential map, stopping once the tangent step's norm is
 * under tol; the result is that direction times the mean of the norms. Weights are equal.
 */
import { z } from 'zod';
import type { MergeMethod } from './method.js';
import { number, type ParameterDefs } from './parameters.js';

const parameters = {
  max_iter: {
    scope: 'global',
    schema: z.number({ invalid_type_error: 'must be a number' }).int('must be a whole number').nonnegative('must be 0 or more'),
    default: 10,
    description: 'most iterations of the mean on the sphere',
  },
  tol: { scope: 'global', schema: number().nonnegative('must be 0 or more'), default: 1e-5, description: 'stop when the step is smaller than this' },
} satisfies ParameterDefs;

function norm(values: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

export function karcherMean(tensors: readonly Float64Array[], maxIter: number, tol: number): Float64Array {
  if (tensors.length === 1) return tensors[0]!;
  const alpha = 1 / tensors.length;
  const norms = tensors.map(norm);
  const units = tensors.map((tensor, k) => (norms[k] === 0 ? new Float64Array(tensor.length) : tensor.map((value) => value / norms[k]!)));
  const valid = units.filter((_, k) => norms[k]! > tol);
  const n = tensors[0]!.length;
  if (valid.length === 0) return new Float64Array(n);
  const weight = 1 / valid.length;
  let u = new Float64Array(n);
  for (const unit of valid) for (let i = 0; i < n; i++) u[i]! += weight * unit[i]!;
  const normU = norm(u);
  if (normU < tol) u = Float64Array.from(valid[0]!);
  else for (let i = 0; i < n; i++) u[i]! /= normU;
  for (let iteration = 0; iteration < maxIter; iteration++) {
    const step = new Float64Array(n);
    for (const unit of valid) {
      const cos = Math.min(1, Math.max(-1, dot(u, unit)));
      const theta = Math.acos(cos);
      if (theta < tol) continue;
      const scale = (weight * theta) / Math.sin(theta);
      for (let i = 0; i < n; i++) step[i]! += scale * (unit[i]! - cos * u[i]!);
    }
    const normStep = norm(step);
    if (normStep < tol) break;
    const c = Math.cos(normStep);
    const s = Math.sin(normStep) / normStep;
    for (let i = 0; i < n; i++) u[i] = c * u[i]! + s * step[i]!;
    const length = norm(u);
    if (length > tol) for (let i = 0; i < n; i++) u[i]! /= length;
  }
  const scale = norms.reduce((sum, value) => sum + alpha * value, 0);
  for (let i = 0; i < n; i++) u[i]! *= scale;
  return u;
}

export const karcher: MergeMethod = {
  name: 'karcher',
  description: "Riemannian (Karcher) mean of the models' directions, scaled by their mean norm",
  base: 'none',
  baseAsModel: 'always',
  minModels: 1,
  parameters,
  mergeTensor: ({ models, global }) => karcherMean(models, global.max_iter as number, global.tol as number),
};
