/**
 * THE list of checkpoint formats: how discovery recognises each, how it is opened, and (for those soup
 * can write) which `-o` suffixes and folder layouts make an output of it, which dtypes it stores and
 * how it is written. Discovery, output choice and `-o` checking all read this list, so a new format
 * is one module plus one entry here.
 *
 * Writers are loaded only when something is written (dynamic imports), so commands that only read
 * (inspect, diff) load no writer.
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { OutputError, UsageError, describeFsError } from '../errors.js';
import type { DType } from './dtype.js';
import type { TensorProducer } from './safetensors.js';
import { SafetensorsFile } from './safetensors.js';
import { SHARD_INDEX, ShardedSafetensors } from './sharded.js';
import { MODEL_JSON, TfjsCheckpoint, writeTfjs } from './tfjs.js';
import { ONNX_SUFFIX, OnnxCheckpoint } from './onnx/reader.js';
import { PytorchFile } from './pytorch/reader.js';
import { PYTORCH_SHARD_INDEX, ShardedPytorch } from './pytorch/sharded.js';
import { isTrainingStateFile } from './trainer-layout.js';
import type { Checkpoint, MetadataSource, OutputTensor } from './types.js';

/** A file inside a folder that makes the folder a checkpoint of a format. */
export interface FolderFile {
  name: string;
  /** The format the checkpoint has (a format's sharded folders carry their own name). */
  format: string;
  /** 'folder': the folder is the checkpoint (model.json, a shard index); 'file': this file is, named after the folder (model.safetensors). */
  opens: 'folder' | 'file';
  /** A shard index (messages call these "a shard index"). */
  index?: boolean;
}

export interface Detect {
  /** Loose files with one of these suffixes are checkpoints of this format, named without it. */
  suffixes?: readonly string[];
  /** Files with such a suffix that are not weights (a Trainer's optimizer.pt). */
  ignores?(fileName: string): boolean;
  /** Files that make the folder holding them a checkpoint, in order of preference. */
  folderFiles?: readonly FolderFile[];
}

export interface OpenOptions {
  /** For PyTorch checkpoints: the top-level entry holding the state dict (--key). */
  key?: string | undefined;
}

/**
 * Where and how an output is written; summaries and --json show `kind`: the format's name for its
 * own single output (`safetensors`, `pytorch`, `onnx` files, a `tfjs` folder), `NAME-folder` for a
 * model folder holding one weights file, `NAME-sharded` for a sharded model folder.
 */
export interface OutputTarget {
  kind: string;
  path: string;
  /** A sharded folder's shard file for each tensor. */
  layout?: Map<string, string>;
  /** The ingredient a format written whole rewrites (its TF.js model.json, its ONNX graph). */
  reference?: Checkpoint;
  /** For formats with a sidecar: tensors over this many bytes go to it (tests use small values). */
  externalAbove?: number;
}

export interface WriteJob {
  target: OutputTarget;
  tensors: readonly OutputTensor[];
  metadata: MetadataSource;
  produce: TensorProducer;
  /** The sidecar's file name beside the final output, for formats with one. */
  sidecarName?: string | undefined;
}

export interface OutputFormat {
  /** `-o` suffixes that make the output one file of this format (the first is the usual one). */
  suffixes: readonly string[];
  /**
   * What this format's own single output is: a file, or a folder `write` fills itself (TF.js).
   * Written whole, the output may need `reference` (the graph or model.json it rewrites).
   */
  single: 'file' | 'folder';
  /** The model-folder layout: the weights file of a folder, and the index of a sharded one (shards are named `STEM-00001-of-00003.EXT`). */
  folder?: { file: string; index: string };
  /** Whether `reference` is one of this format's own ingredients: a suffixless -o then writes this format. */
  owns(reference: Checkpoint): boolean;
  /** Written from its own ingredients only (the graph or model.json comes from the reference). */
  ownOnly?: boolean;
  /** For a soup of this format's ingredients, the other formats it may be written as; absent: any. */
  alsoAs?: readonly string[];
  /** The format for a suffixless -o when the reference is no format's own. */
  fallback?: boolean;
  /** Stores tensors that share storage once (torch.save's tied weights). */
  ties?: boolean;
  /** A data file written beside a single-file output, named after it (ONNX external data). */
  sidecar?: { suffix: string };
  /** Throws a UsageError naming the first tensor the format cannot store. */
  checkDtypes(job: Pick<WriteJob, 'target' | 'tensors'>): Promise<void>;
  /**
   * Writes `file`: one weights file, or for a single output the whole of it. Returns the files written,
   * relative to `file` ('' for `file` itself, names inside it for a folder).
   */
  write(file: string, job: WriteJob): Promise<string[]>;
}

