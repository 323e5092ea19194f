import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError, describeFsError, InputError } from '../errors.js';
import { refuseLinkOutside } from './files.js';
import { sha256File } from './hash.js';

/**
 * The files beside the weights that a loader reads (`from_pretrained` and the like): configuration,
 * tokenizer, processor, chat templates, and the code of `trust_remote_code` models. A soup written as a
 * folder gets them, so it loads with the same code that loaded an ingredient.
 */
const COMPANION_NAMES = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.txt',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'spiece.model',
  'sentencepiece.bpe.model',
  'source.spm',
  'target.spm',
  'chat_template.json',
  'chat_template.jinja',
  'preprocessor_config.json',
  'processor_config.json',
  'feature_extractor_config.json',
  'image_processor_config.json',
  'video_preprocessor_config.json',
  'modules.json',
  'sentence_bert_config.json',
  'config_sentence_transformers.json',
]);

/** Patterns of companion names: tiktoken vocabularies, Jinja chat templates, remote-code modules. */
const COMPANION_PATTERNS = [/\.tiktoken$/, /\.jinja$/, /^(configuration|modeling|tokenization|processing|image_processing|feature_extraction)_\w+\.py$/];

/** Weight files a model folder may hold under these names (the soup's own weights replace them). */
const FOLDER_WEIGHT_FILES = new Set(['model.safetensors', 'pytorch_model.bin', 'model.onnx']);

/** Whether a file of a model folder travels with the soup. Training state and weights stay behind. */
export function isCompanionFile(name: string): boolean {
  return COMPANION_NAMES.has(name) || COMPANION_PATTERNS.some((pattern) => pattern.test(name));
}

/**
 * The model folder an ingredient came from: the folder itself (TF.js, sharded), the folder around a
 * Hugging Face weights file (`checkpoint-500/model.safetensors`), or undefined for a loose file such as
 * `run-a.safetensors` whose folder holds other runs.
 */
export async function modelFolderOf(checkpoint: { path: string }): Promise<string | undefined> {
  const info = await stat(checkpoint.path).catch(() => undefined);
  if (info?.isDirectory()) return checkpoint.path;
  return FOLDER_WEIGHT_FILES.has(path.basename(checkpoint.path)) ? path.dirname(checkpoint.path) : undefined;
}

export interface Companions {
  /** The ingredient the files are taken from (undefined when no ingredient is a model folder). */
  from: string | undefined;
  /** File name in the output folder -> the file it is copied from, in name order. */
  files: Map<string, string>;
  /** Companion files whose content differs between ingredients, or that some ingredients lack. */
  differing: string[];
  /** What the user should know: differing files, and where they were taken from. */
  warnings: string[];
}

interface FolderIngredient {
  name: string;
  folder: string;
  /** Companion file name -> SHA-256. */
  files: Map<string, string>;
}

/**
 * Finds the companion files of the ingredients' model folders. Where they differ between ingredients
 * (another tokenizer, an edited config), the warning names them and they come from the first
 * ingredient, or from `copyFrom` (an ingredient's name) when given.
 */
export async function collectCompanions(checkpoints: readonly { name: string; path: string }[], copyFrom?: string): Promise<Companions> {
  const folders: FolderIngredient[] = [];
  for (const checkpoint of checkpoints) {
    const folder = await modelFolderOf(checkpoint);
    if (folder !== undefined) folders.push({ name: checkpoint.name, folder, files: await hashCompanions(folder) });
  }
  const source = pickSource(checkpoints, folders, copyFrom);
  if (source === undefined) return { from: undefined, files: new Map(), differing: [], warnings: [] };
  const names = [...new Set(folders.flatMap((folder) => [...folder.files.keys()]))].sort();
  const differing = names.filter((name) => new Set(folders.map((folder) => folder.files.get(name) ?? 'absent')).size > 1);
  const files = new Map([...source.files.keys()].sort().map((name) => [name, path.join(source.folder, name)]));
  const warnings: string[] = [];
  if (differing.length > 0) {
    const hint = copyFrom === undefined ? ' (--copy-from NAME picks another ingredient)' : '';
    warnings.push(
      `${differing.join(', ')} ${differing.length === 1 ? 'differs' : 'differ'} between ingredients; the soup takes ${differing.length === 1 ? 'it' : 'them'} from ${source.name}${hint}`,
    );
  }
  return { from: source.name, files, differing, warnings };
}

function pickSource(checkpoints: readonly { name: string }[], folders: FolderIngredient[], copyFrom: string | undefined): FolderIngredient | undefined {
  if (copyFrom === undefined) return folders[0];
  const folder = folders.find((candidate) => candidate.name === copyFrom);
  if (folder !== undefined) return folder;
  if (checkpoints.some((checkpoint) => checkpoint.name === copyFrom)) {
    throw new UsageError(`--copy-from: ${copyFrom} is a single file, not a model folder, so it has no config or tokenizer files to copy`);
  }
  throw new UsageError(`--copy-from: no ingredient is named "${copyFrom}" (ingredients: ${checkpoints.map((checkpoint) => checkpoint.name).join(', ')})`);
}

async function hashCompanions(folder: string): Promise<Map<string, string>> {
  const entries = await readdir(folder).catch((error: unknown) => {
    throw new InputError(folder, `cannot list folder: ${describeFsError(error)}`, { cause: error });
  });
  const files = new Map<string, string>();
  for (const name of entries.filter(isCompanionFile).sort()) {
    const file = path.join(folder, name);
    await refuseLinkOutside(folder, file);
    if ((await stat(file).catch(() => undefined))?.isFile()) files.set(name, await sha256File(file));
  }
  return files;
}

export interface ModelDescription {
  /** The Hub id the ingredients were fine-tuned from, when config.json names one. */
  baseModel?: string;
  /** The library that loads the folder (the Hub's `library_name`). */
  libraryName?: string;
}

/** A Hub model id ("bert-base-uncased", "org/model"), not a local path that means nothing elsewhere. */
const HUB_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

/**
 * What the companion files say about the model: `_name_or_path` in config.json is the model the
 * Trainer started from. A config that cannot be read describes nothing (it is copied as it is).
 */
export async function describeModel(companions: Companions): Promise<ModelDescription> {
  const described: ModelDescription = {};
  if (companions.files.has('modules.json')) described.libraryName = 'sentence-transformers';
  const configFile = companions.files.get('config.json');
  if (configFile === undefined) return described;
  let config: unknown;
  try {
    config = JSON.parse(await readFile(configFile, 'utf8'));
  } catch {
    return described;
  }
  if (typeof config !== 'object' || config === null) return described;
  const fields = config as Record<string, unknown>;
  if (described.libraryName === undefined && (typeof fields.model_type === 'string' || Array.isArray(fields.architectures)))
    described.libraryName = 'transformers';
  const base = fields._name_or_path;
  if (typeof base === 'string' && HUB_ID.test(base) && !base.includes('..')) described.baseModel = base;
  return described;
}
