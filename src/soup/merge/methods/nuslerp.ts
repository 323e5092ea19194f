/**
 * mergekit's nuslerp: spherical interpolation of two models at t = w_1 / (w_0 + w_1) (0.5 when the
 * weights sum to about 0), of the whole flattened tensors (nuslerp_flatten, the default), of each row
 * (vectors along the last dimension) or, with nuslerp_row_wise, of each column (vectors along the
 * first). With a base model it interpolates the task vectors and adds the result to the base.
 */
import type { MergeMethod } from './method.js';
import { boolean, number, type ParameterDefs } from './parameters.js';

const parameters = {
  weight: { scope: 'model', schema: number(), required: true, description: "this ingredient's weight (t = w_1 / (w_0 + w_1))" },
  nuslerp_row_wise: { scope: 'global', schema: boolean(), default: false, description: 'interpolate vectors along the first dimension instead of the last' },
  nuslerp_flatten: { scope: 'global', schema: boolean(), default: true, description: 'interpolate the whole tensor as one vector' },
} satisfies ParameterDefs;

/** Interpolates the vectors of `count` elements found at `at(j, k)` for k < count, vector j of `vectors`. */
function slerpVectors(
  t: number,
  v0: Float64Array,
  v1: Float64Array,
  out: Float64Array,
  vectors: number,
  count: number,
  at: (j: number, k: number) => number,
): void {
  for (let j = 0; j < vectors; j++) {
    let n0 = 0;
    let n1 = 0;
    for (let k = 0; k < count; k++) {
      n0 += v0[at(j, k)]! ** 2;
      n1 += v1[at(j, k)]! ** 2;
    }
    n0 = Math.max(Math.sqrt(n0), 1e-7);
    n1 = Math.max(Math.sqrt(n1), 1e-7);
    let cos = 0;
    for (let k = 0; k < count; k++) cos += (v0[at(j, k)]! / n0) * (v1[at(j, k)]! / n1);
    const theta = Math.acos(Math.min(1, Math.max(-1, cos)));
    const sin = Math.sin(theta);
    const colinear = Math.abs(sin) < 1e-8;
    const a = colinear ? 1 - t : Math.sin((1 - t) * theta);
    const b = colinear ? t : Math.sin(t * theta);
    for (let k = 0; k < count; k++) {
      const i = at(j, k);
      out[i] = colinear ? a * v0[i]! + b * v1[i]! : (a * v0[i]! + b * v1[i]!) / sin;
    }
  }
}

export function nuslerpValues(t: number, v0: Float64Array, v1: Float64Array, shape: readonly number[], rowWise: boolean, flatten: boolean): Float64Array {
  const n = v0.length;
  const out = new Float64Array(n);
  if (flatten || shape.length <= 1) {
    slerpVectors(t, v0, v1, out, 1, n, (_, k) => k);
  } else if (!rowWise) {
    const last = shape[shape.length - 1]!;
    slerpVectors(t, v0, v1, out, n / last, last, (j, k) => j * last + k);
  } else {
    const first = shape[0]!;
    const stride = n / first;
    slerpVectors(t, v0, v1, out, stride, first, (j, k) => k * stride + j);
  }
  return out;
}

export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  description: 'spherical interpolation of two models by their weights, per tensor, row or column; of task vectors with a base',
  base: 'optional',
  minModels: 2,
  maxModels: 2,
  parameters,
  mergeTensor({ tensor, base, models, params, global }) {
    const [w0, w1] = params.map((p) => p.weight as number) as [number, number];
    const t = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
    const [a, b] = models as [Float64Array, Float64Array];
    if (base !== undefined) {
      for (let i = 0; i < a.length; i++) {
        a[i]! -= base[i]!;
        b[i]! -= base[i]!;
      }
    }
    const out = nuslerpValues(t, a, b, tensor.shape, global.nuslerp_row_wise === true, global.nuslerp_flatten === true);
    if (base !== undefined) for (let i = 0; i < out.length; i++) out[i]! += base[i]!;
    return out;
  },
};
