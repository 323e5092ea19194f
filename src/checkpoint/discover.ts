import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError, UsageError, describeFsError } from '../errors.js';
import { SafetensorsFile } from './safetensors.js';
import { SHARD_INDEX, ShardedSafetensors } from './sharded.js';
import { MODEL_JSON, TfjsCheckpoint } from './tfjs.js';
import { compareNatural } from '../natural-order.js';
import { ONNX_SUFFIX, OnnxCheckpoint } from './onnx/reader.js';
import { PytorchFile } from './pytorch/reader.js';
import { PYTORCH_SHARD_INDEX, ShardedPytorch } from './pytorch/sharded.js';
import type { Checkpoint, CheckpointFormat } from './types.js';
import { uniqueNames } from './names.js';
import { checkpointFolderNames, chooseFromRun, isCheckpointFolderName, isTrainingStateFile, refuseTrainingState, type CheckpointChoice, type TrainerRun } from './trainer-layout.js';
import { applyAdapter, resolveReference } from './lora.js';
import { rememberFiles } from './identity.js';

export interface Ingredient {
  name: string;
  path: string;
  format: CheckpointFormat;
  /** For PyTorch checkpoints: the top-level entry holding the state dict (--key). */
  key?: string;
  /** The file or folder the name stands for (a model folder, not its model.safetensors). */
  source?: string;
  /** A PEFT LoRA adapter folder applied on read (`base+adapter`). */
  adapter?: string;
}

export interface DiscoverOptions {
  /** For PyTorch checkpoints: the top-level entry holding the state dict (--key). */
  key?: string | undefined;
  /** Told what the user should know about the choice made (library code does not print). */
  onWarning?: (message: string) => void;
  /** Trainer runs (folders holding checkpoint-N folders): which of their weights are ingredients. */
  checkpoints?: CheckpointChoice | undefined;
  /** Files that are never ingredients, though found in a folder being souped (the --model export). */
  exclude?: readonly string[] | undefined;
}

/** A Hugging Face model folder holds its single-file weights under this name. */
const HF_SINGLE_FILE = 'model.safetensors';
/** ... and its PyTorch weights under this one. */
const HF_PYTORCH_FILE = 'pytorch_model.bin';
const PYTORCH_EXTENSIONS = ['.pt', '.pth', '.bin', '.ckpt'];

function pytorchFile(file: string): Ingredient | undefined {
  const extension = path.extname(file);
  if (!PYTORCH_EXTENSIONS.includes(extension) || isTrainingStateFile(path.basename(file))) return undefined;
  return { name: path.basename(file, extension), path: file, format: 'pytorch' };
}

/** What a path is, if it is a checkpoint by itself; undefined for a plain folder. */
async function checkpointAt(target: string, onWarning: (message: string) => void): Promise<Ingredient | undefined> {
  const info = await stat(target).catch((error: unknown) => {
    throw new InputError(target, describeFsError(error), { cause: error });
  });
  if (info.isFile()) {
    const base = path.basename(target);
    if (base.endsWith('.safetensors')) return { name: base.slice(0, -'.safetensors'.length), path: target, format: 'safetensors' };
    if (base.endsWith(ONNX_SUFFIX)) return { name: base.slice(0, -ONNX_SUFFIX.length), path: target, format: 'onnx' };
    const folder = path.dirname(target);
    const name = path.basename(path.resolve(folder));
    if (base === MODEL_JSON) return { name, path: folder, format: 'tfjs' };
    if (base === SHARD_INDEX) return { name, path: folder, format: 'safetensors-sharded' };
    if (base === PYTORCH_SHARD_INDEX) return { name, path: folder, format: 'pytorch-sharded' };
    const pytorch = pytorchFile(target);
    if (pytorch !== undefined) return pytorch;
    if (isTrainingStateFile(base)) refuseTrainingState(target);
    throw new InputError(target, 'not a checkpoint (expected a .safetensors, .onnx, .pt, .pth, .bin or .ckpt file, model.json or a shard index)');
  }
  if (!info.isDirectory()) throw new InputError(target, 'not a file or folder');
  const entries = await listFolder(target);
  const name = path.basename(path.resolve(target));
  if (entries.has(MODEL_JSON)) return { name, path: target, format: 'tfjs' };
  const torch = entries.has(PYTORCH_SHARD_INDEX) ? PYTORCH_SHARD_INDEX : entries.has(HF_PYTORCH_FILE) ? HF_PYTORCH_FILE : undefined;
  const safetensors = entries.has(SHARD_INDEX) ? SHARD_INDEX : entries.has(HF_SINGLE_FILE) ? HF_SINGLE_FILE : undefined;
  if (safetensors !== undefined && torch !== undefined) {
    onWarning(`${target} holds both safetensors and PyTorch weights: using ${safetensors}, ignoring ${torch}`);
  }
  if (safetensors === SHARD_INDEX) return { name, path: target, format: 'safetensors-sharded' };
  if (safetensors === HF_SINGLE_FILE) return { name, path: path.join(target, HF_SINGLE_FILE), format: 'safetensors', source: target };
  if (torch === PYTORCH_SHARD_INDEX) return { name, path: target, format: 'pytorch-sharded' };
  if (torch === HF_PYTORCH_FILE) return { name, path: path.join(target, HF_PYTORCH_FILE), format: 'pytorch', source: target };
  return undefined;
}

