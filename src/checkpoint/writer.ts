import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { OutputError, UsageError, describeFsError } from '../errors.js';
import { isFloatDType, type FloatDType } from './dtype.js';
import { TORCH_STORAGE_CLASSES } from './pytorch/pickle-writer.js';
import { TORCH_FOLDER_FILE, TORCH_SHARD_INDEX, writeTorchFile } from './pytorch/writer.js';
import { encodeSafetensorsHeader, storedBytes, writeAll, writeSafetensors, type TensorProducer } from './safetensors.js';
import { SHARD_INDEX, ShardedSafetensors } from './sharded.js';
import { TfjsCheckpoint, openForWrite, writeTfjs } from './tfjs.js';
import { OnnxCheckpoint } from './onnx/reader.js';
import { EXTERNAL_DATA_SUFFIX, checkOnnxDtypes, writeOnnx } from './onnx/writer.js';
import type { Checkpoint, MetadataSource, OutputTensor } from './types.js';
import { removeAtExit, tempPathFor } from './leftovers.js';
import { ReplaceError, fsSteps, replaceFiles, type OutputClaim, type Replacement, type ReplaceSteps } from './output-claim.js';

export type { MetadataSource, ReplaceSteps };

export type OutputTarget =
  | { kind: 'safetensors'; path: string }
  /** A folder holding model.safetensors, as Hugging Face model folders do. */
  | { kind: 'safetensors-folder'; path: string }
  | { kind: 'safetensors-sharded'; path: string; layout: Map<string, string> }
  | { kind: 'tfjs'; path: string; template: TfjsCheckpoint['modelJson'] }
  /** The reference ONNX model with new initializer data (and `<path>.data` beside it when over 2 GB). */
  | { kind: 'onnx'; path: string; reference: OnnxCheckpoint; externalAbove?: number }
  /** One torch.save file. */
  | { kind: 'pytorch'; path: string }
  /** A folder holding pytorch_model.bin, as older Hugging Face model folders do. */
  | { kind: 'pytorch-folder'; path: string }
  | { kind: 'pytorch-sharded'; path: string; layout: Map<string, string> };

/** Suffixes that make OUT one torch.save file, whatever the inputs' format. */
const TORCH_SUFFIXES = ['.pt', '.pth', '.bin', '.ckpt'];

/**
 * A `.safetensors` OUT is one safetensors file, a `.pt` (`.pth`, `.bin`, `.ckpt`) OUT one torch.save
 * file; any other OUT is a folder in the reference ingredient's format (TF.js, sharded safetensors or
 * .bin with the same shard layout, or a model.safetensors / pytorch_model.bin folder).
 */
export function chooseOutput(out: string, reference: Checkpoint): OutputTarget {
  if (out.endsWith('.safetensors')) return { kind: 'safetensors', path: out };
  if (reference instanceof OnnxCheckpoint) {
    if (!out.endsWith('.onnx')) throw new UsageError(`${out}: a soup of ONNX models is an .onnx file (or pass a .safetensors name for the weights alone)`);
    return { kind: 'onnx', path: out, reference };
  }
  if (out.endsWith('.onnx')) {
    throw new UsageError(`${out}: an ONNX soup needs ONNX ingredients, and ${reference.path} is ${reference.format}`, {
      hint: 'write a .safetensors file, or a folder in the ingredients\' format',
    });
  }
  if (TORCH_SUFFIXES.some((suffix) => out.endsWith(suffix))) return { kind: 'pytorch', path: out };
  if (reference instanceof TfjsCheckpoint) return { kind: 'tfjs', path: out, template: reference.modelJson };
  if (reference instanceof ShardedSafetensors) return { kind: 'safetensors-sharded', path: out, layout: reference.shardLayout() };
  const layout = reference.shardLayout?.();
  if (reference.format === 'pytorch-sharded' && layout !== undefined) return { kind: 'pytorch-sharded', path: out, layout };
  if (reference.format === 'pytorch' || reference.format === 'pytorch-sharded') return { kind: 'pytorch-folder', path: out };
  return { kind: 'safetensors-folder', path: out };
}

/** The suffix that makes an output one file in the reference's own format ('' where that format is a folder). */
export function fileSuffixOf(reference: Checkpoint): string {
  if (reference.format === 'safetensors') return '.safetensors';
  if (reference.format === 'pytorch') return '.pt';
  if (reference.format === 'onnx') return '.onnx';
  return '';
}

