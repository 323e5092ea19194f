import type { MergeMethod } from './method.js';
import { fraction, type ParameterDefs } from './parameters.js';

const parameters = {
  t: { scope: 'global', schema: fraction(), required: true, description: 'where between base_model (t = 0) and the other model (t = 1)' },
} satisfies ParameterDefs;

const DOT_THRESHOLD = 0.9995;

function norm(values: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}

/**
 * Spherical interpolation of two flattened tensors, as mergekit's slerp: the angle between the
 * normalised directions (a norm under 1e-8 is left unnormalised), linear interpolation when they are
 * nearly colinear (|dot| > 0.9995), else the sine weights applied to the unnormalised tensors.
 */
export function slerpValues(t: number, v0: Float64Array, v1: Float64Array): Float64Array {
  const n0 = norm(v0);
  const n1 = norm(v1);
  const s0 = n0 > 1e-8 ? 1 / n0 : 1;
  const s1 = n1 > 1e-8 ? 1 / n1 : 1;
  let dot = 0;
  for (let i = 0; i < v0.length; i++) dot += v0[i]! * s0 * (v1[i]! * s1);
  const out = new Float64Array(v0.length);
  if (Math.abs(dot) > DOT_THRESHOLD) {
    for (let i = 0; i < out.length; i++) out[i] = (1 - t) * v0[i]! + t * v1[i]!;
    return out;
  }
  const theta = Math.acos(dot);
  const sinTheta = Math.sin(theta);
  const a = Math.sin(theta - theta * t) / sinTheta;
  const b = Math.sin(theta * t) / sinTheta;
  for (let i = 0; i < out.length; i++) out[i] = a * v0[i]! + b * v1[i]!;
  return out;
}

export const slerp: MergeMethod = {
  name: 'slerp',
  description: 'spherical interpolation between base_model (t = 0) and one other model (t = 1)',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  parameters,
  mergeTensor: ({ base, models, global }) => slerpValues(global.t as number, base!, models[0]!),
};
