/** Opens what a merge recipe names, checks it agrees, and gathers the files that travel with the output. */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { closeAll, discoverIngredients, nameTogether, openAll, type Ingredient } from '../../checkpoint/discover.js';
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { IncompatibleError, InputError, UsageError } from '../../errors.js';
import { parseMergeYaml, readRecipeFile, type MergeConfig } from './config.js';
import { planSlices, type Slice, type SlicePlan } from './slices.js';

export interface MergeCheckpoints {
  base: Checkpoint | undefined;
  models: Checkpoint[];
  /** Base first, then the models: everything to close, hash and check. */
  all: Checkpoint[];
  /** A `slices:` recipe's layout: base and models are then its slots, `all` the models it reads. */
  slices?: SlicePlan;
}

/** The one checkpoint at `where`, or an error naming the recipe key that pointed there. */
async function discoverOne(where: string, key: string, source: string): Promise<Ingredient> {
  const found = await discoverIngredients([where]);
  if (found.length !== 1) throw new InputError(source, `${key}: ${where} holds ${found.length} checkpoints; name one`);
  return found[0]!;
}

export async function openMergeCheckpoints(config: MergeConfig, source: string): Promise<MergeCheckpoints> {
  if (config.slices !== undefined) return openSlices(config, config.slices, source);
  const base = config.base === undefined ? undefined : await discoverOne(config.base, 'base_model', source);
  const models: Ingredient[] = [];
  for (const [k, entry] of config.models.entries()) models.push(await discoverOne(entry.model, `models[${k}].model`, source));
  // Recipes name runs by path: two `.../checkpoint-282` models are told apart by their run folders.
  const ingredients = [...(base === undefined ? [] : [base]), ...models];
  nameTogether(ingredients);
  const opened = await openAll(ingredients);
  const problems = findIncompatibilities(opened);
  if (problems.length > 0) {
    await closeAll(opened);
    throw new IncompatibleError(problems);
  }
  return base === undefined ? { base: undefined, models: opened, all: opened } : { base: opened[0], models: opened.slice(1), all: opened };
}

/** A mergekit YAML recipe read from `file`, and every checkpoint it names opened. */
export async function openMergeRecipe(file: string): Promise<{ config: MergeConfig; opened: MergeCheckpoints }> {
  const config = parseMergeYaml(await readRecipeFile(file), file);
  return { config, opened: await openMergeCheckpoints(config, file) };
}

/** Every model a `slices:` recipe names, opened once, and its slots laid out over them. */
async function openSlices(config: MergeConfig, slices: readonly Slice[], source: string): Promise<MergeCheckpoints> {
  const paths = [...new Set(slices.flatMap((slice) => slice.sources.map((entry) => entry.model)))];
  const found: Ingredient[] = [];
  for (const [k, model] of paths.entries()) found.push(await discoverOne(model, `slices: model ${k}`, source));
  const opened = await openAll(found);
  try {
    const byPath = new Map(paths.map((model, k) => [model, opened[k]!]));
    const plan = planSlices(slices, config.base, config.method.base !== 'none', (model) => byPath.get(model)!, source);
    const slots = plan.base === undefined ? plan.slots : [plan.base, ...plan.slots];
    const problems = findIncompatibilities(slots);
    if (problems.length > 0) throw new IncompatibleError(problems);
    return { base: plan.base, models: plan.slots, all: opened, slices: plan };
  } catch (error) {
    await closeAll(opened);
    throw error;
  }
}

/** What a tokenizer consists of in a Hugging Face model folder. */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'vocab.txt',
  'merges.txt',
];

/** The folder a checkpoint lives in: itself for a folder checkpoint, else the file's folder. */
function folderOf(checkpoint: Checkpoint): string {
  return checkpoint.path.endsWith('.safetensors') ? path.dirname(checkpoint.path) : checkpoint.path;
}

/**
 * The tokenizer files of `tokenizer_source` (base, or one of the models by path or name), to copy
 * beside the merged weights. mergekit's `union` builds a new vocabulary, which soup does not do.
 */
export async function tokenizerFiles(source: string, opened: MergeCheckpoints, config: MergeConfig, file: string): Promise<Map<string, Uint8Array>> {
  if (source === 'union') throw new InputError(file, "tokenizer_source: union is not supported (soup copies one model's tokenizer: use base or a model path)");
  const index = config.models.findIndex((entry) => entry.model === source);
  const checkpoint = source === 'base' ? opened.base : (opened.models[index] ?? opened.models.find((model) => model.name === source));
  if (checkpoint === undefined) throw new InputError(file, `tokenizer_source: ${source} is neither base nor one of the models`);
  const folder = folderOf(checkpoint);
  const present = new Set(await readdir(folder).catch(() => []));
  const files = new Map<string, Uint8Array>();
  for (const name of TOKENIZER_FILES) if (present.has(name)) files.set(name, await readFile(path.join(folder, name)));
  if (files.size === 0) throw new InputError(file, `tokenizer_source: ${folder} holds no tokenizer files (${TOKENIZER_FILES.slice(0, 3).join(', ')}, ...)`);
  return files;
}

export function refuseSingleFileCompanions(out: string, what: string): void {
  throw new UsageError(`${what} needs a folder output to go in, and ${out} is a single .safetensors file`, {
    hint: 'write to a folder (-o OUT without .safetensors)',
  });
}