/** Refuses, before any slow work, an output that exists (without --force) or has no folder to go in. */
export async function checkOutputPath(out: string, force: boolean): Promise<void> {
  const existing = await stat(out).catch(() => undefined);
  if (existing !== undefined && !force) throw new UsageError(`${out} already exists`, { hint: 'pass --force to replace it' });
  const parent = await stat(path.dirname(path.resolve(out))).catch(() => undefined);
  if (!parent?.isDirectory()) throw new UsageError(`${out}: the folder ${path.dirname(out)} does not exist`);
}

/** Fails early on dtypes the target format cannot hold (a TF.js model has no bf16 or f64). */
export function checkOutputDtypes(target: OutputTarget, tensors: readonly OutputTensor[]): void {
  if (target.kind === 'onnx') checkOnnxDtypes(target.reference, tensors);
  if (target.kind === 'tfjs') {
    const bad = tensors.find((tensor) => !['F32', 'F16', 'I32', 'BOOL'].includes(tensor.dtype));
    if (bad !== undefined) {
      throw new UsageError(`${target.path}: a TF.js model cannot store ${bad.dtype} tensors (tensor "${bad.name}")`, {
        hint: 'use --dtype f32 or f16, or write a .safetensors file',
      });
    }
  }
  if (isTorchTarget(target)) {
    const bad = tensors.find((tensor) => TORCH_STORAGE_CLASSES[tensor.dtype] === undefined);
    if (bad !== undefined) {
      throw new UsageError(`${target.path}: a torch.save file cannot store ${bad.dtype} tensors (tensor "${bad.name}")`, {
        hint: 'write a .safetensors file instead',
      });
    }
  }
}

function isTorchTarget(target: OutputTarget): boolean {
  return target.kind === 'pytorch' || target.kind === 'pytorch-folder' || target.kind === 'pytorch-sharded';
}

export function fixedMetadata(metadata: Record<string, string>): MetadataSource {
  return { placeholder: metadata, resolve: async () => metadata };
}

/**
 * Files a folder output holds beside the weights (config, tokenizer, model card), by name: bytes, the
 * path of a file to copy, or bytes made once the weights are written (when they depend on the final
 * metadata).
 */
export type ExtraFiles = ReadonlyMap<string, Uint8Array | string | (() => Promise<Uint8Array>)>;

export interface WriteResult {
  path: string;
  files: string[];
  bytes: number;
}

/**
 * Writes a checkpoint into a temporary file or folder beside `target.path` and renames it into
 * place only once everything is written, so a failure or Ctrl-C never leaves a half-written soup
 * and never touches an existing output.
 */
export interface WriteOptions {
  /** This process's claim on the output: the replacement's journal goes into its lock. */
  claim?: OutputClaim | undefined;
  /** Runs once everything is written, before anything is moved into place; a throw writes nothing. */
  beforePublish?: (() => Promise<void>) | undefined;
  /** Fault injection for tests: the renames and removals of the replacement. */
  steps?: ReplaceSteps | undefined;
}

export async function writeCheckpoint(
  target: OutputTarget,
  tensors: readonly OutputTensor[],
  metadata: MetadataSource,
  produce: TensorProducer,
  extraFiles: ExtraFiles = new Map(),
  options: WriteOptions = {},
): Promise<WriteResult> {
  const temp = tempPathFor(target.path);
  const dataTemp = `${temp}${EXTERNAL_DATA_SUFFIX}`;
  // A second Ctrl-C exits at once: what is being written goes with it.
  const forget = [removeAtExit(temp), removeAtExit(dataTemp)];
  let keepTemps = false;
  try {
    const dataName = target.kind === 'onnx' ? await freeDataName(target.path) : undefined;
    const files = await writeTo(temp, target, tensors, metadata, produce, dataName);
    // Inside the temporary folder, so the rename below publishes weights and companions at once.
    if (extraFiles.size > 0) files.push(...(await writeExtraFiles(temp, files, extraFiles)));
    await options.beforePublish?.();
    const external = target.kind === 'onnx' && files.length > 1 ? path.join(path.dirname(target.path), dataName!) : undefined;
    const plan: Replacement = {
      // The new model's data goes in first, under a name the old model does not use, so the path always
      // holds a model whose data is beside it.
      moves: [...(external === undefined ? [] : [{ from: dataTemp, to: external }]), { from: temp, to: target.path }],
      obsolete: target.kind === 'onnx' ? await oldDataFiles(target.path, dataName!) : [],
    };
    await options.claim?.record(plan);
    for (const release of forget) release();
    try {
      await replaceFiles(plan, options.steps);
    } catch (error) {
      if (error instanceof ReplaceError && !error.rolledBack) {
        keepTemps = true;
        options.claim?.keep();
      } else if (options.claim !== undefined) {
        // The old output is back: the journal must not later "finish" a replacement that was undone.
        await options.claim.clearJournal().catch(() => options.claim?.keep());
      }
      throw error;
    }
    const finalFiles = target.kind === 'onnx' ? [target.path, ...(external === undefined ? [] : [external])] : files.map((file) => path.join(target.path, file));
    const bytes = (await Promise.all(finalFiles.map(async (file) => (await stat(file)).size))).reduce((a, b) => a + b, 0);
    return { path: target.path, files: finalFiles, bytes };
  } catch (error) {
    for (const release of forget) release();
    if (!keepTemps) {
      await rm(temp, { recursive: true, force: true });
      await rm(dataTemp, { force: true });
    }
    // Name the output the user asked for, not our temporary file beside it.
    if (error instanceof OutputError && error.message.startsWith(temp)) throw new OutputError(target.path, error.problem, { cause: error });
    throw error;
  }
}