async function listFolder(folder: string): Promise<Set<string>> {
  const names = await readdir(folder).catch((error: unknown) => {
    throw new InputError(folder, `cannot list folder: ${describeFsError(error)}`, { cause: error });
  });
  return new Set(names);
}

/**
 * Turns what the user typed (checkpoint files, checkpoint folders, folders of checkpoints, Trainer runs
 * and sweeps of runs) into ingredients named by their shortest unique path suffix, in natural name
 * order (checkpoint-500 before checkpoint-1000), so every run processes them in the same order.
 */
export async function discoverIngredients(inputs: readonly string[], options: DiscoverOptions = {}): Promise<Ingredient[]> {
  if (inputs.length === 0) throw new UsageError('no checkpoints given');
  const onWarning = options.onWarning ?? ((): void => {});
  const excluded = new Set((options.exclude ?? []).map((file) => path.resolve(file)));
  const found: Ingredient[] = [];
  for (const typed of inputs) {
    const { input, ...reference } = await resolveReference(typed);
    if (excluded.has(path.resolve(input))) throw new UsageError(`${input} is the --model export, so it cannot also be an ingredient`);
    const run = await trainerRun(input, onWarning);
    if (run !== undefined) {
      found.push(...(await pickFromRun(run, options.checkpoints, onWarning)));
      continue;
    }
    const direct = await checkpointAt(input, onWarning);
    if (direct !== undefined) {
      found.push({ ...direct, ...reference });
      continue;
    }
    found.push(...(await checkpointsInside(input, excluded, options.checkpoints, onWarning)));
  }
  if (options.key !== undefined) for (const ingredient of found) if (ingredient.format.startsWith('pytorch')) ingredient.key = options.key;
  nameUniquely(found);
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

/**
 * Names ingredients found by separate discoveries (a merge's base and its models) as one set, so
 * names are unique and lengthened alike across all of them.
 */
export function nameTogether(ingredients: Ingredient[]): void {
  for (const ingredient of ingredients) {
    const source = ingredient.source ?? ingredient.path;
    const file = ingredient.source === undefined && ['safetensors', 'pytorch', 'onnx'].includes(ingredient.format);
    ingredient.name = file ? path.basename(source, ingredient.format === 'onnx' ? ONNX_SUFFIX : path.extname(source)) : path.basename(path.resolve(source));
  }
  nameUniquely(ingredients);
}

/** Lengthens names by parent folders where two ingredients would share one (`run-a/checkpoint-500`). */
function nameUniquely(ingredients: Ingredient[]): void {
  const sources = ingredients.map((ingredient) => ingredient.source ?? ingredient.path);
  // checkpoint-30 alone does not say which run it is from, once checkpoints of several runs are souped.
  const runs = new Set(sources.filter((_, k) => isCheckpointFolderName(ingredients[k]!.name)).map((source) => path.dirname(path.resolve(source))));
  const qualify = (ingredient: Ingredient): number => (runs.size > 1 && isCheckpointFolderName(ingredient.name) ? 1 : 0);
  const names = uniqueNames(ingredients.map((ingredient, k) => ({ name: ingredient.name, source: sources[k]!, minDepth: qualify(ingredient) })));
  ingredients.forEach((ingredient, k) => (ingredient.name = names[k]!));
}

/** The checkpoints of a folder that is not one: files and model folders in it, and the runs of a sweep. */
async function checkpointsInside(
  input: string,
  excluded: ReadonlySet<string>,
  choice: CheckpointChoice | undefined,
  onWarning: (message: string) => void,
): Promise<Ingredient[]> {
  const inside: Ingredient[] = [];
  const runs: TrainerRun<Ingredient>[] = [];
  let trainingState = 0;
  const exports: string[] = [];
  for (const entry of [...(await listFolder(input))].sort(compareNatural)) {
    if (entry.startsWith('.')) continue;
    const child = path.join(input, entry);
    if (excluded.has(path.resolve(child))) continue;
    const info = await stat(child).catch(() => undefined);
    if (info?.isFile() && entry.endsWith('.safetensors')) {
      inside.push({ name: entry.slice(0, -'.safetensors'.length), path: child, format: 'safetensors' });
    } else if (info?.isFile() && entry.endsWith(ONNX_SUFFIX)) {
      inside.push({ name: entry.slice(0, -ONNX_SUFFIX.length), path: child, format: 'onnx' });
      exports.push(entry);
    } else if (info?.isFile() && pytorchFile(child) !== undefined) {
      inside.push(pytorchFile(child)!);
    } else if (info?.isFile() && isTrainingStateFile(entry)) {
      trainingState++;
    } else if (info?.isDirectory()) {
      const run = await trainerRun(child, onWarning);
      if (run !== undefined) {
        runs.push(run);
        inside.push(...(await pickFromRun(run, choice, onWarning)));
        continue;
      }
      const nested = await checkpointAt(child, onWarning);
      if (nested !== undefined) inside.push(nested);
    }
  }
  if (inside.length === 0) {
    throw new InputError(
      input,
      trainingState > 0
        ? 'holds training state (optimizer, scheduler, RNG state, training arguments) but no model weights (model.safetensors, pytorch_model.bin, ...)'
        : 'no checkpoints found (expected .safetensors, .onnx, .pt, .pth, .bin or .ckpt files, or folders holding model.json, model.safetensors, pytorch_model.bin or a shard index, or Trainer runs of checkpoint-N folders)',
    );
  }
  // An ONNX export saved beside a sweep's runs is most likely one of them again, for --model.
  if (runs.length > 0 && exports.length > 0) {
    onWarning(`${input}: ${exports.join(', ')} beside the runs ${exports.length === 1 ? 'is' : 'are'} souped with them (an export to score with? pass it as --model, which leaves it out, or pass the runs alone)`);
  }
  const several = runs.filter((run) => run.final === undefined && run.checkpoints.length > 1);
  if (choice === undefined && several.length > 0) {
    const count = several.reduce((sum, run) => sum + run.checkpoints.length, 0);
    onWarning(`${input}: every checkpoint of ${several.length === 1 ? 'run' : 'runs'} ${several.map((run) => path.basename(run.folder)).join(', ')} is an ingredient (${count} in all; --checkpoints last or best takes one per run)`);
  }
  return inside;
}

/** A folder holding checkpoint-N model folders (a Trainer's output_dir), with its final weights if any. */
async function trainerRun(folder: string, onWarning: (message: string) => void): Promise<TrainerRun<Ingredient> | undefined> {
  const info = await stat(folder).catch(() => undefined);
  if (!info?.isDirectory()) return undefined;
  const checkpoints: TrainerRun<Ingredient>['checkpoints'] = [];
  for (const entry of checkpointFolderNames(await listFolder(folder))) {
    const child = path.join(folder, entry);
    if (!(await stat(child).catch(() => undefined))?.isDirectory()) continue;
    const ingredient = await checkpointAt(child, onWarning);
    if (ingredient !== undefined) checkpoints.push({ folder: child, ingredient });
  }
  if (checkpoints.length === 0) return undefined;
  return { folder, final: await checkpointAt(folder, onWarning), checkpoints };
}

async function pickFromRun(run: TrainerRun<Ingredient>, choice: CheckpointChoice | undefined, onWarning: (message: string) => void): Promise<Ingredient[]> {
  const picked = await chooseFromRun(run, choice);
  if (picked.warning !== undefined) onWarning(picked.warning);
  return picked.chosen;
}

export async function openCheckpoint(ingredient: Ingredient): Promise<Checkpoint> {
  return applyAdapter(await openFormat(ingredient), ingredient.adapter);
}

async function openFormat(ingredient: Ingredient): Promise<Checkpoint> {
  switch (ingredient.format) {
    case 'safetensors':
      return SafetensorsFile.open(ingredient.path, ingredient.name);
    case 'safetensors-sharded':
      return ShardedSafetensors.open(ingredient.path, ingredient.name);
    case 'tfjs':
      return TfjsCheckpoint.open(ingredient.path, ingredient.name);
    case 'onnx':
      return OnnxCheckpoint.open(ingredient.path, ingredient.name);
    case 'pytorch':
      return PytorchFile.open(ingredient.path, ingredient.name, { key: ingredient.key });
    case 'pytorch-sharded':
      return ShardedPytorch.open(ingredient.path, ingredient.name, { key: ingredient.key });
  }
}

/** Opens every ingredient (headers only); closes what was opened if one of them is malformed. */
export async function openAll(ingredients: readonly Ingredient[]): Promise<Checkpoint[]> {
  const opened: Checkpoint[] = [];
  try {
    for (const ingredient of ingredients) opened.push(await openCheckpoint(ingredient));
    await rememberFiles(opened);
    return opened;
  } catch (error) {
    await closeAll(opened);
    throw error;
  }
}

export async function closeAll(checkpoints: readonly Checkpoint[]): Promise<void> {
  await Promise.allSettled(checkpoints.map((checkpoint) => checkpoint.close()));
}
