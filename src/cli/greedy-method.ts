/** soup greedy --method: the ingredients, the base, and how each candidate merge is made. */
import path from 'node:path';
import { closeAll, discoverIngredients, openAll } from '../checkpoint/discover.js';
import { findIncompatibilities } from '../checkpoint/compatible.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { IncompatibleError, UsageError } from '../errors.js';
import { openIngredients } from '../soup/ingredients.js';
import type { MergePlan } from '../soup/merge.js';
import { checkFlagConfig } from '../soup/merge-config.js';
import type { ParameterValue } from '../soup/methods/parameters.js';
import { METHODS, findMethod } from '../soup/methods/registry.js';
import { flagParameters, givesParameters, layerIndex, type MergeOptions } from './merge-options.js';

export interface GreedyMethod {
  plan: Omit<MergePlan, 'models' | 'modelParameters'>;
  base: Checkpoint | undefined;
  parameters: Record<string, ParameterValue>;
  parametersOf: (checkpoint: Checkpoint) => Readonly<Record<string, ParameterValue>>;
}

/** Methods greedy can grow one ingredient at a time: those taking any number of models, with a base. */
const GROWABLE = METHODS.filter((method) => method.maxModels === undefined && method.minModels === 1).map((method) => method.name);

export async function openGreedyMethod(
  inputs: string[],
  options: MergeOptions & { allowNonfinite: boolean },
  signal: AbortSignal,
): Promise<{ checkpoints: Checkpoint[]; method: GreedyMethod | undefined; all: Checkpoint[] }> {
  if (options.method === undefined) {
    const flag = givesParameters(options);
    if (flag !== undefined) throw new UsageError(`--${flag}: only used with --method (greedy over a merge method)`);
    const checkpoints = await openIngredients(inputs);
    return { checkpoints, method: undefined, all: checkpoints };
  }
  const method = findMethod(options.method);
  if (method === undefined || !GROWABLE.includes(method.name)) {
    throw new UsageError(`--method: greedy grows a soup one ingredient at a time, which ${options.method} cannot do (use ${GROWABLE.join(', ')})`);
  }
  if (options.base === undefined && method.base === 'required') throw new UsageError(`--base: is required: ${method.name} adds task vectors to a base model`);
  if (options.base !== undefined && method.base === 'none') throw new UsageError(`--base: ${method.name} takes no base model`);
  const base = options.base === undefined ? undefined : (await discoverIngredients([options.base]))[0]!;
  const ingredients = (await discoverIngredients(inputs)).filter((ingredient) => base === undefined || path.resolve(ingredient.path) !== path.resolve(base.path));
  if (ingredients.length === 0) throw new UsageError('no ingredients besides the base model');
  const names = ingredients.map((ingredient) => ingredient.name);
  const { global, perModel } = flagParameters(options, names, (name) => method.parameters[name] !== undefined);
  checkFlagConfig({ method, base: base?.path, models: ingredients.map((ingredient) => ({ model: ingredient.path, parameters: perModel.get(ingredient.name)! })), parameters: global });
  const all = await openAll(base === undefined ? ingredients : [base, ...ingredients]);
  const problems = findIncompatibilities(all);
  if (problems.length > 0) {
    await closeAll(all);
    throw new IncompatibleError(problems);
  }
  const baseCheckpoint = base === undefined ? undefined : all[0]!;
  const checkpoints = base === undefined ? all : all.slice(1);
  return {
    checkpoints,
    all,
    method: {
      base: baseCheckpoint!,
      parameters: global,
      parametersOf: (checkpoint) => perModel.get(checkpoint.name) ?? {},
      plan: {
        method,
        base: baseCheckpoint,
        parameters: global,
        seed: options.randomSeed,
        layers: layerIndex(options, all[0]!.tensors().map((tensor) => tensor.name)),
        allowNonFinite: options.allowNonfinite,
        signal,
      },
    },
  };
}
