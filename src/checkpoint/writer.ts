import { randomBytes } from 'node:crypto';
import { copyFile, lstat, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { OutputError, UsageError, describeFsError } from '../errors.js';
import { isFloatDType, type FloatDType } from './dtype.js';
import { makeFolder, resolveTarget, storesTies, type OutputTarget } from './formats.js';
import { storedBytes, writeAll, type TensorProducer } from './safetensors.js';
import { openForWrite } from './tfjs.js';
import type { Checkpoint, MetadataSource, OutputTensor } from './types.js';
import { removeAtExit, tempPathFor } from './leftovers.js';
import { ReplaceError, fsSteps, replaceFiles, type OutputClaim, type Replacement, type ReplaceSteps } from './output-claim.js';

export type { MetadataSource, OutputTarget, ReplaceSteps };

/** Refuses, before any slow work, an output that exists (without --force) or has no folder to go in. */
export async function checkOutputPath(out: string, force: boolean): Promise<void> {
  const existing = await stat(out).catch(() => undefined);
  if (existing !== undefined && !force) throw new UsageError(`${out} already exists`, { hint: 'pass --force to replace it' });
  const parent = await stat(path.dirname(path.resolve(out))).catch(() => undefined);
  if (!parent?.isDirectory()) throw new UsageError(`${out}: the folder ${path.dirname(out)} does not exist`);
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
  const { format, layout } = resolveTarget(target);
  // A data file beside a single-file output (ONNX external data) is written beside the temporary file.
  const sidecar = layout === 'single' ? format.output.sidecar?.suffix : undefined;
  const dataTemp = sidecar === undefined ? undefined : `${temp}${sidecar}`;
  // A second Ctrl-C exits at once: what is being written goes with it.
  const forget = [removeAtExit(temp), ...(dataTemp === undefined ? [] : [removeAtExit(dataTemp)])];
  let keepTemps = false;
  try {
    const dataName = sidecar === undefined ? undefined : await freeDataName(target.path, sidecar);
    const files = await writeTo(temp, target, tensors, metadata, produce, dataName);
    // Inside the temporary folder, so the rename below publishes weights and companions at once.
    if (extraFiles.size > 0) files.push(...(await writeExtraFiles(temp, files, extraFiles)));
    await options.beforePublish?.();
    const external = sidecar !== undefined && files.length > 1 ? path.join(path.dirname(target.path), dataName!) : undefined;
    const plan: Replacement = {
      // The new model's data goes in first, under a name the old model does not use, so the path always
      // holds a model whose data is beside it.
      moves: [...(external === undefined ? [] : [{ from: dataTemp!, to: external }]), { from: temp, to: target.path }],
      obsolete: sidecar !== undefined ? await oldDataFiles(target.path, dataName!, sidecar) : [],
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
    const finalFiles = sidecar !== undefined ? [target.path, ...(external === undefined ? [] : [external])] : files.map((file) => path.join(target.path, file));
    const bytes = (await Promise.all(finalFiles.map(async (file) => (await stat(file)).size))).reduce((a, b) => a + b, 0);
    return { path: target.path, files: finalFiles, bytes };
  } catch (error) {
    for (const release of forget) release();
    if (!keepTemps) {
      await rm(temp, { recursive: true, force: true });
      if (dataTemp !== undefined) await rm(dataTemp, { force: true });
    }
    // Name the output the user asked for, not our temporary file beside it.
    if (error instanceof OutputError && error.message.startsWith(temp)) throw new OutputError(target.path, error.problem, { cause: error });
    throw error;
  }
}

/** Sidecar files soup names for `model`: `NAME.data`, or `NAME.HEX.data` while that one is taken. */
const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const dataPattern = (model: string, suffix: string): RegExp => new RegExp(`^${escapeRegExp(path.basename(model))}(\\.[0-9a-f]{8})?${escapeRegExp(suffix)}$`);

/** A sidecar name no file beside `model` has: the new model points at it while the old one keeps its own. */
async function freeDataName(model: string, suffix: string): Promise<string> {
  const plain = `${path.basename(model)}${suffix}`;
  if ((await lstat(path.join(path.dirname(model), plain)).catch(() => undefined)) === undefined) return plain;
  return `${path.basename(model)}.${randomBytes(4).toString('hex')}${suffix}`;
}

/** The sidecars of the model being replaced (none when there is no model yet). */
async function oldDataFiles(model: string, keep: string, suffix: string): Promise<string[]> {
  if ((await lstat(model).catch(() => undefined)) === undefined) return [];
  const pattern = dataPattern(model, suffix);
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
  sidecarName?: string,
): Promise<string[]> {
  const { format, layout } = resolveTarget(target);
  const job = { target, tensors, metadata, produce, sidecarName };
  if (layout === 'single') return format.output.write(temp, job);
  const folder = format.output.folder!;
  await makeFolder(temp);
  if (layout === 'folder') {
    await format.output.write(path.join(temp, folder.file), job);
    return [folder.file];
  }
  const shards = new Map<string, OutputTensor[]>();
  for (const tensor of tensors) {
    const shard = target.layout!.get(tensor.name)!;
    shards.set(shard, [...(shards.get(shard) ?? []), tensor]);
  }
  const names = [...shards.keys()].sort();
  // Producers see each tensor's index in the whole plan, not in its shard.
  const indexOf = new Map(tensors.map((tensor, index) => [tensor.name, index]));
  const produceShard: TensorProducer = Object.assign((tensor: OutputTensor) => produce(tensor, indexOf.get(tensor.name)!), {
    alternatesBuffers: produce.alternatesBuffers,
  });
  for (const name of names) await format.output.write(path.join(temp, name), { ...job, tensors: shards.get(name)!, produce: produceShard });
  const totalSize = tensors.reduce((sum, tensor) => sum + (tensor.tiedTo === undefined ? storedBytes(tensor) : 0), 0);
  const index = { metadata: { total_size: totalSize }, weight_map: Object.fromEntries(tensors.map((t) => [t.name, target.layout!.get(t.name)!])) };
  await writeSmallFile(path.join(temp, folder.index), `${JSON.stringify(index, null, 2)}\n`);
  return [folder.index, ...names];
}

async function writeExtraFiles(folder: string, written: readonly string[], extraFiles: ExtraFiles): Promise<string[]> {
  if (written.includes('')) throw new Error('internal: extra files need a folder output');
  for (const [name, content] of extraFiles) {
    if (written.includes(name) || path.basename(name) !== name)
      throw new Error(`internal: extra file ${name} would replace a weights file or leave the folder`);
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

async function writeSmallFile(file: string, content: string | Uint8Array): Promise<void> {
  const handle = await openForWrite(file);
  try {
    await writeAll(handle, file, typeof content === 'string' ? new TextEncoder().encode(content) : content);
  } finally {
    await handle.close();
  }
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
  if (!storesTies(target) || ingredients.length === 0) return tensors.map(({ tiedTo: _dropped, ...tensor }) => tensor);
  const infos = ingredients.map((checkpoint) => new Map(checkpoint.tensors().map((tensor) => [tensor.name, tensor])));
  const planned = new Map(tensors.map((tensor, index) => [tensor.name, { ...tensor, index }]));
  const layout = resolveTarget(target).layout === 'sharded' ? target.layout : undefined;
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
