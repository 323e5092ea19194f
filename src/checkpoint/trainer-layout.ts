/**
 * The Hugging Face Trainer's output layout: a run folder holds `checkpoint-N/` folders (each a model
 * folder plus training state) and, once `save_model()` ran, the final weights beside them. Which of
 * them become ingredients is the user's choice (--checkpoints); training state never does.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError, UsageError } from '../errors.js';
import { compareNatural } from '../natural-order.js';

export const CHECKPOINT_CHOICES = ['final', 'last', 'best', 'all'] as const;
/** final: a run's final weights; last: its highest checkpoint-N; best: trainer_state.json's best_model_checkpoint; all: every checkpoint-N. */
export type CheckpointChoice = (typeof CHECKPOINT_CHOICES)[number];

/** What the Trainer calls the folders it saves every save_steps. */
const CHECKPOINT_FOLDER = /^checkpoint-\d+$/;

export function isCheckpointFolderName(name: string): boolean {
  return CHECKPOINT_FOLDER.test(name);
}

/**
 * Files the Trainer (and Accelerate, DeepSpeed, Lightning-style loops) save beside the weights to
 * resume training: optimizer and scheduler state, RNG states, the pickled TrainingArguments. They have
 * PyTorch suffixes but are not models.
 */
const TRAINING_STATE = /^(optimizer|scheduler|scaler|rng_state(_\d+)?|training_args|trainer_state|lr_scheduler|random_states(_\d+)?)\.(pt|pth|bin|pkl|json)$/;

export function isTrainingStateFile(name: string): boolean {
  return TRAINING_STATE.test(name);
}

export function refuseTrainingState(file: string): never {
  throw new InputError(file, 'is training state saved beside the weights (to resume training), not model weights', {
    hint: 'pass the checkpoint folder (it holds model.safetensors or pytorch_model.bin), or the weights file itself',
  });
}

/** A run: its final weights (if saved) and its checkpoint-N folders, in natural order. */
export interface TrainerRun<T> {
  folder: string;
  final: T | undefined;
  checkpoints: { folder: string; ingredient: T }[];
}

export interface RunChoice<T> {
  chosen: T[];
  /** What the user should know about a choice made for them. */
  warning?: string;
}

/**
 * The ingredients a run gives. Without --checkpoints: the final weights where there are some (saying
 * so, as the checkpoints are left out), else every checkpoint, as for any folder of checkpoints.
 */
export async function chooseFromRun<T>(run: TrainerRun<T>, choice: CheckpointChoice | undefined): Promise<RunChoice<T>> {
  const names = run.checkpoints.map((checkpoint) => path.basename(checkpoint.folder));
  const last = run.checkpoints.at(-1)!;
  switch (choice) {
    case undefined:
      if (run.final === undefined) return { chosen: run.checkpoints.map((checkpoint) => checkpoint.ingredient) };
      return {
        chosen: [run.final],
        warning: `${run.folder} holds final weights and ${names.join(', ')}: using the final weights (--checkpoints last, best or all picks checkpoints instead)`,
      };
    case 'final':
      if (run.final === undefined) {
        throw new UsageError(`${run.folder} has no final weights (model.safetensors or pytorch_model.bin), only ${names.join(', ')}`, {
          hint: 'pick checkpoints with --checkpoints last, best or all',
        });
      }
      return { chosen: [run.final] };
    case 'last':
      return { chosen: [last.ingredient] };
    case 'all':
      return { chosen: run.checkpoints.map((checkpoint) => checkpoint.ingredient) };
    case 'best': {
      const best = await bestCheckpointName(run.folder, last.folder);
      const found = run.checkpoints.find((checkpoint) => path.basename(checkpoint.folder) === best.name);
      if (found === undefined)
        throw new InputError(best.file, `best_model_checkpoint is ${best.name}, which ${run.folder} no longer holds (it has ${names.join(', ')})`);
      return { chosen: [found.ingredient] };
    }
  }
}

/**
 * trainer_state.json's best_model_checkpoint, from the run's own file (written at the end) or else its
 * last checkpoint's. Read by key alone: the Trainer writes NaN losses as bare NaN, which is not JSON.
 */
async function bestCheckpointName(runFolder: string, lastCheckpoint: string): Promise<{ name: string; file: string }> {
  const candidates = [path.join(runFolder, 'trainer_state.json'), path.join(lastCheckpoint, 'trainer_state.json')];
  for (const file of candidates) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const match = /"best_model_checkpoint"\s*:\s*("(?:[^"\\]|\\.)*"|null)/.exec(text);
    const value: unknown = match === null ? null : JSON.parse(match[1]!);
    if (typeof value !== 'string' || value === '') {
      throw new InputError(file, 'names no best_model_checkpoint', {
        hint: 'the Trainer records one when it evaluates at each save (metric_for_best_model); pick with --checkpoints last or all instead',
      });
    }
    // The path is the one the run was saved under (often elsewhere, or relative): its last part names the folder.
    return {
      name: value
        .split(/[\\/]/)
        .filter((part) => part !== '')
        .at(-1)!,
      file,
    };
  }
  throw new InputError(runFolder, 'has no trainer_state.json (nor has its last checkpoint), so the best checkpoint is not known', {
    hint: 'pick with --checkpoints last or all instead',
  });
}

/** The checkpoint-N folder names among a folder's entries, in natural order. */
export function checkpointFolderNames(entries: Iterable<string>): string[] {
  return [...entries].filter(isCheckpointFolderName).sort(compareNatural);
}
