/**
 * mergekit's YAML recipes: read, check against the method's parameters before any weight is read,
 * and written back (mergekit_config.yml beside a folder output) so mergekit can rerun the merge.
 */
import { parseDocument, stringify } from 'yaml';
import { parseFloatDType, type FloatDType } from '../../checkpoint/dtype.js';
import { readFile, stat } from 'node:fs/promises';
import { InputError, UsageError, describeFsError } from '../../errors.js';
import type { MergeMethod } from './methods/method.js';
import { checkParameters, missingParameters, type ParameterIssue, type ParameterValue } from './methods/parameters.js';
import { METHOD_NAMES, findMethod } from './methods/registry.js';
import type { Slice, SliceSource } from './slices.js';

export interface MergeModel {
  model: string;
  parameters: Record<string, ParameterValue>;
}

export interface MergeConfig {
  method: MergeMethod;
  base?: string | undefined;
  models: MergeModel[];
  parameters: Record<string, ParameterValue>;
  dtype?: FloatDType | undefined;
  outDtype?: FloatDType | undefined;
  tokenizerSource?: string | undefined;
  /** mergekit's `slices:` (then `models` holds the first slice's sources, for the checks). */
  slices?: Slice[] | undefined;
}

const TOP_LEVEL = new Set(['merge_method', 'base_model', 'models', 'slices', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source']);
const MODEL_KEYS = new Set(['model', 'parameters']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(file: string, issue: ParameterIssue, hint?: string): never {
  throw new InputError(file, `${issue.path}: ${issue.message}`, hint === undefined ? {} : { hint });
}

function readDtype(file: string, key: string, value: unknown): FloatDType | undefined {
  if (value === undefined || value === null) return undefined;
  const dtype = typeof value === 'string' ? parseFloatDType(value) : undefined;
  if (dtype === undefined) fail(file, { path: key, message: `unknown dtype ${JSON.stringify(value)} (use float32, float16, bfloat16 or float64)` });
  return dtype;
}

/**
 * The models a method merges. mergekit loads base_model with the models and hands it to every method;
 * task-vector methods take it apart as the base, while linear averages it in like any model (when it
 * is listed or a global weight gives it one; unlisted and unweighted, mergekit stops on a None weight
 * and soup leaves it out) and karcher always does.
 */
function ingredientsOf(method: MergeMethod, base: string | undefined, listed: MergeModel[], parameters: Record<string, ParameterValue>): MergeModel[] {
  if (base === undefined || method.baseAsModel === undefined) return listed.filter((entry) => entry.model !== base);
  if (listed.some((entry) => entry.model === base)) return listed;
  if (method.baseAsModel === 'always' || parameters.weight !== undefined) return [...listed, { model: base, parameters: {} }];
  return listed;
}

/**
 * A mergekit recipe is a few kilobytes; the YAML parser takes about 300 bytes of memory per byte of
 * a long list, so a 2 MB gradient would cost more than a gigabyte before any check could refuse it.
 */
export const MAX_RECIPE_CHARS = 128 * 1024;

/**
 * Reads a recipe file: a regular file (a FIFO would block for ever) of at most MAX_RECIPE_CHARS
 * bytes, checked before anything is read.
 */
export async function readRecipeFile(file: string): Promise<string> {
  const info = await stat(file).catch((error: unknown) => {
    throw new InputError(file, describeFsError(error), { cause: error });
  });
  if (!info.isFile()) throw new InputError(file, 'is not a regular file (a FIFO, socket, device or folder named like a recipe)');
  if (info.size > MAX_RECIPE_CHARS * 4) throw new InputError(file, `is ${info.size} bytes long; a mergekit recipe has at most ${MAX_RECIPE_CHARS} characters`);
  return readFile(file, 'utf8').catch((error: unknown) => {
    throw new InputError(file, describeFsError(error), { cause: error });
  });
}

/** Parses and checks a mergekit recipe; every problem is one line naming the file and the key. */
export function parseMergeYaml(text: string, file: string): MergeConfig {
  if (text.length > MAX_RECIPE_CHARS) throw new InputError(file, `is ${text.length} characters long; a mergekit recipe has at most ${MAX_RECIPE_CHARS}`);
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const error = document.errors[0];
  if (error !== undefined) {
    const line = text.slice(0, error.pos[0]).split('\n').length;
    throw new InputError(file, `not valid YAML at line ${line}: ${error.message.split('\n')[0]}`);
  }
  let root: unknown;
  try {
    root = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // The yaml package refuses alias bombs ("Excessive alias count") and unresolved aliases by throwing.
    throw new InputError(file, `not a recipe soup reads: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  if (!isRecord(root)) throw new InputError(file, 'expected a mapping with merge_method and models');
  for (const key of Object.keys(root)) {
    if (!TOP_LEVEL.has(key)) fail(file, { path: key, message: `not supported (soup reads ${[...TOP_LEVEL].join(', ')})` });
  }
  const name = root.merge_method;
  if (typeof name !== 'string') fail(file, { path: 'merge_method', message: `is required: one of ${METHOD_NAMES.join(', ')}` });
  const method = findMethod(name);
  if (method === undefined) fail(file, { path: 'merge_method', message: `"${name}" is not supported (soup has ${METHOD_NAMES.join(', ')})` });
  const base = root.base_model;
  if (base !== undefined && base !== null && typeof base !== 'string') fail(file, { path: 'base_model', message: 'must be a path to a checkpoint' });
  if (root.slices !== undefined && root.models !== undefined) fail(file, { path: 'slices', message: 'give either models or slices, not both (as mergekit)' });
  const slices = root.slices === undefined ? undefined : readSlices(file, root.slices);
  const listedModels = slices === undefined ? root.models : slices[0]!.sources.map((source) => ({ model: source.model, parameters: source.parameters }));
  if (!Array.isArray(listedModels)) fail(file, { path: 'models', message: 'is required: a list of {model, parameters}' });
  const models = listedModels.map((entry: unknown, k): MergeModel => {
    const where = `models[${k}]`;
    if (!isRecord(entry)) fail(file, { path: where, message: 'must be {model, parameters}' });
    for (const key of Object.keys(entry))
      if (!MODEL_KEYS.has(key)) fail(file, { path: `${where}.${key}`, message: 'not supported (a model entry has model and parameters)' });
    if (typeof entry.model !== 'string') fail(file, { path: `${where}.model`, message: 'is required: a path to a checkpoint' });
    const parameters = entry.parameters ?? {};
    if (!isRecord(parameters)) fail(file, { path: `${where}.parameters`, message: 'must be a mapping' });
    return { model: entry.model, parameters: parameters as Record<string, ParameterValue> };
  });
  const parameters = root.parameters ?? {};
  if (!isRecord(parameters)) fail(file, { path: 'parameters', message: 'must be a mapping' });
  const tokenizerSource = root.tokenizer_source;
  if (tokenizerSource !== undefined && tokenizerSource !== null && typeof tokenizerSource !== 'string') {
    fail(file, { path: 'tokenizer_source', message: 'must be base or a model path' });
  }
  const config: MergeConfig = {
    method,
    base: typeof base === 'string' ? base : undefined,
    models: ingredientsOf(method, typeof base === 'string' ? base : undefined, models, parameters as Record<string, ParameterValue>),
    parameters: parameters as Record<string, ParameterValue>,
    dtype: readDtype(file, 'dtype', root.dtype),
    outDtype: readDtype(file, 'out_dtype', root.out_dtype),
    tokenizerSource: typeof tokenizerSource === 'string' ? tokenizerSource : undefined,
    slices,
  };
  if (slices !== undefined) {
    // The base is a source of each slice; task-vector methods take it apart there, linear and karcher do not.
    config.models = method.base === 'none' ? models : models.filter((entry) => entry.model !== base);
    const issue = checkSlices(config, slices)[0];
    if (issue !== undefined) fail(file, issue);
  }
  const issue = checkMergeConfig(config, models)[0];
  if (issue !== undefined) fail(file, issue);
  return config;
}

/** `slices: [{sources: [{model, layer_range: [from, to], parameters}], parameters}]`, shapes checked. */
function readSlices(file: string, value: unknown): Slice[] {
  if (!Array.isArray(value) || value.length === 0) fail(file, { path: 'slices', message: 'must be a non-empty list of {sources, parameters}' });
  return value.map((entry: unknown, s): Slice => {
    const where = `slices[${s}]`;
    if (!isRecord(entry)) fail(file, { path: where, message: 'must be {sources, parameters}' });
    for (const key of Object.keys(entry))
      if (key !== 'sources' && key !== 'parameters') fail(file, { path: `${where}.${key}`, message: 'not supported (a slice has sources and parameters)' });
    if (!Array.isArray(entry.sources) || entry.sources.length === 0)
      fail(file, { path: `${where}.sources`, message: 'is required: a list of {model, layer_range}' });
    const parameters = entry.parameters ?? {};
    if (!isRecord(parameters)) fail(file, { path: `${where}.parameters`, message: 'must be a mapping' });
    const sources = entry.sources.map((source: unknown, k): SliceSource => {
      const at = `${where}.sources[${k}]`;
      if (!isRecord(source)) fail(file, { path: at, message: 'must be {model, layer_range}' });
      for (const key of Object.keys(source))
        if (!['model', 'layer_range', 'parameters'].includes(key))
          fail(file, { path: `${at}.${key}`, message: 'not supported (a source has model, layer_range and parameters)' });
      if (typeof source.model !== 'string') fail(file, { path: `${at}.model`, message: 'is required: a path to a checkpoint' });
      const range = source.layer_range;
      if (!Array.isArray(range) || range.length !== 2 || !range.every((n) => Number.isInteger(n) && n >= 0) || range[0] >= range[1]) {
        fail(file, { path: `${at}.layer_range`, message: 'must be [from, to] with whole numbers from < to' });
      }
      const own = source.parameters ?? {};
      if (!isRecord(own)) fail(file, { path: `${at}.parameters`, message: 'must be a mapping' });
      return { model: source.model, layerRange: [range[0], range[1]], parameters: own as Record<string, ParameterValue> };
    });
    return { sources, parameters: parameters as Record<string, ParameterValue> };
  });
}

/** Parameter names and ranges in every slice and source, and required ones that nothing gives. */
function checkSlices(config: MergeConfig, slices: readonly Slice[]): ParameterIssue[] {
  const { method } = config;
  return slices.flatMap((slice, s) => [
    ...checkParameters(method.parameters, slice.parameters, `slices[${s}].parameters`, 'global'),
    ...Object.entries(method.parameters)
      .filter(([name, def]) => def.required === true && def.scope === 'global' && slice.parameters[name] === undefined && config.parameters[name] === undefined)
      .map(([name]) => ({ path: `parameters.${name}`, message: 'is required' })),
    ...slice.sources.flatMap((source, k) => {
      const at = `slices[${s}].sources[${k}].parameters`;
      const isBase = method.base !== 'none' && source.model === config.base;
      const missing = Object.entries(method.parameters)
        .filter(
          ([name, def]) =>
            def.required === true &&
            def.scope === 'model' &&
            !isBase &&
            source.parameters[name] === undefined &&
            slice.parameters[name] === undefined &&
            config.parameters[name] === undefined,
        )
        .map(([name]) => ({ path: `${at}.${name}`, message: 'is required' }));
      return [...checkParameters(method.parameters, source.parameters, at, 'model'), ...missing];
    }),
  ]);
}

/**
 * Problems with a recipe's shape: base model, model count, parameter names, ranges and presence.
 * `listed` are the models as written (paths in messages count from there).
 */
export function checkMergeConfig(config: MergeConfig, listed: readonly MergeModel[] = config.models): ParameterIssue[] {
  const { method } = config;
  const at = (k: number): string => `models[${listed.indexOf(config.models[k]!)}].parameters`;
  if (method.base === 'required' && config.base === undefined) {
    return [{ path: 'base_model', message: `is required: ${method.name} ${method.name === 'slerp' ? 'interpolates from it' : 'adds to it'}` }];
  }
  const count = config.models.length;
  if (count < method.minModels || (method.maxModels !== undefined && count > method.maxModels)) {
    const wanted =
      method.maxModels === method.minModels
        ? `exactly ${method.minModels}`
        : method.maxModels === undefined
          ? `at least ${method.minModels}`
          : `${method.minModels} to ${method.maxModels}`;
    return [
      {
        path: 'models',
        message: `${method.name} takes ${wanted} model${method.minModels === 1 && method.maxModels === 1 ? '' : 's'} besides base_model; got ${count}`,
      },
    ];
  }
  return [
    ...checkParameters(method.parameters, config.parameters, 'parameters', 'global'),
    ...config.models.flatMap((entry, k) => checkParameters(method.parameters, entry.parameters, at(k), 'model')),
    // A sliced recipe's required parameters may come from each slice: checkSlices looks there.
    ...(config.slices === undefined
      ? missingParameters(
          method.parameters,
          config.parameters,
          config.models.map((entry) => entry.parameters),
          at,
        )
      : []),
  ];
}

/** The same checks for a recipe given as flags; problems read `--density: must be in (0, 1]`. */
export function checkFlagConfig(config: MergeConfig): void {
  const issue = checkMergeConfig(config)[0];
  if (issue === undefined) return;
  const flag = issue.path
    .replace(/^models\[(\d+)\]\.parameters\.(\w+)/, (_, k: string, name: string) => `--${name.replace(/_/g, '-')} for ${config.models[Number(k)]!.model}`)
    .replace(/^parameters\.(\w+)/, (_, name: string) => `--${name.replace(/_/g, '-')}`)
    .replace(/^base_model$/, '--base')
    .replace(/^models$/, 'inputs');
  throw new UsageError(`${flag}: ${issue.message}`);
}

const MERGEKIT_DTYPES: Record<FloatDType, string> = { F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The recipe as mergekit's YAML, with the paths soup read, so `mergekit-yaml` can rerun it. */
export function mergekitYaml(config: MergeConfig): string {
  const document: Record<string, unknown> = { merge_method: config.method.name };
  if (config.base !== undefined) document.base_model = config.base;
  if (config.slices !== undefined) {
    document.slices = config.slices.map((slice) => ({
      sources: slice.sources.map((source) => ({
        model: source.model,
        layer_range: source.layerRange,
        ...(Object.keys(source.parameters).length === 0 ? {} : { parameters: source.parameters }),
      })),
      ...(Object.keys(slice.parameters).length === 0 ? {} : { parameters: slice.parameters }),
    }));
  } else
    document.models = config.models.map((entry) =>
      Object.keys(entry.parameters).length === 0 ? { model: entry.model } : { model: entry.model, parameters: entry.parameters },
    );
  if (Object.keys(config.parameters).length > 0) document.parameters = config.parameters;
  if (config.dtype !== undefined) document.dtype = MERGEKIT_DTYPES[config.dtype];
  if (config.outDtype !== undefined) document.out_dtype = MERGEKIT_DTYPES[config.outDtype];
  if (config.tokenizerSource !== undefined) document.tokenizer_source = config.tokenizerSource;
  return stringify(document);
}
