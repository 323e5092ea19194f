import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError, UsageError, describeFsError } from '../errors.js';
import { SafetensorsFile } from './safetensors.js';
import { SHARD_INDEX, ShardedSafetensors } from './sharded.js';
import { MODEL_JSON, TfjsCheckpoint } from './tfjs.js';
import { compareNatural } from '../natural-order.js';
import type { Checkpoint, CheckpointFormat } from './types.js';

export interface Ingredient {
  name: string;
  path: string;
  format: CheckpointFormat;
}

/** A Hugging Face model folder holds its single-file weights under this name. */
const HF_SINGLE_FILE = 'model.safetensors';

/** What a path is, if it is a checkpoint by itself; undefined for a plain folder. */
async function checkpointAt(target: string): Promise<Ingredient | undefined> {
  const info = await stat(target).catch((error: unknown) => {
    throw new InputError(target, describeFsError(error), { cause: error });
  });
  if (info.isFile()) {
    const base = path.basename(target);
    if (base.endsWith('.safetensors')) return { name: base.slice(0, -'.safetensors'.length), path: target, format: 'safetensors' };
    const folder = path.dirname(target);
    const name = path.basename(path.resolve(folder));
    if (base === MODEL_JSON) return { name, path: folder, format: 'tfjs' };
    if (base === SHARD_INDEX) return { name, path: folder, format: 'safetensors-sharded' };
    throw new InputError(target, 'not a checkpoint (expected a .safetensors file, model.json or model.safetensors.index.json)');
  }
  if (!info.isDirectory()) throw new InputError(target, 'not a file or folder');
  const entries = await listFolder(target);
  const name = path.basename(path.resolve(target));
  if (entries.has(MODEL_JSON)) return { name, path: target, format: 'tfjs' };
  if (entries.has(SHARD_INDEX)) return { name, path: target, format: 'safetensors-sharded' };
  if (entries.has(HF_SINGLE_FILE)) return { name, path: path.join(target, HF_SINGLE_FILE), format: 'safetensors' };
  return undefined;
}

async function listFolder(folder: string): Promise<Set<string>> {
  const names = await readdir(folder).catch((error: unknown) => {
    throw new InputError(folder, `cannot list folder: ${describeFsError(error)}`, { cause: error });
  });
  return new Set(names);
}

/**
 * Turns what the user typed (checkpoint files, checkpoint folders, folders of checkpoints) into
 * ingredients in natural name order (checkpoint-500 before checkpoint-1000), so every run processes
 * them in the same order.
 */
export async function discoverIngredients(inputs: readonly string[]): Promise<Ingredient[]> {
  if (inputs.length === 0) throw new UsageError('no checkpoints given');
  const found: Ingredient[] = [];
  for (const input of inputs) {
    const direct = await checkpointAt(input);
    if (direct !== undefined) {
      found.push(direct);
      continue;
    }
    const inside: Ingredient[] = [];
    for (const entry of [...(await listFolder(input))].sort(compareNatural)) {
      if (entry.startsWith('.')) continue;
      const child = path.join(input, entry);
      const info = await stat(child).catch(() => undefined);
      if (info?.isFile() && entry.endsWith('.safetensors')) {
        inside.push({ name: entry.slice(0, -'.safetensors'.length), path: child, format: 'safetensors' });
      } else if (info?.isDirectory()) {
        const nested = await checkpointAt(child);
        if (nested !== undefined) inside.push(nested);
      }
    }
    if (inside.length === 0) {
      throw new InputError(
        input,
        'no checkpoints found (expected .safetensors files, or folders holding model.json, model.safetensors or model.safetensors.index.json)',
      );
    }
    found.push(...inside);
  }
  found.sort((a, b) => compareNatural(a.name, b.name));
  for (let i = 1; i < found.length; i++) {
    const [previous, current] = [found[i - 1]!, found[i]!];
    if (previous.name === current.name) {
      if (path.resolve(previous.path) === path.resolve(current.path)) {
        throw new UsageError(`${current.path} is given twice`);
      }
      throw new UsageError(`two ingredients are named "${current.name}": ${previous.path} and ${current.path}`, {
        hint: 'rename one of them, as names identify ingredients in reports and metadata',
      });
    }
  }
  return found;
}

export async function openCheckpoint(ingredient: Ingredient): Promise<Checkpoint> {
  switch (ingredient.format) {
    case 'safetensors':
      return SafetensorsFile.open(ingredient.path, ingredient.name);
    case 'safetensors-sharded':
      return ShardedSafetensors.open(ingredient.path, ingredient.name);
    case 'tfjs':
      return TfjsCheckpoint.open(ingredient.path, ingredient.name);
    case 'pytorch':
    case 'pytorch-sharded':
    case 'onnx':
      throw new InputError(ingredient.path, `${ingredient.format} checkpoints cannot be read yet`);
  }
}

/** Opens every ingredient (headers only); closes what was opened if one of them is malformed. */
export async function openAll(ingredients: readonly Ingredient[]): Promise<Checkpoint[]> {
  const opened: Checkpoint[] = [];
  try {
    for (const ingredient of ingredients) opened.push(await openCheckpoint(ingredient));
    return opened;
  } catch (error) {
    await closeAll(opened);
    throw error;
  }
}

export async function closeAll(checkpoints: readonly Checkpoint[]): Promise<void> {
  await Promise.allSettled(checkpoints.map((checkpoint) => checkpoint.close()));
}
