/** soup greedy --method: the base, and how each candidate merge is made. */
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import type { MergeConfig } from './config.js';
import type { MergePlan } from './engine.js';
import type { MergeCheckpoints } from './inputs.js';
import type { MergeMethod } from './methods/method.js';
import type { LayerIndex, ParameterValue } from './methods/parameters.js';
import { METHODS } from './methods/registry.js';

export interface GreedyMethod {
  plan: Omit<MergePlan, 'models' | 'modelParameters'>;
  base: Checkpoint | undefined;
  parameters: Record<string, ParameterValue>;
  parametersOf: (checkpoint: Checkpoint) => Readonly<Record<string, ParameterValue>>;
}

/** Methods greedy can grow one ingredient at a time: those taking any number of models. */
const GROWABLE = METHODS.filter((method) => method.maxModels === undefined && method.minModels === 1).map((method) => method.name);

/** Refuses, before anything is opened, a method that cannot grow a soup one ingredient at a time. */
export function refuseUngrowable(method: MergeMethod): void {
  if (!GROWABLE.includes(method.name)) {
    throw new UsageError(`--method: greedy grows a soup one ingredient at a time, which ${method.name} cannot do (use ${GROWABLE.join(', ')})`);
  }
}

/** The merge every greedy candidate is made with: the recipe's method, base and parameters over whichever ingredients the candidate holds. */
export function greedyMethod(
  config: MergeConfig,
  opened: MergeCheckpoints,
  options: { seed: number; layers: LayerIndex; allowNonFinite: boolean; signal?: AbortSignal },
): GreedyMethod {
  const byName = new Map(opened.models.map((model, k) => [model.name, config.models[k]!.parameters]));
  return {
    base: opened.base,
    parameters: config.parameters,
    parametersOf: (checkpoint) => byName.get(checkpoint.name) ?? {},
    plan: {
      method: config.method,
      base: opened.base,
      parameters: config.parameters,
      seed: options.seed,
      layers: options.layers,
      allowNonFinite: options.allowNonFinite,
      signal: options.signal,
    },
  };
}
