import path from 'node:path';
import { collectCompanions, describeModel, modelFolderOf, type Companions, type ModelDescription } from '../checkpoint/companions.js';
import type { FloatDType } from '../checkpoint/dtype.js';
import { checkpointHashes, hashFiles } from '../checkpoint/hash.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, OutputTensor } from '../checkpoint/types.js';
import { checkOutputDtypes, chooseOutput, isFolderOutput, type OutputTarget } from '../checkpoint/formats.js';
import { checkOutputPath, keepTies, planOutput, writeCheckpoint, type ExtraFiles, type WriteResult } from '../checkpoint/writer.js';
import { reshard } from '../checkpoint/shard-layout.js';
import { checkUnchanged } from '../checkpoint/identity.js';
import { claimOutput, type OutputClaim } from '../checkpoint/output-claim.js';
import { renderCard } from '../recipe/card.js';
import { refuseForeignFolder, refuseOutputOverInputs } from './output-guard.js';
import { makeRecipe, outputMetadata, type Recipe, type RecipeIngredient } from '../recipe/recipe.js';

export interface OutputOptions {
  out: string;
  force?: boolean;
  dtype?: FloatDType | undefined;
  /** --out-shard-size: split a model folder's weights into shards of at most this many bytes. */
  shardSize?: number | undefined;
  /** More paths the output must not be, hold or sit inside (--base, --model, --val); the checkpoints always count. */
  protect?: readonly (string | undefined)[];
}

export interface PreparedOutput {
  target: OutputTarget;
  tensors: OutputTensor[];
  /** This process's claim on the output path, held until the soup is in place. */
  claim?: OutputClaim;
  /** Set by prepareModelFiles: what travels with a folder output, and what the recipe says of the model. */
  modelFiles?: { companions: Companions; model: ModelDescription; card: boolean };
}

/**
 * Everything about the output that can be wrong, checked before the slow work starts. The first
 * checkpoint is the reference (names, order, format); ties are kept where all of them agree.
 */
export async function prepareOutput(checkpoints: readonly Checkpoint[], options: OutputOptions): Promise<PreparedOutput> {
  const reference = checkpoints[0]!;
  // A Trainer folder (checkpoint-500/model.safetensors) is the ingredient as a whole: nothing goes inside it.
  const folders = await Promise.all(checkpoints.map((checkpoint) => modelFolderOf(checkpoint)));
  const inputs = [...checkpoints.flatMap((checkpoint) => [checkpoint.path, ...checkpoint.files]), ...folders, ...(options.protect ?? [])];
  await refuseOutputOverInputs(
    options.out,
    inputs.filter((input): input is string => input !== undefined),
  );
  await checkOutputPath(options.out, options.force ?? false);
  if (options.force === true) await refuseForeignFolder(options.out);
  const chosen = chooseOutput(options.out, reference);
  const planned = planOutput(reference, options.dtype);
  const target = options.shardSize === undefined ? chosen : reshard(chosen, planned, options.shardSize);
  const tensors = keepTies(target, planned, checkpoints);
  await checkOutputDtypes(target, tensors);
  // Claimed last, so a refusal above leaves no lock; a second soup writing the same path stops here.
  return { target, tensors, claim: await claimOutput(options.out) };
}

// Commands ask whether the output can hold files beside the weights (mergekit_config.yml).
export { isFolderOutput };

export interface ModelFileOptions {
  /** The ingredient whose config and tokenizer files the output gets (default: the first). */
  copyFrom?: string | undefined;
  /** Write a README.md model card into a folder output (default true). */
  card?: boolean;
}

/**
 * Finds the files that make a folder output loadable (config, tokenizer, ...) before the slow work,
 * and what they say about the model for the recipe. Returns warnings, e.g. files that differ between
 * ingredients.
 */
export async function prepareModelFiles(checkpoints: readonly Checkpoint[], output: PreparedOutput, options: ModelFileOptions = {}): Promise<string[]> {
  const companions = await collectCompanions(checkpoints, options.copyFrom);
  output.modelFiles = { companions, model: await describeModel(companions), card: options.card ?? true };
  // Every command prints these warnings: what claiming the output cleaned up after killed runs goes with them.
  return [...(output.claim?.notices ?? []), ...(isFolderOutput(output.target) ? companions.warnings : [])];
}

export interface SoupRecord {
  strategy: string;
  /** Names of the ingredients in the soup. */
  chosen: string[];
  /** Per-ingredient scores, in ingredient order (greedy). */
  scores?: readonly number[];
  /** More recipe fields: metric, final score, steps, output dtype. */
  extra?: Record<string, unknown>;
  /** The arguments that made the soup (after `soup`), so the model card can show how to make it again. */
  command?: readonly string[];
}