/** ONNX external data files soup names for `model`: `NAME.data`, or `NAME.HEX.data` while that one is taken. */
const dataPattern = (model: string): RegExp => new RegExp(`^${path.basename(model).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.[0-9a-f]{8})?\\.data$`);

/** A data file name no file beside `model` has: the new model points at it while the old one keeps its own. */
async function freeDataName(model: string): Promise<string> {
  const plain = `${path.basename(model)}${EXTERNAL_DATA_SUFFIX}`;
  if ((await lstat(path.join(path.dirname(model), plain)).catch(() => undefined)) === undefined) return plain;
  return `${path.basename(model)}.${randomBytes(4).toString('hex')}${EXTERNAL_DATA_SUFFIX}`;
}

/** The data files of the model being replaced (none when there is no model yet). */
async function oldDataFiles(model: string, keep: string): Promise<string[]> {
  if ((await lstat(model).catch(() => undefined)) === undefined) return [];
  const pattern = dataPattern(model);
  const folder = path.dirname(model);
  return (await readdir(folder)).filter((name) => name !== keep && pattern.test(name)).map((name) => path.join(folder, name));
}

/** Writes to `temp`; returns the files written, relative to the final path ('' for a single file). */
async function writeTo(
  temp: string,
  target: OutputTarget,
  tensors: readonly OutputTensor[],
  metadata: MetadataSource,
  produce: TensorProducer,
  dataName?: string,
): Promise<string[]> {
  if (target.kind === 'tfjs') {
    await makeFolder(temp);
    await writeTfjs(temp, target.template, tensors, metadata.placeholder, produce, metadata.resolve);
    return (await readdir(temp)).sort();
  }
  const format = isTorchTarget(target) ? FILE_FORMATS.pytorch : FILE_FORMATS.safetensors;
  switch (target.kind) {
    case 'safetensors':
    case 'pytorch': {
      await format.write(temp, tensors, metadata, produce);
      return [''];
    }
    case 'safetensors-folder':
    case 'pytorch-folder': {
      await makeFolder(temp);
      await format.write(path.join(temp, format.folderFile), tensors, metadata, produce);
      return [format.folderFile];
    }
    case 'safetensors-sharded':
    case 'pytorch-sharded': {
      await makeFolder(temp);
      const shards = new Map<string, OutputTensor[]>();
      for (const tensor of tensors) {
        const shard = target.layout.get(tensor.name)!;
        shards.set(shard, [...(shards.get(shard) ?? []), tensor]);
      }
      const names = [...shards.keys()].sort();
      // Producers see each tensor's index in the whole plan, not in its shard.
      const indexOf = new Map(tensors.map((tensor, index) => [tensor.name, index]));
      const produceShard: TensorProducer = Object.assign((tensor: OutputTensor) => produce(tensor, indexOf.get(tensor.name)!), {
        alternatesBuffers: produce.alternatesBuffers,
      });
      for (const name of names) await format.write(path.join(temp, name), shards.get(name)!, metadata, produceShard);
      const totalSize = tensors.reduce((sum, tensor) => sum + (tensor.tiedTo === undefined ? storedBytes(tensor) : 0), 0);
      const index = { metadata: { total_size: totalSize }, weight_map: Object.fromEntries(tensors.map((t) => [t.name, target.layout.get(t.name)!])) };
      await writeSmallFile(path.join(temp, format.index), `${JSON.stringify(index, null, 2)}\n`);
      return [format.index, ...names];
    }
    case 'onnx': {
      const written = await writeOnnx(temp, target.reference, tensors, metadata.resolve, produce, { finalPath: target.path, externalAbove: target.externalAbove, dataName });
      return written.map((file) => file.slice(temp.length));
    }
  }
}