export interface Format {
  /** What checkpoints of this format are called (Checkpoint.format), and its outputs' kind. */
  name: string;
  /** For messages: "safetensors", "PyTorch", "TF.js", "ONNX". */
  title: string;
  detect: Detect;
  /** Opens a checkpoint this format's detection found (`format` is the name detection gave it). */
  open(file: string, name: string, format: string, options: OpenOptions): Promise<Checkpoint>;
  output?: OutputFormat;
}

const HF_SAFETENSORS_FILE = 'model.safetensors';
const HF_PYTORCH_FILE = 'pytorch_model.bin';

async function refuseDtypes(
  target: OutputTarget,
  tensors: readonly OutputTensor[],
  stores: (dtype: DType) => boolean,
  what: string,
  hint: string,
): Promise<void> {
  const bad = tensors.find((tensor) => !stores(tensor.dtype));
  if (bad !== undefined) throw new UsageError(`${target.path}: ${what} cannot store ${bad.dtype} tensors (tensor "${bad.name}")`, { hint });
}

/** Registry order is the order of preference where a folder holds several formats, and of the lists in messages. */
const FORMATS: Format[] = [
  {
    name: 'tfjs',
    title: 'TF.js',
    detect: { folderFiles: [{ name: MODEL_JSON, format: 'tfjs', opens: 'folder' }] },
    open: (file, name) => TfjsCheckpoint.open(file, name),
    output: {
      suffixes: [],
      single: 'folder',
      owns: (reference) => reference instanceof TfjsCheckpoint,
      ownOnly: true,
      checkDtypes: ({ target, tensors }) =>
        refuseDtypes(
          target,
          tensors,
          (dtype) => ['F32', 'F16', 'I32', 'BOOL'].includes(dtype),
          'a TF.js model',
          'use --dtype f32 or f16, or write a .safetensors file',
        ),
      write: async (folder, job) => {
        await makeFolder(folder);
        await writeTfjs(folder, (job.target.reference as TfjsCheckpoint).modelJson, job.tensors, job.metadata.placeholder, job.produce, job.metadata.resolve);
        return (await readdir(folder)).sort();
      },
    },
  },
  {
    name: 'safetensors',
    title: 'safetensors',
    detect: {
      suffixes: ['.safetensors'],
      folderFiles: [
        { name: SHARD_INDEX, format: 'safetensors-sharded', opens: 'folder', index: true },
        { name: HF_SAFETENSORS_FILE, format: 'safetensors', opens: 'file' },
      ],
    },
    open: (file, name, format) => (format === 'safetensors-sharded' ? ShardedSafetensors.open(file, name) : SafetensorsFile.open(file, name)),
    output: {
      suffixes: ['.safetensors'],
      single: 'file',
      folder: { file: HF_SAFETENSORS_FILE, index: SHARD_INDEX },
      owns: (reference) => reference.format === 'safetensors' || reference.format === 'safetensors-sharded',
      fallback: true,
      checkDtypes: async () => {},
      write: async (file, job) => {
        const { writeSafetensorsFile } = await import('./safetensors-writer.js');
        await writeSafetensorsFile(file, job.tensors, job.metadata, job.produce);
        return [''];
      },
    },
  },
  {
    name: 'onnx',
    title: 'ONNX',
    detect: { suffixes: [ONNX_SUFFIX] },
    open: (file, name) => OnnxCheckpoint.open(file, name),
    output: {
      suffixes: [ONNX_SUFFIX],
      single: 'file',
      owns: (reference) => reference instanceof OnnxCheckpoint,
      ownOnly: true,
      alsoAs: ['safetensors'],
      // onnx/writer.ts writes external data to the model's path plus this (its EXTERNAL_DATA_SUFFIX).
      sidecar: { suffix: '.data' },
      checkDtypes: async ({ target, tensors }) => {
        const { checkOnnxDtypes } = await import('./onnx/writer.js');
        checkOnnxDtypes(target.reference as OnnxCheckpoint, tensors);
      },
      write: async (file, job) => {
        const { writeOnnx } = await import('./onnx/writer.js');
        const options = { finalPath: job.target.path, externalAbove: job.target.externalAbove, dataName: job.sidecarName };
        const written = await writeOnnx(file, job.target.reference as OnnxCheckpoint, job.tensors, job.metadata.resolve, job.produce, options);
        return written.map((name) => name.slice(file.length));
      },
    },
  },
  {
    name: 'pytorch',
    title: 'PyTorch',
    detect: {
      suffixes: ['.pt', '.pth', '.bin', '.ckpt'],
      ignores: isTrainingStateFile,
      folderFiles: [
        { name: PYTORCH_SHARD_INDEX, format: 'pytorch-sharded', opens: 'folder', index: true },
        { name: HF_PYTORCH_FILE, format: 'pytorch', opens: 'file' },
      ],
    },
    open: (file, name, format, options) => (format === 'pytorch-sharded' ? ShardedPytorch.open(file, name, options) : PytorchFile.open(file, name, options)),
    output: {
      suffixes: ['.pt', '.pth', '.bin', '.ckpt'],
      single: 'file',
      folder: { file: HF_PYTORCH_FILE, index: PYTORCH_SHARD_INDEX },
      owns: (reference) => reference.format === 'pytorch' || reference.format === 'pytorch-sharded',
      ties: true,
      checkDtypes: async ({ target, tensors }) => {
        const { TORCH_STORAGE_CLASSES } = await import('./pytorch/pickle-writer.js');
        await refuseDtypes(target, tensors, (dtype) => TORCH_STORAGE_CLASSES[dtype] !== undefined, 'a torch.save file', 'write a .safetensors file instead');
      },
      write: async (file, job) => {
        const { writeTorchFile } = await import('./pytorch/writer.js');
        await writeTorchFile(file, job.tensors, job.metadata, job.produce);
        return [''];
      },
    },
  },
];

