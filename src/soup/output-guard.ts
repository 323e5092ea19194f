import { lstat, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { isCompanionFile } from '../checkpoint/companions.js';
import { closeAll, discoverIngredients, openAll } from '../checkpoint/discover.js';
import { UsageError } from '../errors.js';
import { readRecipe } from '../recipe/recipe.js';

/** Files soup puts in a folder output besides the weights: the model card and mergekit's recipe. */
const FOLDER_EXTRAS = new Set(['README.md', 'mergekit_config.yml']);

/** Weights and indexes of the folder formats soup writes (model.json and its shards for TF.js). */
const isWeightsFile = (name: string): boolean => /\.(safetensors|bin|onnx)$/.test(name) || name === 'model.json' || name.endsWith('.index.json');

/** The path itself and, where it exists, what it resolves to: either spelling may name an input. */
async function spellings(file: string): Promise<string[]> {
  const absolute = path.resolve(file);
  const real = await realpath(absolute).catch(async () => {
    const parent = await realpath(path.dirname(absolute)).catch(() => undefined);
    return parent === undefined ? undefined : path.join(parent, path.basename(absolute));
  });
  return real === undefined || real === absolute ? [absolute] : [absolute, real];
}

const within = (inner: string, outer: string): boolean => inner.startsWith(outer.endsWith(path.sep) ? outer : outer + path.sep);

/**
 * Refuses, whatever the flags, an output that is, holds or sits inside one of `inputs` (ingredients
 * and their files, --base, --model, --val): writing it would replace or delete what the soup is made of.
 */
export async function refuseOutputOverInputs(out: string, inputs: readonly string[]): Promise<void> {
  const outputs = await spellings(out);
  for (const input of new Set(inputs)) {
    for (const one of await spellings(input)) {
      for (const output of outputs) {
        const why = output === one ? 'is' : within(one, output) ? 'holds' : within(output, one) ? 'is inside' : undefined;
        if (why === undefined) continue;
        const what = why === 'is' ? `an input of this soup` : `${input}, an input of this soup`;
        throw new UsageError(`${out} ${why} ${what}; soup never writes over its inputs`, { hint: 'choose another -o' });
      }
    }
  }
}

/**
 * Refuses --force on a folder that soup did not write. A folder soup wrote holds only the files soup
 * writes (weights, index, config and tokenizer, model card) and weights with a soup recipe; anything
 * else (a run folder, a home folder, a directory named like a file output) is not ours to delete.
 */
export async function refuseForeignFolder(out: string): Promise<void> {
  const info = await lstat(out).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) return;
  const entries = await readdir(out, { withFileTypes: true });
  if (entries.length === 0) return;
  const foreign = entries.filter((entry) => !entry.isFile() || !(isWeightsFile(entry.name) || isCompanionFile(entry.name) || FOLDER_EXTRAS.has(entry.name)));
  const refuse = (why: string): never => {
    throw new UsageError(`${out} is a folder that soup did not write (${why}); --force replaces only a soup's own output`, {
      hint: 'remove or rename it yourself, or choose another -o',
    });
  };
  if (foreign.length > 0) {
    const names = foreign
      .slice(0, 3)
      .map((entry) => JSON.stringify(entry.name))
      .join(', ');
    refuse(`it holds ${names}${foreign.length > 3 ? ` and ${foreign.length - 3} more` : ''}`);
  }
  if (!(await hasSoupRecipe(out))) refuse('its weights carry no soup recipe');
}

async function hasSoupRecipe(folder: string): Promise<boolean> {
  try {
    const found = await discoverIngredients([folder]);
    if (found.length !== 1) return false;
    const opened = await openAll(found);
    try {
      const found = path.resolve(opened[0]!.path);
      return (found === path.resolve(folder) || within(found, path.resolve(folder))) && readRecipe(opened[0]!) !== undefined;
    } finally {
      await closeAll(opened);
    }
  } catch {
    return false;
  }
}
