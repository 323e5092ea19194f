import type { Checkpoint } from '../checkpoint/types.js';
import { TOOL_NAME, TOOL_VERSION } from '../version.js';

/** Where the recipe lives in an output's metadata (safetensors __metadata__, TF.js userDefinedMetadata). */
export const RECIPE_KEY = 'soup.recipe';

export interface RecipeIngredient {
  name: string;
  /** SHA-256 of each file of the ingredient, by path relative to the ingredient. */
  sha256: Record<string, string>;
  score?: number;
  /** The ingredient's coefficient, for methods that weight ingredients unequally. */
  weight?: number;
}

export interface Recipe {
  tool: string;
  version: string;
  strategy: string;
  ingredients: RecipeIngredient[];
  chosen: string[];
  /** Strategy-specific settings and results (metric, final score, output dtype, ...). */
  [key: string]: unknown;
}

export function makeRecipe(strategy: string, ingredients: RecipeIngredient[], chosen: string[], extra: Record<string, unknown> = {}): Recipe {
  return { tool: TOOL_NAME, version: TOOL_VERSION, strategy, ingredients, chosen, ...extra };
}

/**
 * The output's metadata: the reference ingredient's (so keys such as safetensors' "format": "pt" that
 * loaders look for survive), with our recipe replacing any recipe it carried. No timestamp, so the
 * same inputs give byte-identical outputs.
 */
export function outputMetadata(reference: Checkpoint, recipe: Recipe): Record<string, string> {
  const { [RECIPE_KEY]: _previous, ...kept } = reference.metadata;
  return { ...kept, [RECIPE_KEY]: JSON.stringify(recipe) };
}

export function readRecipe(checkpoint: Checkpoint): Recipe | undefined {
  const text = checkpoint.metadata[RECIPE_KEY];
  if (text === undefined) return undefined;
  try {
    return nonFiniteScores(JSON.parse(text) as Recipe);
  } catch {
    return undefined;
  }
}

/**
 * JSON writes a diverged run's NaN score as null: read back, it is NaN again, so `soup card` shows the
 * score the card written beside the soup showed.
 */
function nonFiniteScores(recipe: Recipe): Recipe {
  const nan = (value: unknown): unknown => (value === null ? NaN : value);
  for (const ingredient of recipe.ingredients ?? []) if ('score' in ingredient) ingredient.score = nan(ingredient.score) as number;
  if (Array.isArray(recipe.steps)) for (const step of recipe.steps as { score?: unknown }[]) if ('score' in step) step.score = nan(step.score);
  if ('score' in recipe) recipe.score = nan(recipe.score);
  return recipe;
}