async function writeExtraFiles(folder: string, written: readonly string[], extraFiles: ExtraFiles): Promise<string[]> {
  if (written.includes('')) throw new Error('internal: extra files need a folder output');
  for (const [name, content] of extraFiles) {
    if (written.includes(name) || path.basename(name) !== name) throw new Error(`internal: extra file ${name} would replace a weights file or leave the folder`);
    const file = path.join(folder, name);
    if (typeof content === 'string') {
      await copyFile(content, file).catch((error: unknown) => {
        throw new OutputError(file, `cannot copy ${content}: ${describeFsError(error)}`, { cause: error });
      });
    } else {
      await writeSmallFile(file, content instanceof Uint8Array ? content : await content());
    }
  }
  return [...extraFiles.keys()];
}

/** How each single-file format is written, and what model folders call its files. */
interface FileFormat {
  /** The weights file of an unsharded model folder. */
  folderFile: string;
  /** The index of a sharded model folder. */
  index: string;
  write(file: string, tensors: readonly OutputTensor[], metadata: MetadataSource, produce: TensorProducer): Promise<void>;
}

const FILE_FORMATS: Record<'safetensors' | 'pytorch', FileFormat> = {
  safetensors: { folderFile: 'model.safetensors', index: SHARD_INDEX, write: (...args) => writeSafetensorsFile(...args) },
  pytorch: { folderFile: TORCH_FOLDER_FILE, index: TORCH_SHARD_INDEX, write: (...args) => writeTorchFile(...args) },
};

async function writeSafetensorsFile(
  file: string,
  tensors: readonly OutputTensor[],
  metadata: MetadataSource,
  produce: TensorProducer,
): Promise<void> {
  const handle = await openForWrite(file);
  try {
    const placeholder = await writeSafetensors(handle, file, tensors, metadata.placeholder, produce);
    const header = encodeSafetensorsHeader(tensors, await metadata.resolve());
    if (header.byteLength !== placeholder.byteLength) throw new Error('internal: the final metadata does not fit the space kept for it');
    if (Buffer.compare(header, placeholder) !== 0) await writeAll(handle, file, header, 0);
  } finally {
    await handle.close();
  }
}

async function writeSmallFile(file: string, content: string | Uint8Array): Promise<void> {
  const handle = await openForWrite(file);
  try {
    await writeAll(handle, file, typeof content === 'string' ? new TextEncoder().encode(content) : content);
  } finally {
    await handle.close();
  }
}

async function makeFolder(folder: string): Promise<void> {
  await mkdir(folder).catch((error: unknown) => {
    throw new OutputError(folder, `cannot create folder: ${describeFsError(error)}`, { cause: error });
  });
}

/** Moves one finished output (`temp`) into place over `final`; see replaceFiles. */
export async function replaceOutput(temp: string, final: string, steps: ReplaceSteps = fsSteps): Promise<void> {
  await replaceFiles({ moves: [{ from: temp, to: final }], obsolete: [] }, steps);
}

/**
 * Marks the tensors that every ingredient ties to the same earlier tensor, for targets that store a
 * storage once for several names (torch.save files; within one shard only). Elsewhere ties are
 * dropped and both tensors written in full.
 */
export function keepTies(target: OutputTarget, tensors: readonly OutputTensor[], ingredients: readonly Checkpoint[]): OutputTensor[] {
  if (!isTorchTarget(target) || ingredients.length === 0) return tensors.map(({ tiedTo: _dropped, ...tensor }) => tensor);
  const infos = ingredients.map((checkpoint) => new Map(checkpoint.tensors().map((tensor) => [tensor.name, tensor])));
  const planned = new Map(tensors.map((tensor, index) => [tensor.name, { ...tensor, index }]));
  const layout = target.kind === 'pytorch-sharded' ? target.layout : undefined;
  return tensors.map(({ tiedTo: _previous, ...tensor }, index) => {
    const tiedTo = infos[0]!.get(tensor.name)?.tiedTo;
    if (tiedTo === undefined || !infos.every((info) => info.get(tensor.name)?.tiedTo === tiedTo)) return tensor;
    const root = planned.get(tiedTo);
    if (root === undefined || root.index >= index || root.dtype !== tensor.dtype || root.shape.join() !== tensor.shape.join()) return tensor;
    if (layout !== undefined && layout.get(tiedTo) !== layout.get(tensor.name)) return tensor;
    return { ...tensor, tiedTo };
  });
}

/** Output tensors: the reference's names, order and shapes; floats in `dtype` when given. */
export function planOutput(reference: Checkpoint, dtype?: FloatDType): OutputTensor[] {
  return reference.tensors().map((tensor) => ({
    name: tensor.name,
    shape: tensor.shape,
    dtype: dtype !== undefined && isFloatDType(tensor.dtype) ? dtype : tensor.dtype,
  }));
}
