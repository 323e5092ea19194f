import path from 'node:path';
import { closeAll, discoverIngredients, nameTogether, openAll, type DiscoverOptions, type Ingredient } from '../checkpoint/discover.js';
import { findIncompatibilities } from '../checkpoint/compatible.js';
import { checkOnnxIngredients } from '../checkpoint/onnx/compatible.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { IncompatibleError, UsageError } from '../errors.js';

/** How ingredients are found and opened: PyTorch's --key, --checkpoints, warnings, and ONNX's --allow-fused. */
export interface OpenOptions extends DiscoverOptions {
  allowFused?: boolean | undefined;
}

/**
 * Finds, opens and cross-checks the ingredients from headers alone, so that a bad file or a shape
 * mismatch is reported before any weight is read. The caller closes them (closeAll).
 */
export async function openIngredients(inputs: readonly string[], options: OpenOptions = {}): Promise<Checkpoint[]> {
  return openChecked(await discoverIngredients(inputs, options), options);
}

export interface IngredientsWithBase {
  base: Checkpoint | undefined;
  models: Checkpoint[];
  /** Base first, then the models: everything to close, hash and check. */
  all: Checkpoint[];
  /** Where each of `all` lies as the user would name it: a model folder, else the weights file (for recipes). */
  locations: string[];
}

/**
 * The ingredients and a base model (never one of the ingredients, even where INPUTS hold it), found,
 * named and checked as openIngredients does, so every command names and refuses the same things.
 */
export async function openIngredientsWithBase(inputs: readonly string[], base: string | undefined, options: OpenOptions = {}): Promise<IngredientsWithBase> {
  const bases = base === undefined ? [] : await discoverIngredients([base], { ...options, exclude: undefined });
  if (bases.length > 1) throw new UsageError(`--base: ${base} holds ${bases.length} checkpoints; name one`);
  const isBase = (ingredient: Ingredient): boolean => bases.some((b) => path.resolve(b.path) === path.resolve(ingredient.path));
  const models = (await discoverIngredients(inputs, options)).filter((ingredient) => !isBase(ingredient));
  const ingredients = [...bases, ...models];
  nameTogether(ingredients);
  const all = await openChecked(ingredients, options);
  return {
    base: bases.length === 0 ? undefined : all[0],
    models: all.slice(bases.length),
    all,
    locations: ingredients.map((ingredient) => ingredient.source ?? ingredient.path),
  };
}

async function openChecked(ingredients: readonly Ingredient[], options: OpenOptions): Promise<Checkpoint[]> {
  const checkpoints = await openAll(ingredients);
  try {
    await checkOnnxIngredients(checkpoints, options);
  } catch (error) {
    await closeAll(checkpoints);
    throw error;
  }
  const problems = findIncompatibilities(checkpoints);
  if (problems.length > 0) {
    await closeAll(checkpoints);
    throw new IncompatibleError(problems);
  }
  return checkpoints;
}

export function countParameters(checkpoint: Checkpoint): number {
  return checkpoint.tensors().reduce((sum, tensor) => sum + tensor.shape.reduce((a, b) => a * b, 1), 0);
}

export function countBytes(checkpoint: Checkpoint): number {
  return checkpoint.tensors().reduce((sum, tensor) => sum + tensor.storedBytes, 0);
}
