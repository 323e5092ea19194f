import type { MergeMethod } from './method.js';
import { number, type ParameterDefs } from './parameters.js';

const parameters = {
  scale: { scope: 'model', schema: number(), description: 'multiply the tensor by this (unset: copied as is)' },
} satisfies ParameterDefs;

/** mergekit's passthrough: one model's tensor, times `scale` when given (layer stacking with slices). */
export const passthrough: MergeMethod = {
  name: 'passthrough',
  description: "copy one model's tensors, optionally scaled (with slices: layer stacking)",
  base: 'none',
  minModels: 1,
  maxModels: 1,
  parameters,
  mergeTensor({ models, params }) {
    const values = models[0]!;
    const scale = params[0]!.scale;
    if (typeof scale === 'number') for (let i = 0; i < values.length; i++) values[i]! *= scale;
    return values;
  },
};