export async function makeFolder(folder: string): Promise<void> {
  await mkdir(folder).catch((error: unknown) => {
    throw new OutputError(folder, `cannot create folder: ${describeFsError(error)}`, { cause: error });
  });
}

/** Every format, in order of preference. */
export function formats(): readonly Format[] {
  return FORMATS;
}

/**
 * Adds a format (at the end, or before `before`), for plugins and tests; returns what removes it again.
 */
export function registerFormat(format: Format, before?: string): () => void {
  if (FORMATS.some((entry) => entry.name === format.name)) throw new Error(`internal: a format named ${format.name} is already registered`);
  const at = before === undefined ? -1 : FORMATS.findIndex((entry) => entry.name === before);
  FORMATS.splice(at === -1 ? FORMATS.length : at, 0, format);
  return () => {
    const index = FORMATS.indexOf(format);
    if (index !== -1) FORMATS.splice(index, 1);
  };
}

/** The format a checkpoint or ingredient of format name `name` belongs to (sharded folders included). */
export function formatNamed(name: string): Format {
  const found = FORMATS.find((format) => format.name === name || format.detect.folderFiles?.some((file) => file.format === name));
  if (found === undefined) throw new Error(`internal: no format named ${name}`);
  return found;
}

/** What a loose file is, by its suffix: the format and the name without the suffix. */
export function detectFile(file: string): { format: Format; name: string } | undefined {
  const base = path.basename(file);
  for (const format of FORMATS) {
    const suffix = format.detect.suffixes?.find((candidate) => base.endsWith(candidate));
    if (suffix === undefined || format.detect.ignores?.(base) === true) continue;
    return { format, name: base.slice(0, -suffix.length) };
  }
  return undefined;
}

