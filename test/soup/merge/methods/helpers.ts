import type { MergeMethod, TensorInputs } from '../../../../src/soup/merge/methods/method.js';
import { resolveParameters, LayerIndex, type ParameterValue } from '../../../../src/soup/merge/methods/parameters.js';

/** Runs a method on one tensor given as plain arrays, with parameters resolved as a merge would. */
export function mergeValues(
  method: MergeMethod,
  tensor: { base?: number[]; models: number[][]; shape?: number[]; name?: string },
  parameters: { global?: Record<string, ParameterValue>; models?: Record<string, ParameterValue>[]; seed?: number; names?: string[] } = {},
): number[] {
  const name = tensor.name ?? 'w';
  const resolved = resolveParameters(
    method.parameters,
    parameters.global ?? {},
    parameters.models ?? tensor.models.map(() => ({})),
    name,
    new LayerIndex([name]),
  );
  const inputs: TensorInputs = {
    tensor: { name, shape: tensor.shape ?? [tensor.models[0]!.length], dtype: 'F32', storedBytes: 0 },
    base: tensor.base === undefined ? undefined : Float64Array.from(tensor.base),
    models: tensor.models.map((values) => Float64Array.from(values)),
    names: parameters.names ?? tensor.models.map((_, k) => String.fromCharCode(97 + k)),
    params: resolved.models,
    global: resolved.global,
    seed: parameters.seed ?? 0,
  };
  return [...method.mergeTensor(inputs)];
}

export const close = (actual: readonly number[], expected: readonly number[], tolerance = 1e-12): boolean =>
  actual.length === expected.length && actual.every((value, i) => Math.abs(value - expected[i]!) <= tolerance);
