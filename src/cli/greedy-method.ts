/** soup greedy --method: the ingredients, the base, and how each candidate merge is made. */
import type { Checkpoint } from '../checkpoint/types.js';
import { UsageError } from '../errors.js';
import { openIngredients, type OpenOptions } from '../soup/ingredients.js';
import type { MergePlan } from '../soup/merge/engine.js';
import type { ParameterValue } from '../soup/merge/methods/parameters.js';
import { METHODS } from '../soup/merge/methods/registry.js';
import { configFromFlags, givesParameters, layerIndex, type MergeOptions } from './merge-options.js';

export interface GreedyMethod {
  plan: Omit<MergePlan, 'models' | 'modelParameters'>;
  base: Checkpoint | undefined;
  parameters: Record<string, ParameterValue>;
  parametersOf: (checkpoint: Checkpoint) => Readonly<Record<string, ParameterValue>>;
}

/** Methods greedy can grow one ingredient at a time: those taking any number of models. */
const GROWABLE = METHODS.filter((method) => method.maxModels === undefined && method.minModels === 1).map((method) => method.name);

export async function openGreedyMethod(
  inputs: string[],
  options: MergeOptions & { allowNonfinite: boolean },
  signal: AbortSignal,
  discover: OpenOptions = {},
): Promise<{ checkpoints: Checkpoint[]; method: GreedyMethod | undefined; all: Checkpoint[] }> {
  if (options.method === undefined) {
    const flag = givesParameters(options);
    if (flag !== undefined) throw new UsageError(`--${flag}: only used with --method (greedy over a merge method)`);
    const checkpoints = await openIngredients(inputs, discover);
    return { checkpoints, method: undefined, all: checkpoints };
  }
  const { config, opened } = await configFromFlags(inputs, options, discover, (method) => {
    if (!GROWABLE.includes(method.name)) {
      throw new UsageError(`--method: greedy grows a soup one ingredient at a time, which ${method.name} cannot do (use ${GROWABLE.join(', ')})`);
    }
  });
  const byName = new Map(opened.models.map((model, k) => [model.name, config.models[k]!.parameters]));
  return {
    checkpoints: opened.models,
    all: opened.all,
    method: {
      base: opened.base,
      parameters: config.parameters,
      parametersOf: (checkpoint) => byName.get(checkpoint.name) ?? {},
      plan: {
        method: config.method,
        base: opened.base,
        parameters: config.parameters,
        seed: options.randomSeed,
        layers: layerIndex(
          options,
          opened.all[0]!.tensors().map((tensor) => tensor.name),
        ),
        allowNonFinite: options.allowNonfinite,
        signal,
      },
    },
  };
}