/** The folder files present in a folder's listing, one per format at most, in order of preference. */
export function detectFolder(entries: ReadonlySet<string>): { format: Format; file: FolderFile }[] {
  const found: { format: Format; file: FolderFile }[] = [];
  for (const format of FORMATS) {
    const file = format.detect.folderFiles?.find((candidate) => entries.has(candidate.name));
    if (file !== undefined) found.push({ format, file });
  }
  return found;
}

/** The folder file with this name that stands for the folder holding it (model.json, a shard index). */
export function folderFileNamed(name: string): FolderFile | undefined {
  return FORMATS.flatMap((format) => format.detect.folderFiles ?? []).find((file) => file.opens === 'folder' && file.name === name);
}

const orList = (items: readonly string[]): string => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`);
const andList = (items: readonly string[], word: string): string =>
  items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} ${word} ${items.at(-1)}`;

/** ".safetensors, .onnx, .pt, .pth, .bin or .ckpt": what a loose checkpoint file may end with. */
export function describeSuffixes(): string {
  return orList(FORMATS.flatMap((format) => format.detect.suffixes ?? []));
}

/** "model.json or a shard index" (`standing`: the files that stand for their folder), else every folder file. */
export function describeFolderFiles(standing: boolean): string {
  const files = FORMATS.flatMap((format) => format.detect.folderFiles ?? []).filter((file) => !standing || file.opens === 'folder');
  const named = files.filter((file) => file.index !== true).map((file) => file.name);
  return orList([...named, ...(files.some((file) => file.index === true) ? ['a shard index'] : [])]);
}

type Writable = Format & { output: OutputFormat };
const writable = (): Writable[] => FORMATS.filter((format): format is Writable => format.output !== undefined);

/** The format and layout of an output target, from its kind. */
export function resolveTarget(target: OutputTarget): { format: Writable; layout: 'single' | 'folder' | 'sharded' } {
  for (const format of writable()) {
    if (target.kind === format.name) return { format, layout: 'single' };
    if (format.output.folder === undefined) continue;
    if (target.kind === `${format.name}-folder`) return { format, layout: 'folder' };
    if (target.kind === `${format.name}-sharded`) return { format, layout: 'sharded' };
  }
  throw new Error(`internal: no format writes ${target.kind} outputs`);
}

/** Every `-o` suffix that makes a file, for messages. */
export function outputSuffixes(): string[] {
  return writable().flatMap((format) => format.output.suffixes);
}

/** Levenshtein distance, to suggest the suffix a typo meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
}

/** A suffix on OUT that names a file format (".safetensor", ".json"), as opposed to a folder name ("run-1.5"). */
function looksLikeSuffix(out: string): string | undefined {
  if (/[\\/]$/.test(out)) return undefined;
  const extension = path.extname(out);
  return /^\.[A-Za-z][A-Za-z0-9_]*$/.test(extension) ? extension : undefined;
}

/**
 * Where `out` goes and in which format: a suffix listed by a format makes one file of it; no suffix, a
 * folder in the reference's own format (its layout kept: TF.js, sharded, a model.safetensors or
 * pytorch_model.bin folder). An unknown suffix is refused, listing the known ones.
 */
