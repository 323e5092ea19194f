import { UsageError } from '../../../errors.js';
import type { MergeMethod } from './method.js';
import { boolean, number, type ParameterDefs, type ParameterValue } from './parameters.js';

const parameters = {
  weight: { scope: 'model', schema: number(), required: true, description: "this ingredient's weight" },
  normalize: { scope: 'global', schema: boolean(), default: true, description: 'divide by the sum of the weights' },
} satisfies ParameterDefs;

export function refuseZeroSum(tensor: string): never {
  throw new UsageError(`linear: the weights for tensor "${tensor}" sum to 0, and normalize divides by their sum`, {
    hint: 'give weights with a non-zero sum, or set normalize: false',
  });
}

/** sum(w_i theta_i) / sum(w_i), or the plain weighted sum without normalize (mergekit's linear). */
export const linear: MergeMethod = {
  name: 'linear',
  description: 'weighted average of the ingredients (model soup with chosen weights)',
  base: 'none',
  baseAsModel: 'weighted',
  minModels: 1,
  parameters,
  mergeTensor({ tensor, models, params, global }) {
    const weights = params.map((p) => p.weight as number);
    const sum = weights.reduce((a, b) => a + b, 0);
    if (global.normalize === true && sum === 0) refuseZeroSum(tensor.name);
    const out = new Float64Array(models[0]!.length);
    models.forEach((model, k) => {
      const w = weights[k]!;
      for (let i = 0; i < out.length; i++) out[i]! += w * model[i]!;
    });
    if (global.normalize === true) for (let i = 0; i < out.length; i++) out[i]! /= sum;
    return out;
  },
};

/**
 * The weights of a linear merge that is a plain weighted mean (normalize on, every weight one number
 * for every tensor), which the chunked mixer streams as fast as a uniform soup; undefined otherwise.
 */
export function plainMeanWeights(
  global: Readonly<Record<string, ParameterValue>>,
  perModel: readonly Readonly<Record<string, ParameterValue>>[],
): number[] | undefined {
  if ((global.normalize ?? true) !== true) return undefined;
  const weights = perModel.map((own) => own.weight ?? global.weight);
  return weights.every((weight): weight is number => typeof weight === 'number') ? weights : undefined;
}
