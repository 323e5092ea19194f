import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError, UsageError, describeFsError } from '../errors.js';
import { compareNatural } from '../natural-order.js';
import { describeFolderFiles, describeSuffixes, detectFile, detectFolder, folderFileNamed, formatNamed } from './formats.js';
import type { Checkpoint, CheckpointFormat } from './types.js';
import { uniqueNames } from './names.js';
import {
  checkpointFolderNames,
  chooseFromRun,
  isCheckpointFolderName,
  isTrainingStateFile,
  refuseTrainingState,
  type CheckpointChoice,
  type TrainerRun,
} from './trainer-layout.js';
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

/** A loose checkpoint file, by the suffixes the formats list. */
function looseFile(file: string): Ingredient | undefined {
  const found = detectFile(file);
  return found === undefined ? undefined : { name: found.name, path: file, format: found.format.name };
}

/** What a path is, if it is a checkpoint by itself; undefined for a plain folder. */
async function checkpointAt(target: string, onWarning: (message: string) => void): Promise<Ingredient | undefined> {
  const info = await stat(target).catch((error: unknown) => {
    throw new InputError(target, describeFsError(error), { cause: error });
  });
  if (info.isFile()) {
    const base = path.basename(target);
    const loose = looseFile(target);
    if (loose !== undefined) return loose;
    // model.json or a shard index stands for the folder holding it.
    const standing = folderFileNamed(base);
    if (standing !== undefined) return { name: path.basename(path.resolve(path.dirname(target))), path: path.dirname(target), format: standing.format };
    if (isTrainingStateFile(base)) refuseTrainingState(target);
    throw new InputError(target, `not a checkpoint (expected a ${describeSuffixes()} file, ${describeFolderFiles(true)})`);
  }
  if (!info.isDirectory()) throw new InputError(target, 'not a file or folder');
  const entries = await listFolder(target);
  const name = path.basename(path.resolve(target));
  const [chosen, ignored] = detectFolder(entries);
  if (chosen === undefined) return undefined;
  if (ignored !== undefined) {
    onWarning(`${target} holds both ${chosen.format.title} and ${ignored.format.title} weights: using ${chosen.file.name}, ignoring ${ignored.file.name}`);
  }
  if (chosen.file.opens === 'folder') return { name, path: target, format: chosen.file.format };
  return { name, path: path.join(target, chosen.file.name), format: chosen.file.format, source: target };
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
    const file = ingredient.source === undefined ? detectFile(source) : undefined;
    ingredient.name = file !== undefined && file.format.name === ingredient.format ? file.name : path.basename(path.resolve(source));
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
    const loose = info?.isFile() === true ? looseFile(child) : undefined;
    if (loose !== undefined) {
      inside.push(loose);
      if (loose.format === 'onnx') exports.push(entry);
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
        : `no checkpoints found (expected ${describeSuffixes()} files, or folders holding ${describeFolderFiles(false)}, or Trainer runs of checkpoint-N folders)`,
    );
  }
  // An ONNX export saved beside a sweep's runs is most likely one of them again, for --model.
  if (runs.length > 0 && exports.length > 0) {
    onWarning(
      `${input}: ${exports.join(', ')} beside the runs ${exports.length === 1 ? 'is' : 'are'} souped with them (an export to score with? pass it as --model, which leaves it out, or pass the runs alone)`,
    );
  }
  const several = runs.filter((run) => run.final === undefined && run.checkpoints.length > 1);
  if (choice === undefined && several.length > 0) {
    const count = several.reduce((sum, run) => sum + run.checkpoints.length, 0);
    onWarning(
      `${input}: every checkpoint of ${several.length === 1 ? 'run' : 'runs'} ${several.map((run) => path.basename(run.folder)).join(', ')} is an ingredient (${count} in all; --checkpoints last or best takes one per run)`,
    );
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
  return formatNamed(ingredient.format).open(ingredient.path, ingredient.name, ingredient.format, { key: ingredient.key });
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