export function chooseOutput(out: string, reference: Checkpoint): OutputTarget {
  const own = writable().find((format) => format.output.owns(reference));
  const bySuffix = writable()
    .flatMap((format) => format.output.suffixes.filter((suffix) => out.endsWith(suffix)).map((suffix) => ({ format, suffix })))
    .sort((a, b) => b.suffix.length - a.suffix.length)[0];
  if (bySuffix === undefined) {
    const unknown = looksLikeSuffix(out);
    if (unknown !== undefined) {
      const distance = (suffix: string): number => editDistance(suffix.toLowerCase(), unknown.toLowerCase());
      const near = outputSuffixes()
        .filter((suffix) => distance(suffix) <= 2)
        .sort((x, y) => distance(x) - distance(y))[0];
      throw new UsageError(`${out}: ${unknown} is not a suffix soup writes: ${orList(outputSuffixes())} make one file, no suffix a folder`, {
        hint: `${near === undefined ? 'check the spelling.' : `did you mean ${near}?`} For a folder named so, end it with a slash: ${out}/`,
      });
    }
  }
  const ownOnlyAs = own?.output.alsoAs;
  if (own !== undefined && ownOnlyAs !== undefined && bySuffix?.format !== own && (bySuffix === undefined || !ownOnlyAs.includes(bySuffix.format.name))) {
    const others = ownOnlyAs.flatMap((name) => writable().find((format) => format.name === name)?.output.suffixes[0] ?? []);
    throw new UsageError(`${out}: a soup of ${own.title} models is an ${own.output.suffixes[0]} file (or pass a ${orList(others)} name for the weights alone)`);
  }
  if (bySuffix !== undefined) {
    const { format } = bySuffix;
    if (format.output.ownOnly === true && format !== own) {
      throw new UsageError(`${out}: an ${format.title} soup needs ${format.title} ingredients, and ${reference.path} is ${reference.format}`, {
        hint: "write a .safetensors file, or a folder in the ingredients' format",
      });
    }
    return format.output.ownOnly === true ? { kind: format.name, path: out, reference } : { kind: format.name, path: out };
  }
  const format = own ?? writable().find((candidate) => candidate.output.fallback === true)!;
  if (format.output.folder === undefined) return { kind: format.name, path: out, reference };
  const layout = reference.shardLayout?.();
  const sharded = format.detect.folderFiles?.find((file) => file.index === true)?.format;
  if (layout !== undefined && reference.format === sharded) return { kind: `${format.name}-sharded`, path: out, layout };
  return { kind: `${format.name}-folder`, path: out };
}

/** The suffix that makes an output one file in the reference's own format ('' where that format's own output is a folder). */
export function fileSuffixOf(reference: Checkpoint): string {
  const format = writable().find((candidate) => candidate.name === reference.format);
  return format?.output.single === 'file' ? (format.output.suffixes[0] ?? '') : '';
}

/** Outputs that are folders, and so can hold config, tokenizer and model card beside the weights. */
export function isFolderOutput(target: OutputTarget): boolean {
  const { format, layout } = resolveTarget(target);
  return layout !== 'single' || format.output.single === 'folder';
}

/** The file a loader opens in an output: the weights file of a folder, a sharded folder's index, a TF.js model.json; the output itself when it is a file. */
export function entryFileOf(target: OutputTarget): string {
  const { format, layout } = resolveTarget(target);
  if (layout === 'folder') return path.join(target.path, format.output.folder!.file);
  if (layout === 'sharded') return path.join(target.path, format.output.folder!.index);
  const standing = format.detect.folderFiles?.find((file) => file.opens === 'folder');
  return format.output.single === 'folder' && standing !== undefined ? path.join(target.path, standing.name) : target.path;
}

/** Fails early on dtypes the target format cannot hold (a TF.js model has no bf16 or f64). */
export async function checkOutputDtypes(target: OutputTarget, tensors: readonly OutputTensor[]): Promise<void> {
  await resolveTarget(target).format.output.checkDtypes({ target, tensors });
}

/** Whether the target stores tied tensors once. */
export function storesTies(target: OutputTarget): boolean {
  return resolveTarget(target).format.output.ties === true;
}

/** The formats whose outputs can be model folders, for messages: "safetensors and PyTorch". */
export function folderFormats(word: string): string {
  return andList(
    writable()
      .filter((format) => format.output.folder !== undefined)
      .map((format) => format.title),
    word,
  );
}
