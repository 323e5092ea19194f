/** The flags that describe a merge (soup merge's flag form, soup greedy --method), turned into a recipe. */
import { z } from 'zod';
import { closeAll } from '../checkpoint/discover.js';
import { UsageError } from '../errors.js';
import { openIngredientsWithBase, type OpenOptions } from '../soup/ingredients.js';
import { openMergeRecipe, type MergeCheckpoints } from '../soup/merge/inputs.js';
import { layerIndexFor } from '../soup/merge/layers.js';
import { checkFlagConfig, type MergeConfig } from '../soup/merge/config.js';
import type { MergeMethod } from '../soup/merge/methods/method.js';
import { METHOD_NAMES, findMethod } from '../soup/merge/methods/registry.js';
import type { ParameterValue } from '../soup/merge/methods/parameters.js';
import type { LayerIndex } from '../soup/merge/methods/parameters.js';

const repeated = z.array(z.string()).optional();

export const mergeOptions = z.object({
  method: z.string().min(1).optional(),
  base: z.string().min(1).optional(),
  weight: repeated,
  density: repeated,
  gamma: repeated,
  lambda: z.string().optional(),
  t: z.string().optional(),
  normalize: z.boolean().optional(),
  rescale: z.boolean().optional(),
  rescaleMode: z.string().optional(),
  tiesScope: z.string().optional(),
  filterWise: z.boolean().optional(),
  randomSeed: z.coerce.number({ invalid_type_error: 'must be a whole number' }).int('must be a whole number').nonnegative('must be 0 or more').default(0),
  layerPattern: z.string().min(1).optional(),
});
export type MergeOptions = z.output<typeof mergeOptions>;

/** Flags that may be given per ingredient as NAME=VALUE. */
const PER_MODEL = ['weight', 'density', 'gamma'] as const;

function parseNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag}: "${text}" is not a number`);
  return value;
}

/** True when any flag that sets a merge parameter was given (a YAML recipe sets them itself). */
export function givesParameters(options: MergeOptions): string | undefined {
  const flags: [string, unknown][] = [
    ['weight', options.weight],
    ['density', options.density],
    ['gamma', options.gamma],
    ['lambda', options.lambda],
    ['t', options.t],
    ['normalize', options.normalize],
    ['rescale', options.rescale],
    ['rescale-mode', options.rescaleMode],
    ['ties-scope', options.tiesScope],
    ['filter-wise', options.filterWise],
    ['base', options.base],
    ['method', options.method],
  ];
  return flags.find(([, value]) => value !== undefined)?.[0];
}

/**
 * Global and per-ingredient parameters from the flags. `--weight 0.5` sets every ingredient's weight,
 * `--weight NAME=0.5` one ingredient's; `weight` defaults to 1 so that `--method ties` alone works.
 */
export function flagParameters(
  options: MergeOptions,
  names: readonly string[],
  takes: (name: string) => boolean,
): { global: Record<string, ParameterValue>; perModel: Map<string, Record<string, ParameterValue>> } {
  const global: Record<string, ParameterValue> = {};
  const perModel = new Map<string, Record<string, ParameterValue>>(names.map((name) => [name, {}]));
  for (const flag of PER_MODEL) {
    for (const entry of options[flag] ?? []) {
      const at = entry.lastIndexOf('=');
      if (at < 0) {
        global[flag] = parseNumber(flag, entry);
        continue;
      }
      const name = entry.slice(0, at);
      const own = perModel.get(name);
      if (own === undefined) throw new UsageError(`--${flag}: no ingredient named "${name}" (ingredients: ${names.join(', ')})`);
      own[flag] = parseNumber(flag, entry.slice(at + 1));
    }
  }
  if (options.lambda !== undefined) global.lambda = parseNumber('lambda', options.lambda);
  if (options.t !== undefined) global.t = parseNumber('t', options.t);
  if (options.normalize !== undefined) global.normalize = options.normalize;
  if (options.rescale !== undefined) global.rescale = options.rescale;
  if (options.rescaleMode !== undefined) global.rescale_mode = options.rescaleMode;
  if (options.tiesScope !== undefined) global.ties_scope = options.tiesScope;
  if (options.filterWise !== undefined) global.filter_wise = options.filterWise;
  if (global.weight === undefined && takes('weight')) global.weight = 1;
  return { global, perModel };
}

/** --layer-pattern over a checkpoint's tensor names (mergekit's default pattern without it). */
export function layerIndex(options: MergeOptions, names: readonly string[]): LayerIndex {
  return layerIndexFor(names, options.layerPattern);
}

/**
 * A recipe from flags, and its checkpoints opened: INPUTS are the ingredients, found, named (folder
 * names for model folders) and checked as every command does; --base the base (never an ingredient,
 * even where INPUTS hold it). `allow` may refuse a method this command cannot use.
 */
export async function configFromFlags(
  inputs: readonly string[],
  options: MergeOptions,
  discover: OpenOptions,
  allow?: (method: MergeMethod) => void,
): Promise<{ config: MergeConfig; opened: MergeCheckpoints }> {
  if (options.method === undefined) {
    throw new UsageError(`say how to merge: --method NAME (${METHOD_NAMES.join(', ')}), or give a mergekit YAML recipe`);
  }
  const method = findMethod(options.method);
  if (method === undefined) throw new UsageError(`--method: "${options.method}" is not a merge method (${METHOD_NAMES.join(', ')})`);
  allow?.(method);
  if (options.base !== undefined && method.base === 'none') throw new UsageError(`--base: ${method.name} takes no base model`);
  const opened = await openIngredientsWithBase(inputs, options.base, discover);
  try {
    const names = opened.models.map((model) => model.name);
    const { global, perModel } = flagParameters(options, names, (name) => method.parameters[name] !== undefined);
    const skip = opened.base === undefined ? 0 : 1;
    const config: MergeConfig = {
      method,
      base: opened.base === undefined ? undefined : opened.locations[0],
      models: opened.models.map((model, k) => ({ model: opened.locations[k + skip]!, parameters: perModel.get(model.name)! })),
      parameters: global,
    };
    checkFlagConfig(config);
    return { config, opened: { base: opened.base, models: opened.models, all: opened.all } };
  } catch (error) {
    await closeAll(opened.all);
    throw error;
  }
}

/**
 * The recipe soup merge's arguments give, its checkpoints opened: one .yml/.yaml file is a mergekit
 * recipe (and then no flag may say how to merge), anything else the ingredients of the flag form.
 */
export async function mergeRecipe(
  inputs: readonly string[],
  options: MergeOptions,
  discover: OpenOptions,
): Promise<{ config: MergeConfig; opened: MergeCheckpoints; source: string }> {
  const file = inputs.length === 1 && /\.ya?ml$/i.test(inputs[0]!) ? inputs[0]! : undefined;
  if (file === undefined) return { ...(await configFromFlags(inputs, options, discover)), source: 'the command line' };
  const flag = givesParameters(options);
  if (flag !== undefined) throw new UsageError(`--${flag}: a YAML recipe says how to merge; set it in ${file}, or use the flag form without a recipe`);
  return { ...(await openMergeRecipe(file)), source: file };
}