/** What a strategy made: the soup's tensors, what its recipe records, and the --json document of the run. */
export interface SoupOutcome<Document> {
  producer: TensorProducer;
  record: SoupRecord;
  /** Everything the command reports, less what writing adds (the output path, its size, the time). */
  document: Document;
  /** Releases what the producer holds (a helper thread), once the soup is written or has failed. */
  close?(): void | Promise<void>;
}

/** Writes what a strategy made into the prepared output, then lets it release what it holds. */
export async function writeOutcome(
  checkpoints: readonly Checkpoint[],
  output: PreparedOutput,
  outcome: SoupOutcome<unknown>,
  signal?: AbortSignal,
  moreFiles?: ReadonlyMap<string, Uint8Array>,
): Promise<WriteResult> {
  try {
    return await writeSoup(checkpoints, output, outcome.producer, outcome.record, signal, moreFiles);
  } finally {
    await outcome.close?.();
  }
}

/**
 * Streams the soup from `produce` into the output with its recipe. The ingredients are hashed in a
 * worker thread meanwhile (or taken from the hash cache); the header is written with placeholder
 * hashes of the same length and patched once they are known.
 */
export async function writeSoup(
  checkpoints: readonly Checkpoint[],
  output: PreparedOutput,
  produce: TensorProducer,
  record: SoupRecord,
  signal?: AbortSignal,
  /** Files a folder output holds beside the weights, companions and card (e.g. mergekit_config.yml). */
  moreFiles: ReadonlyMap<string, Uint8Array> = new Map(),
): Promise<WriteResult> {
  const stopHashing = new AbortController();
  const onAbort = (): void => stopHashing.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const hashing = hashFiles(
    checkpoints.flatMap((checkpoint) => checkpoint.files),
    stopHashing.signal,
  );
  hashing.catch(() => {});
  const recipeWith = (hashes: ReadonlyMap<string, string>): Recipe => {
    const ingredients = checkpoints.map((checkpoint, k): RecipeIngredient => {
      const entry: RecipeIngredient = { name: checkpoint.name, sha256: checkpointHashes(checkpoint, hashes) };
      const score = record.scores?.[k];
      if (score !== undefined) entry.score = score;
      return entry;
    });
    return makeRecipe(record.strategy, ingredients, record.chosen, { ...record.extra, ...modelFields(output, record) });
  };
  const recipe = (hashes: ReadonlyMap<string, string>): Record<string, string> => outputMetadata(checkpoints[0]!, recipeWith(hashes));
  const unknown = new Map(checkpoints.flatMap((checkpoint) => checkpoint.files).map((file) => [file, '0'.repeat(64)]));
  const extraFiles = new Map([...folderFiles(output, async () => recipeWith(await hashing)), ...moreFiles]);
  try {
    return await writeCheckpoint(
      output.target,
      output.tensors,
      { placeholder: recipe(unknown), resolve: async () => recipe(await hashing) },
      produce,
      extraFiles,
      {
        claim: output.claim,
        // The bytes mixed and the hashes recorded must both come from the files as they were opened.
        beforePublish: () => checkUnchanged(checkpoints),
      },
    );
  } catch (error) {
    stopHashing.abort(error);
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await output.claim?.release();
  }
}

/** What a folder output holds beside the weights, for the summary: "config.json, vocab.txt (from checkpoint-500), README.md". */
export function describeModelFiles(output: PreparedOutput): string | undefined {
  const files = output.modelFiles;
  if (files === undefined || !isFolderOutput(output.target)) return undefined;
  const parts: string[] = [];
  if (files.companions.files.size > 0) parts.push(`${[...files.companions.files.keys()].join(', ')} (from ${files.companions.from})`);
  if (files.card) parts.push('README.md (model card)');
  return parts.length === 0 ? undefined : parts.join(', ');
}

/** Recipe fields about the model and the command line, for the model card. */
function modelFields(output: PreparedOutput, record: SoupRecord): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const files = output.modelFiles;
  if (files?.model.baseModel !== undefined) fields.baseModel = files.model.baseModel;
  if (files?.model.libraryName !== undefined) fields.libraryName = files.model.libraryName;
  if (files?.companions.from !== undefined && files.companions.files.size > 0 && isFolderOutput(output.target)) fields.filesFrom = files.companions.from;
  if (record.command !== undefined) fields.command = [...record.command];
  return fields;
}

/** A folder output's companion files and model card (rendered from the final recipe, hashes included). */
function folderFiles(output: PreparedOutput, finalRecipe: () => Promise<Recipe>): ExtraFiles {
  const files = output.modelFiles;
  if (files === undefined || !isFolderOutput(output.target)) return new Map();
  const extra = new Map<string, string | (() => Promise<Uint8Array>)>(files.companions.files);
  if (files.card)
    extra.set('README.md', async () =>
      new TextEncoder().encode(renderCard(await finalRecipe(), path.basename(path.resolve(output.target.path)), output.target.path)),
    );
  return extra;
}
